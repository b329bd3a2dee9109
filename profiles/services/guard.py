"""Guardrail of the deterministic resolver: an identifier shared by clearly different people does not merge
them.

Families share an email address or a landline; a CRM keeps a company switchboard on several contacts. When a
record would join a profile only through such an identifier while its given name cannot be that of a record
already there, and no birth date (or national identifier) confirms one person, the link through it is not
made: the record keeps its own profile, or joins the ones its other identifiers link it to without such a
clash (its own email, say, when only the landline is a relative's), and the refusal is kept as a conflict for
a data steward, who may merge the two anyway from the admin. The test is ``profiles.matching.cluster.identifier_shared_by_two``.

"Cannot be" is deliberately tolerant, because the shared identifier speaks for one person: a typo, a
nickname (with or without a typo in it), an initial, the same sound ("Annie" / "Ana") or given and family
name exchanged all leave the link alone; "Alice" and "Robert" on one family email do not. A birth date
confirms one person up to a typo or a day/month swap, so "Ann" and "Robert" born the same day still link
(a source's wrong given name). A missing value contradicts nothing: a record with no given name links.
Most CRM records carry no birth date, which is why the given name alone must be able to tell two people
apart: with the birth date required as well, the guard would hardly ever speak.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from uuid import UUID

from django.db.models import Q

from profiles.matching.cluster import BIRTH_DATES_AND_GIVEN_NAMES_DISAGREE, identifier_shared_by_two
from profiles.matching.records import MatchRecord
from profiles.models import SourceRecord

STRONG_DISAGREEMENT = BIRTH_DATES_AND_GIVEN_NAMES_DISAGREE

# Only records that name somebody can contradict each other.
_PERSONAL = ("first_name", "full_name")


def _telling(attributes: Mapping[str, object]) -> bool:
    return any(attributes.get(name) for name in _PERSONAL)


def _given_name(attributes: Mapping[str, object]) -> str:
    return " ".join(str(attributes.get("first_name") or "").casefold().split())


class IdentityGuard:
    """The live records of the profiles a chunk may link to, loaded once, compared lazily."""

    def __init__(self, records: Mapping[UUID, list[tuple[int, Mapping[str, object]]]]):
        self.records = records
        self._matchable: dict[object, MatchRecord] = {}

    @classmethod
    def load(cls, profile_ids: Collection[UUID]) -> IdentityGuard:
        """One query: the records of these profiles that carry a given name."""
        records: dict[UUID, list[tuple[int, Mapping[str, object]]]] = defaultdict(list)
        if profile_ids:
            rows = SourceRecord.objects.filter(
                Q(attributes__has_key="first_name") | Q(attributes__has_key="full_name"),
                profile_id__in=list(profile_ids),
                deleted_at__isnull=True,
            ).values_list("id", "profile_id", "attributes")
            for record_id, profile_id, attributes in rows:
                if _telling(attributes):
                    records[profile_id].append((record_id, attributes))
        return cls(records)

    def _record(self, key: object, attributes: Mapping[str, object]) -> MatchRecord:
        record = self._matchable.get(key)
        if record is None:
            record = self._matchable[key] = MatchRecord.from_attributes(key, attributes)
        return record

    def clash(
        self,
        attributes: Mapping[str, object],
        *,
        record_id: int | None,
        profile_ids: Iterable[UUID],
        pending: Iterable[tuple[str, Mapping[str, object]]] = (),
    ) -> tuple[str, int | str] | None:
        """(reason, the other record: its id, or the external id of a record of this chunk) when a record of
        these profiles, or one of this chunk already placed with them (``pending``), is clearly somebody
        else; None otherwise. ``record_id``: the stored version of this record, never compared with itself."""
        if not _telling(attributes):
            return None
        others: list[tuple[object, int | str, Mapping[str, object]]] = [
            (record, record, attrs)
            for profile_id in profile_ids
            for record, attrs in self.records.get(profile_id, ())
            if record != record_id
        ]
        others += [
            (("pending", external_id), external_id, attrs)
            for external_id, attrs in pending
            if _telling(attrs)
        ]
        # The same given name, as written, is never two people: only the others are worth a full comparison.
        given = _given_name(attributes)
        others = [other for other in others if not given or _given_name(other[2]) != given]
        if not others:
            return None
        mine = MatchRecord.from_attributes(None, attributes)
        for cache_key, other, other_attributes in others:
            reason = identifier_shared_by_two(mine, self._record(cache_key, other_attributes))
            if reason:
                return reason, other
        return None
