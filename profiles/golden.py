"""Survivorship: which candidate value of each attribute becomes the profile's golden value. Pure functions.

Each attribute follows one rule (``SurvivorshipRule`` rows, edited in the admin; an attribute without a row
follows the source trust rank):

- ``trust_rank``: the value of the most trusted source; ties go to the most recent change.
- ``most_recent``: the value changed last, by the *source's own* change time, so a late-arriving old record
  never overwrites newer data. A record's change time is its ``updated_at`` (records API) or the timestamp of
  the tracking message it came from. A record sent without one has only the time we received it, which says
  when it reached us, not when it changed (a re-import of last year's export arrives today): such candidates
  rank after every candidate that has a source time, and among themselves by the time we received them.
  Ties: trust rank. A source that wants its changes to compete on recency sends ``updated_at``.
- ``most_frequent``: the value the most sources agree on, compared case- and space-insensitively (``"Smith"``
  and ``" smith"`` are one vote); then the most records; ties go to the trust rank. Sources are counted before
  records so that one source's duplicates cannot outvote independent systems.
- ``most_complete``: the most informative value (the most letters and digits: ``12 High Street`` over
  ``12 High St``, ``Jonathan`` over ``J.``; for structured values, the most non-empty entries); ties go to the
  trust rank.

Empty values (``None``, ``""``, ``[]``, ``{}``) never win under any rule: a source that lacks a value does not
erase another's. Every rule breaks its last tie on the record id, so the result never depends on the order
the candidates come in. The lineage of each golden value names its record, source, change time and rule.

The parts of a postal address (``ADDRESS``) survive together: the rule of ``address_line1`` (or of the first
part that has one) picks one record's address, preferring records with a street line or a postcode to those
with only a town; a part that address lacks comes from the next records in the rule's order only when they
agree with every part chosen so far. Chosen part by part, the newest source's city could join an older
source's street into an address where the person never lived.

The defaults seeded by ``profiles/migrations/0008_seed_survivorship_rules.py`` are explained there.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from ingestion.normalise import search_text

TRUST_RANK = "trust_rank"
MOST_RECENT = "most_recent"
MOST_FREQUENT = "most_frequent"
MOST_COMPLETE = "most_complete"
RULES = (TRUST_RANK, MOST_RECENT, MOST_FREQUENT, MOST_COMPLETE)
DEFAULT_RULE = TRUST_RANK

# Attributes that describe one thing together and survive from one record (see the module docstring).
ADDRESS = ("address_line1", "address_line2", "city", "postcode", "region", "country")
_ADDRESS_ANCHORS = ("address_line1", "postcode")  # an address with neither only locates a town


@dataclass(frozen=True)
class Candidate:
    """One source record's contribution to a profile."""

    record_id: int
    source: str
    external_id: str
    trust_rank: int
    observed_at: datetime  # the source's change time, or when it was received (SourceRecord.version_at)
    attributes: Mapping[str, object]
    # Whether observed_at is the source's own change time; False: only when the version reached us.
    source_time: bool = True


def _is_empty(value: object) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _recency(candidate: Candidate) -> tuple:
    return (candidate.source_time, candidate.observed_at)


def _trust_key(candidate: Candidate) -> tuple:
    return (candidate.trust_rank, *_recency(candidate), candidate.record_id)


def _recent_key(candidate: Candidate) -> tuple:
    return (*_recency(candidate), candidate.trust_rank, candidate.record_id)


def comparable_value(value: object) -> object:
    """The form most_frequent compares: case and spacing ignored for text, key order for structures."""
    if isinstance(value, str):
        return " ".join(value.casefold().split())
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return (type(value).__name__, value)


def completeness(value: object) -> tuple[int, int]:
    """How much a value says: (letters and digits, length) for text; (non-empty entries, 0) for structures."""
    if isinstance(value, str):
        return (sum(ch.isalnum() for ch in value), len(" ".join(value.split())))
    if isinstance(value, Mapping):
        return (sum(not _is_empty(item) for item in value.values()), 0)
    if isinstance(value, list | tuple):
        return (sum(not _is_empty(item) for item in value), 0)
    return (1, 0)


Choice = tuple[object, Candidate]


def _by_trust(choices: list[Choice]) -> Choice:
    return max(choices, key=lambda choice: _trust_key(choice[1]))


def _by_recency(choices: list[Choice]) -> Choice:
    return max(choices, key=lambda choice: _recent_key(choice[1]))


def _by_completeness(choices: list[Choice]) -> Choice:
    return max(choices, key=lambda choice: (completeness(choice[0]), _trust_key(choice[1])))


def _by_frequency(choices: list[Choice]) -> Choice:
    groups: dict[object, list[Choice]] = {}
    for choice in choices:
        groups.setdefault(comparable_value(choice[0]), []).append(choice)

    def support(group: list[Choice]) -> tuple:
        sources = {candidate.source for _, candidate in group}
        return (len(sources), len(group), _trust_key(_by_trust(group)[1]))

    # The value itself comes from the most trusted record of the winning group, in that record's spelling.
    return _by_trust(max(groups.values(), key=support))


CHOOSERS: dict[str, Callable[[list[Choice]], Choice]] = {
    TRUST_RANK: _by_trust,
    MOST_RECENT: _by_recency,
    MOST_FREQUENT: _by_frequency,
    MOST_COMPLETE: _by_completeness,
}


def golden_record(
    candidates: Iterable[Candidate], rules: Mapping[str, str] | None = None
) -> tuple[dict, dict]:
    """The golden value of each attribute under its survivorship rule (``rules``: attribute -> rule; an
    attribute without one, or with a rule this code does not know, follows the trust rank).

    Returns the golden values and, per attribute, the lineage of the winning value.
    """
    rules = rules or {}
    candidates = list(candidates)
    if len(candidates) == 1:  # most profiles: every rule picks the only record's values
        winners = _only(candidates[0], rules)
    else:
        choices: dict[str, list[Choice]] = {}
        for candidate in candidates:
            for name, value in candidate.attributes.items():
                if not _is_empty(value) and name not in ADDRESS:
                    choices.setdefault(name, []).append((value, candidate))
        winners = {}
        for name, options in choices.items():
            rule = _rule(rules, name)
            value, winner = CHOOSERS[rule](options)
            winners[name] = (value, winner, rule)
        winners.update(_address(candidates, rules))
    golden, lineage = {}, {}
    origins: dict[int, dict] = {}  # what the lineage says of a record, the same for each value it gives
    for name in sorted(winners):
        value, winner, rule = winners[name]
        golden[name] = value
        origin = origins.get(id(winner))
        if origin is None:
            origin = origins[id(winner)] = {
                "source": winner.source,
                "record": winner.record_id,
                "external_id": winner.external_id,
                "observed_at": winner.observed_at.isoformat(),
            }
        lineage[name] = {**origin, "rule": rule}
    return golden, lineage


def _only(candidate: Candidate, rules: Mapping[str, str]) -> dict[str, tuple[object, Candidate, str]]:
    """``golden_record``'s winners when one record is the only candidate: each of its non-empty values, its
    address parts under the address's rule (as ``_address`` names it)."""
    winners = {}
    for name, value in candidate.attributes.items():
        if _is_empty(value):
            continue
        if name in ADDRESS:
            winners[name] = (value, candidate, _address_rule(rules))
        else:
            winners[name] = (value, candidate, _rule(rules, name))
    return winners


def _rule(rules: Mapping[str, str], name: str) -> str:
    rule = rules.get(name, DEFAULT_RULE)
    return rule if rule in CHOOSERS else DEFAULT_RULE


def _address(
    candidates: list[Candidate], rules: Mapping[str, str]
) -> dict[str, tuple[object, Candidate, str]]:
    """The address of the record the address's rule prefers, completed only from records that agree with it."""
    options: list[Choice] = []
    for candidate in candidates:
        parts = {
            name: candidate.attributes[name]
            for name in ADDRESS
            if not _is_empty(candidate.attributes.get(name))
        }
        if parts:
            options.append((parts, candidate))
    rule = _address_rule(rules)
    chosen: dict[str, tuple[object, Candidate, str]] = {}
    for parts, candidate in _ranked(options, rule):
        agrees = all(
            comparable_value(value) == comparable_value(chosen[name][0])
            for name, value in parts.items()
            if name in chosen
        )
        if agrees:
            for name, value in parts.items():
                chosen.setdefault(name, (value, candidate, rule))
    return chosen


def _address_rule(rules: Mapping[str, str]) -> str:
    """The rule the address survives under: that of ``address_line1``, or of the first part that has one."""
    named = [name for name in ADDRESS if name in rules]
    return _rule(rules, named[0] if named else ADDRESS[0])


def _ranked(options: list[Choice], rule: str) -> list[Choice]:
    """Addresses in the rule's order of preference, those with a street line or a postcode first."""
    ranked = []
    for group in (
        [o for o in options if any(name in o[0] for name in _ADDRESS_ANCHORS)],
        [o for o in options if not any(name in o[0] for name in _ADDRESS_ANCHORS)],
    ):
        while group:
            best = CHOOSERS[rule](group)
            ranked.append(best)
            group.remove(best)
    return ranked


def display_name(golden: Mapping[str, object]) -> str:
    name = " ".join(str(golden[p]) for p in ("first_name", "last_name") if golden.get(p))
    return (name or str(golden.get("full_name") or golden.get("email") or golden.get("phone") or ""))[:300]


def name_search_text(golden: Mapping[str, object]) -> str:
    return search_text(display_name(golden))[:300]
