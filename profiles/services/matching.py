"""Probabilistic matching in the product: blocking keys of every live record, incremental linking of the
records as they arrive with those of other profiles, and the model they are scored with.

Blocking keys. Every live source record keeps its blocking keys (``MatchKey``: postcode, phonetic surname +
birth year, name sounds, surname sound + city, birth date, address, given name sound + street, phone tail,
email local part, from the engine's ``DEFAULT_BLOCKING_RULES``), replaced set-based when the record changes
and dropped when it is deleted. They are how a new record finds, with an index lookup, the few existing
records worth scoring it against. After a change of the rules, ``resolve --all`` rebuilds them
(``match_keys_rebuild``); until then an older record is found through the keys it already has.

Incremental matching (``records_match``, called by ``records_resolve`` for each chunk). Every record applied
in the chunk that gives its profile a blocking key none of the profile's other records has (a record alone
on its profile always does) is compared with the records sharing a blocking key with it on other profiles,
scored with the active model, and decided at the production thresholds (``profiles.matching.decide``). That
includes a record that an identifier just put on a profile: a CRM contact that joins a web sign-up by its
email brings the name and address that an ERP account of the same person, already stored alone, can be
matched on, as ``resolve --all`` would. Candidates are looked up through the keys the record brings only:
through the others it would meet what its profile's other records met already (an update that changes no
key, or a second copy of what the profile knows, is not matched again at all):

- link: the two profiles are merged (rule ``probabilistic``, the explanation and the record pair as the
  evidence of the ``MergeEvent``; the same re-pointing as ``profiles_merge``, written for the whole chunk at
  once), unless a guardrail stops it: the identity conflict of the decision itself (given names disagree
  and no birth date or identifier confirms one person: the household case), the same conflict between
  *any* record of one profile and any of the other (the clustering guard: A links to B does not make A's
  profile and B's sibling one person), more than ``CDP_MATCH_MAX_RECORDS_PER_SOURCE`` records of one
  source on the merged profile, or an identifier limit (``merge_refusal``'s rule). Then it becomes a
  suggestion for review, with the reason;
- review: a ``MatchSuggestion`` (one open per pair) with the explanation;
- a never-link pair between the two profiles removes the candidate profile altogether, suggestion included:
  a steward already answered that question.

Links are taken strongest first across the chunk, so a record that matches two profiles joins them only if
the guard between all their records allows it, as the engine's clustering does. The queries per chunk are a
fixed number (keys, counts, members, candidates, locks, profile members, identities, never-links, merges,
suggestions), whatever the number of records and links.

Bounds. A key shared by more than ``MAX_BLOCK_MEMBERS`` live records is skipped: a value that common (a
city-wide postcode, a popular name with a frequent birth year) tells nobody apart, comparing against all of
it would cost a scan per arrival, and a true duplicate almost always shares a rarer key as well (birth date,
address, name sounds). Of the rest, a record is compared with at most ``MAX_CANDIDATES`` records, those
sharing the most keys with it first: duplicates share several keys, strangers one.

Where the model comes from. Never from hand-set weights: ``match_model_train`` estimates it from the live
records themselves (EM for m, value frequencies and random pairs for u, term frequencies) and stores it as
a ``MatchModelVersion``. On a table larger than ``MAX_TRAINING_RECORDS`` it reads a random sample of that
many records for u, the term frequencies and the prior, and, for EM, whole blocks of each training
session's rule drawn at random from the stored blocking keys of all the records: a random sample of records
keeps a duplicate pair with the square of the sampling rate (5% of a million records keeps a quarter of a
percent of them, and EM then learns households), while whole blocks keep every pair they hold. Training is
automatic: once ``CDP_MATCH_TRAIN_MIN_RECORDS`` live records exist, and again each time the table has
doubled since the last estimate (until the sample cap is reached; after that ``manage.py match_train`` when
staff want a new estimate). It runs in a task after the chunk that noticed it commits. An estimate can only
learn what a match looks like from data that holds some: if EM finds fewer than ``MIN_EXPECTED_MATCHES``
matching pairs among the candidate pairs (one source's clean first load, for instance), the version is kept
for the record but not activated, and matching waits for more data; so is an estimate whose "matches"
disagree on names or birth dates more often than they agree (EM found some other structure, such as
strangers sharing a postcode). A comparison hardly any record has a value for (no source sends a gender)
weighs nothing at any level. Until a model is active, records are resolved deterministically only. Each time
a model becomes active, every record still alone on its profile is matched with it: the records that arrived
without a model, and those an earlier, smaller estimate did not link. Estimates come at each doubling of the
data, so this costs at most about twice the records overall. That backlog runs beside the workers: a record
whose blocking keys another transaction holds is matched in a second pass, after the others (``_backlog_pass``).

Concurrency. The blocking keys the records are matched through are locked (transaction-scoped advisory
locks, sorted, like identifier keys): two workers creating two records of one new person one after the
other see each other's keys instead of both creating a profile and missing the link. A key a record's
profile already had is not locked: the profile's other record that has it is committed and found.

Tracking identities (``records_resolve(history=False)``) get blocking keys but are not matched: they join
people through their identifiers.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import random
import time
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from uuid import UUID

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from cdp.db import values_insert
from cdp.memory import memory_store
from ingestion.models import Source
from ingestion.pipeline import PipelineItem
from profiles.matching import (
    DEFAULT_BLOCKING_RULES,
    LINK,
    NEW,
    BlockingIndex,
    BlockingRule,
    MatchModel,
    MatchRecord,
    decide,
    model_estimate,
)
from profiles.matching.blocking import MAX_BLOCK_SIZE
from profiles.matching.cluster import GIVEN_NAMES_DISAGREE_UNCONFIRMED, MAX_CROSS_PAIRS, groups_conflict
from profiles.matching.decision import DEFAULT_THRESHOLDS, Decision
from profiles.matching.engine import total_weights
from profiles.matching.model import DEFAULT_TRAINING_SESSIONS, comparison_matrix
from profiles.models import (
    Identity,
    MatchKey,
    MatchModelVersion,
    MatchSuggestion,
    MergeEvent,
    NeverLink,
    Profile,
    RecordChange,
    SourceRecord,
)

from .refresh import profiles_refresh
from .resolution import (
    identifier_keys_lock,
    identifier_keys_try_lock,
    identifier_rules_load,
    profiles_lock,
    profiles_repoint,
)

logger = logging.getLogger(__name__)

MAX_BLOCK_MEMBERS = 200
MAX_CANDIDATES = 50
# A sample of 50,000 records estimated as well as one of 100,000 on the synthetic people benchmark (100,000
# records: profile precision / recall 0.9932 / 0.8872 against 0.9939 / 0.8841; 429 s against 545 s in all).
# A training run holds its sample in memory (a worker reached 1.15 GB estimating from 80,750 records), and
# automatic re-estimates stop once the table holds that many live records (``match_train`` after that).
MAX_TRAINING_RECORDS = 50_000
# The prior is a share of matches and m a set of proportions: random samples of the candidate pairs estimate
# them to within a percent or two, and comparing pairs is what training spends its time on.
MAX_PRIOR_PAIRS = 50_000
MAX_SESSION_PAIRS = 50_000
MIN_EXPECTED_MATCHES = 50  # below that, m proportions would rest on a handful of pairs
KEY_MAX_LENGTH = 200
RETRAIN_GROWTH = 2
SCHEDULE_EVERY_SECONDS = 300

RULE_PROBABILISTIC = "probabilistic"


# --- Blocking keys -------------------------------------------------------------------------------------


def record_match_keys(
    record: MatchRecord, rules: Sequence[BlockingRule] = DEFAULT_BLOCKING_RULES
) -> list[str]:
    """The record's blocking keys, ``rule:value`` (a long value is replaced by its hash)."""
    keys = []
    for rule in rules:
        value = rule.key(record)
        if not value:
            continue
        key = f"{rule.name}:{value}"
        if len(key) > KEY_MAX_LENGTH:
            key = f"{rule.name}:#{hashlib.blake2b(value.encode(), digest_size=16).hexdigest()}"
        keys.append(key)
    return keys


def match_key_locks(keys: Iterable[str]) -> set[tuple[str, str]]:
    """The advisory lock keys of these blocking keys: matching a record holds them until its transaction
    ends, so two workers matching one person's records see each other's (``_candidates``)."""
    return {("match", key) for key in keys}


def attributes_match_keys(attributes: dict, source: str) -> list[str]:
    """The blocking keys of a record's normalised attributes."""
    return record_match_keys(MatchRecord.from_attributes(0, attributes or {}, source=source))


@dataclass
class _Row:
    """A live source record as the matcher sees it."""

    id: int
    profile_id: UUID
    source: str
    external_id: str
    match: MatchRecord
    keys: list[str] = field(default_factory=list)

    def reference(self) -> dict:
        return {"id": self.id, "source": self.source, "external_id": self.external_id}


def _row(record_id, profile_id, source: str, external_id: str, attributes: dict) -> _Row:
    match = MatchRecord.from_attributes(record_id, attributes or {}, source=source)
    return _Row(record_id, profile_id, source, external_id, match, record_match_keys(match))


def _source_slugs() -> dict[int, str]:
    return dict(Source.objects.values_list("id", "slug"))


# The records matched against come back chunk after chunk (the same postcodes, surnames and households):
# each process keeps the matchable form of the ones it loaded last, valid while the record's source and
# content hash (of its normalised attributes and identifiers) are the same; only the others' attributes are
# read and parsed again.
MATCHABLE_CACHE_SIZE = 50_000
_matchable: dict[int, tuple[tuple[int, str], MatchRecord]] = {}
memory_store(_matchable.clear)  # personal data: emptied after an erasure (cdp.memory)


def _matchable_load(records) -> list[tuple[int, UUID, str, str, MatchRecord]]:
    """(id, profile id, source slug, external id, matchable form) of these source records (a queryset)."""
    slugs = _source_slugs()
    found = [
        (pk, profile_id, source_id, external_id, (source_id, content_hash))
        for pk, profile_id, source_id, external_id, content_hash in records.values_list(
            "id", "profile_id", "source_id", "external_id", "content_hash"
        )
    ]
    stale = {pk for pk, *_, version in found if not version[1] or _matchable.get(pk, (None,))[0] != version}
    attributes = (
        dict(SourceRecord.objects.filter(id__in=stale).values_list("id", "attributes")) if stale else {}
    )
    loaded = []
    for pk, profile_id, source_id, external_id, version in found:
        if pk in attributes:
            match = MatchRecord.from_attributes(pk, attributes[pk] or {}, source=slugs[source_id])
            _matchable.pop(pk, None)
            if version[1]:  # a record without a hash is never taken from here
                _matchable[pk] = (version, match)
        elif pk in stale:
            continue  # erased between the two reads
        else:
            match = _matchable[pk][1]
        loaded.append((pk, profile_id, slugs[source_id], external_id, match))
    for pk in list(itertools.islice(_matchable, max(0, len(_matchable) - MATCHABLE_CACHE_SIZE))):
        del _matchable[pk]  # the oldest entries first (dicts keep insertion order)
    return loaded


def _keys_write(rows: Iterable[_Row]) -> None:
    values_insert(
        model=MatchKey, fields=["record", "key"], rows=[(row.id, key) for row in rows for key in row.keys]
    )


def match_keys_rebuild(*, missing_only: bool = False, batch_size: int = 5_000) -> int:
    """Recompute the blocking keys of every live record (after a change of the blocking rules), or only of
    the records that have none (data loaded before keys existed). Returns the number of records keyed."""
    live = SourceRecord.objects.filter(deleted_at__isnull=True, profile_id__isnull=False)
    if missing_only:
        live = live.exclude(id__in=MatchKey.objects.values("record_id"))
    ids = list(live.order_by("id").values_list("id", flat=True))
    slugs = _source_slugs()
    for start in range(0, len(ids), batch_size):
        batch = ids[start : start + batch_size]
        with transaction.atomic():
            rows = [
                _row(pk, profile_id, slugs[source_id], external_id, attributes)
                for pk, profile_id, source_id, external_id, attributes in SourceRecord.objects.filter(
                    id__in=batch
                ).values_list("id", "profile_id", "source_id", "external_id", "attributes")
            ]
            if not missing_only:
                MatchKey.objects.filter(record_id__in=batch).delete()
            _keys_write(rows)
    if not missing_only:
        MatchKey.objects.filter(record__deleted_at__isnull=False).delete()
    return len(ids)


# --- The model -----------------------------------------------------------------------------------------

_MODEL_CACHE: dict[int, MatchModel] = {}
# Its term frequencies hold names; an erasure removes the person's from the stored versions (forget.py), and
# each process then reads the version again (cdp.memory).
memory_store(_MODEL_CACHE.clear)


def match_model_active() -> tuple[int, MatchModel] | None:
    """The newest active model version (id, model); parameters are read once per process and version."""
    version_id = (
        MatchModelVersion.objects.filter(active=True)
        .order_by("-created_at", "-id")
        .values_list("id", flat=True)
        .first()
    )
    if version_id is None:
        return None
    model = _MODEL_CACHE.get(version_id)
    if model is None:
        params = MatchModelVersion.objects.values_list("params", flat=True).get(pk=version_id)
        model = MatchModel.from_dict(params)
        _MODEL_CACHE.clear()
        _MODEL_CACHE[version_id] = model
    return version_id, model


@dataclass
class MatchTraining:
    """What one estimate used and found."""

    version: MatchModelVersion
    model: MatchModel
    live_records: int
    records: int
    candidate_pairs: int
    prior_pairs: int
    expected_matches: float
    activated: bool
    reason: str
    seconds: float
    sources: dict[str, int]


class TrainingImpossible(Exception):
    """Too few records to estimate anything."""


def match_model_train(
    *, max_records: int = MAX_TRAINING_RECORDS, seed: int = 0, activate: bool = True
) -> MatchTraining:
    """Estimate a model from the live records (on larger tables a random sample of ``max_records``, and
    for EM whole blocks drawn from all of them), store it, and make it the active one when the data showed
    enough matches to learn from (and ``activate``)."""
    started = time.perf_counter()
    ids = list(
        SourceRecord.objects.filter(deleted_at__isnull=True, profile_id__isnull=False)
        .order_by("id")
        .values_list("id", flat=True)
    )
    live = len(ids)
    if live < 2:
        raise TrainingImpossible(f"{live} live record(s): nothing to estimate a model from")
    rng = random.Random(seed)
    sampled = live > max_records
    if sampled:
        ids = sorted(rng.sample(ids, max_records))
    slugs = _source_slugs()
    records = _matchables_read(ids, slugs)
    # A uniform sample keeps a duplicate pair with the square of the sampling rate: the sessions' EM draws
    # whole blocks from the whole table instead (the sample still gives u, term frequencies and the prior).
    session_records = _session_blocks_read(rng, slugs) if sampled else None
    estimate = records_estimate(
        records, rng=rng, seed=seed, session_records=session_records, population=live if sampled else None
    )
    if estimate.unusable:
        reason = estimate.unusable
    elif not activate:
        reason = "estimated; not activated (asked)"
    else:
        reason = (
            f"EM found about {estimate.expected:.0f} matching pairs among {estimate.pairs} candidate pairs"
        )
    sources = Counter(r.source for r in records)
    params = estimate.model.to_dict() | {
        "training": {
            "live_records": live,
            "records": len(records),
            "sampled": sampled,
            "session_records": [len(m) for m in session_records] if session_records else None,
            "candidate_pairs": estimate.pairs,
            "prior_pairs": estimate.prior_pairs,
            "expected_matches": round(estimate.expected, 1),
            "sources": dict(sources),
            "seed": seed,
            "neutral": estimate.neutral,
            "reason": reason,
        }
    }
    with transaction.atomic():
        version = MatchModelVersion.objects.create(
            params=params,
            records_used=len(records),
            pairs_used=estimate.prior_pairs,
            active=estimate.usable and activate,
        )
        if version.active:
            MatchModelVersion.objects.filter(active=True).exclude(pk=version.pk).update(active=False)
    return MatchTraining(
        version,
        estimate.model,
        live,
        len(records),
        estimate.pairs,
        estimate.prior_pairs,
        estimate.expected,
        version.active,
        reason,
        time.perf_counter() - started,
        dict(sources),
    )


@dataclass
class Estimate:
    model: MatchModel
    pairs: int  # candidate pairs among the records (of the table the sample was drawn from)
    prior_pairs: int  # of which the prior was estimated on
    expected: float  # matching pairs among the candidate pairs, by the estimate
    neutral: list[str]  # comparisons the data barely has: they weigh nothing
    unusable: str  # why the model must not be activated, or ""

    @property
    def usable(self) -> bool:
        return not self.unusable


def _matchables_read(ids: Sequence[int], slugs: dict[int, str]) -> list[MatchRecord]:
    records = []
    for start in range(0, len(ids), 5_000):
        for pk, source_id, attributes in SourceRecord.objects.filter(
            id__in=ids[start : start + 5_000], deleted_at__isnull=True
        ).values_list("id", "source_id", "attributes"):
            records.append(MatchRecord.from_attributes(pk, attributes or {}, source=slugs[source_id]))
    return records


def session_blocks_pick(
    sizes: Mapping[str, int], rng: random.Random, *, budget: int = MAX_SESSION_PAIRS
) -> list[str]:
    """Keys of whole blocks of one training session's rule, drawn at random until they hold about
    ``budget`` pairs. Every pair of the table's blocks is then equally likely to be drawn, as in a sample
    of pairs, and a block's duplicates come with it (a sample of records keeps a pair with the square of
    its rate). Blocks of more than ``MAX_BLOCK_SIZE`` records are left out: a city-wide postcode or a
    common name compares strangers by the thousand (the session would split it by initials)."""
    keys = sorted(key for key, size in sizes.items() if 2 <= size <= MAX_BLOCK_SIZE)
    rng.shuffle(keys)
    picked, pairs = [], 0
    for key in keys:
        if pairs >= budget:
            break
        picked.append(key)
        pairs += sizes[key] * (sizes[key] - 1) // 2
    return picked


def records_session_blocks(
    records: Sequence[MatchRecord], rng: random.Random, *, budget: int = MAX_SESSION_PAIRS
) -> list[list[MatchRecord]]:
    """Per training session, the records of whole blocks of its rule drawn at random
    (``session_blocks_pick``) from these records: what ``match_model_train`` reads from the stored blocking
    keys of a table larger than its sample, for records held in memory."""
    drawn = []
    for session in DEFAULT_TRAINING_SESSIONS:
        keys = [session.rule.key(record) for record in records]
        picked = set(session_blocks_pick(Counter(key for key in keys if key), rng, budget=budget))
        drawn.append([record for record, key in zip(records, keys, strict=True) if key in picked])
    return drawn


def _session_blocks_read(rng: random.Random, slugs: dict[int, str]) -> list[list[MatchRecord]]:
    """``records_session_blocks`` over the whole table, from the stored blocking keys (the sessions' rules
    are blocking rules: their keys are stored as ``rule:value``)."""
    wanted = Q()
    for session in DEFAULT_TRAINING_SESSIONS:
        wanted |= Q(key__startswith=f"{session.rule.name}:")
    sizes: dict[str, dict[str, int]] = defaultdict(dict)
    for key, size in (
        MatchKey.objects.filter(wanted).values_list("key").annotate(size=Count("id")).filter(size__gte=2)
    ):
        sizes[key.partition(":")[0]][key] = size
    picked = {
        session.rule.name: session_blocks_pick(sizes[session.rule.name], rng)
        for session in DEFAULT_TRAINING_SESSIONS
    }
    members: dict[str, list[int]] = defaultdict(list)
    for keys in picked.values():
        for start in range(0, len(keys), 5_000):
            for key, record_id in MatchKey.objects.filter(key__in=keys[start : start + 5_000]).values_list(
                "key", "record_id"
            ):
                members[key.partition(":")[0]].append(record_id)
    read = {r.record_id: r for r in _matchables_read(sorted(set().union(*members.values())), slugs)}
    return [
        [read[pk] for pk in sorted(members[session.rule.name]) if pk in read]
        for session in DEFAULT_TRAINING_SESSIONS
    ]


def records_estimate(
    records: Sequence[MatchRecord],
    *,
    rng: random.Random,
    seed: int = 0,
    session_records: Sequence[Sequence[MatchRecord]] | None = None,
    population: int | None = None,
) -> Estimate:
    """Estimate a model from these records (the training sample), exactly as ``match_model_train`` does, and
    say whether it may be used; ``session_records`` as in ``model_estimate``. No database access.

    ``population``: the number of records the sample was drawn from at random. The candidate pairs and the
    matches among them are then given for the whole table: a pair is in the sample with the square of the
    sampling rate."""
    index = BlockingIndex(DEFAULT_BLOCKING_RULES, max_block_size=MAX_BLOCK_MEMBERS)
    index.extend(records)
    prior_pairs, pairs = index.candidate_pairs_sample(rng, MAX_PRIOR_PAIRS)  # millions on a big sample
    model = model_estimate(
        records,
        prior_pairs,
        max_session_pairs=MAX_SESSION_PAIRS,
        seed=seed,
        session_records=session_records,
    )
    neutral = _neutralise_unobserved(model, records)
    scale = (population / len(records)) ** 2 if population and len(records) else 1.0
    candidate_pairs = round(pairs * scale)
    expected = model.match_share * candidate_pairs
    implausible = _implausible(model)
    if expected < MIN_EXPECTED_MATCHES:
        unusable = (
            f"EM found about {expected:.0f} matching pairs among {candidate_pairs} candidate pairs (fewer than"
            f" {MIN_EXPECTED_MATCHES}): not enough duplicates in the data yet to learn what a match looks like"
        )
    elif implausible:
        unusable = f"not activated: {implausible} (the data holds too few duplicates to learn from yet)"
    else:
        unusable = ""
    return Estimate(model, candidate_pairs, len(prior_pairs), expected, neutral, unusable)


IDENTIFYING_COMPARISONS = ("first_name", "last_name", "birth_date")
MIN_VALUES_SHARE = 0.01  # of the training records; and at least MIN_VALUES records
MIN_VALUES = 20


def _neutralise_unobserved(model: MatchModel, records: Sequence[MatchRecord]) -> list[str]:
    """Make the comparisons the data barely has (no source sends a gender, say) weigh nothing at any level
    (m = u) instead of keeping EM's starting values and floors, which would give a later source's first
    values arbitrary weight. Returns their names."""
    needed = max(MIN_VALUES, MIN_VALUES_SHARE * len(records))
    neutral = []
    for comparison, params in zip(model.comparisons, model.params, strict=True):
        present = sum(1 for record in records if comparison.value(record))
        if present < needed:
            params.m = list(params.u)
            params.term_frequency = False
            neutral.append(params.name)
    return neutral


def _implausible(model: MatchModel) -> str:
    """Why an estimate cannot describe duplicates, or "". EM always finds two classes; in data without
    duplicates the "match" class is whatever strangers happen to share, and its records then disagree on
    their names or birth dates more often than they agree. Such a model is not used."""
    for params in model.params:
        if params.name in IDENTIFYING_COMPARISONS and params.m != params.u and params.m[0] <= params.m[-1]:
            return (
                f"the estimated matches disagree on {params.name} more often than they agree"
                f" (m exact {params.m[0]:.3f}, m disagree {params.m[-1]:.3f})"
            )
    return ""


def _training_due(*, exact: bool) -> bool:
    """Whether a (new) estimate is due: enough records and none yet, or the table has doubled since."""
    minimum = settings.CDP_MATCH_TRAIN_MIN_RECORDS
    live = SourceRecord.objects.filter(deleted_at__isnull=True, profile_id__isnull=False)
    latest = (
        MatchModelVersion.objects.order_by("-created_at", "-id")
        .values_list("params__training__live_records", flat=True)
        .first()
    )
    if latest is None and not MatchModelVersion.objects.exists():
        return live[:minimum].count() >= minimum
    trained_on = int(latest or 0)
    if trained_on >= MAX_TRAINING_RECORDS:
        return False
    target = max(RETRAIN_GROWTH * trained_on, minimum)
    if not exact:  # cheap: the highest record id bounds the number of records from above
        highest = SourceRecord.objects.aggregate(highest=Max("id"))["highest"] or 0
        return highest >= target
    return live[:target].count() >= target


_scheduled_at: dict[str, float] = {}


def _training_schedule_if_due() -> None:
    """Schedule the training task once this transaction commits; with a broker at most every few minutes per
    process (the queued task may not have run yet), eagerly whenever due (it has run by the next chunk)."""
    from cdp.celery import app

    last = _scheduled_at.get("train", 0.0)
    if last and time.monotonic() - last < SCHEDULE_EVERY_SECONDS:
        return
    if not _training_due(exact=False):
        return
    if not app.conf.task_always_eager:
        _scheduled_at["train"] = time.monotonic()

    def schedule() -> None:
        from profiles.tasks import match_model_train_task

        match_model_train_task.delay()

    transaction.on_commit(schedule)


def match_model_train_if_due() -> MatchTraining | None:
    """The automatic training: estimate a model if one is due (see the module docstring); when it is the
    first active one, match the records that arrived without a model. Safe to run twice at once."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            identifier_keys_lock([("match-model", "train")])  # one trainer at a time
        if not _training_due(exact=True):
            _scheduled_at.pop("train", None)
            return None
        training = match_model_train()
    _scheduled_at.pop("train", None)
    logger.info("match model %s estimated: %s", training.version.pk, training.reason)
    if training.activated:
        match_backlog()
    return training


# --- Incremental matching ------------------------------------------------------------------------------


def records_match(
    *,
    source: Source,
    items: list[PipelineItem],
    records: dict[str, SourceRecord],
    profile_ids: set[UUID],
    link: bool = True,
) -> set[UUID]:
    """Keep the blocking keys of a resolved chunk's records and match them with the records of other profiles.

    Called by ``records_resolve`` inside its transaction, after the chunk is written. Returns
    ``profile_ids`` with every profile merged away replaced by its survivor.
    """
    applied, replaced = [], []
    for item in items:
        record = records.get(item.external_id)
        if record is None or record.pk is None:
            continue
        if item.outcome in (RecordChange.Kind.CREATED, RecordChange.Kind.UPDATED):
            applied.append(record)
            if item.outcome == RecordChange.Kind.UPDATED:
                replaced.append(record.pk)
        elif item.outcome == "deleted":
            replaced.append(record.pk)
    if replaced:
        MatchKey.objects.filter(record_id__in=replaced).delete()
    rows = [
        _row(record.pk, record.profile_id, source.slug, record.external_id, record.attributes)
        for record in applied
    ]
    _keys_write(rows)
    rows = [row for row in rows if row.keys]
    if not link or not rows:
        return profile_ids
    _training_schedule_if_due()
    active = match_model_active()
    if active is None:
        return profile_ids
    merged = _rows_link(_rows_bringing_keys(rows), *active)
    return {_follow(merged, profile_id) for profile_id in profile_ids}


def _rows_bringing_keys(rows: list[_Row]) -> list[_Row]:
    """The records worth matching, each with only the blocking keys it brings its profile (keys none of the
    profile's other records has; a record alone on its profile brings all of its own). Through the keys its
    profile had, it would meet only candidates the profile's other records met already. At 100,000
    records (seed 0) matching every applied record with all its keys cost 44 % more CPU than matching
    only the records alone on their profile; with this, 7 % more, for the recall of matching through every
    key (after intake 0.8944 against 0.8945; lone records only: 0.8894). One query."""
    known: dict[UUID, set[str]] = defaultdict(set)
    for profile_id, key in (
        MatchKey.objects.filter(record__profile_id__in={row.profile_id for row in rows})
        .exclude(record_id__in=[row.id for row in rows])
        .values_list("record__profile_id", "key")
    ):
        known[profile_id].add(key)
    bringing = []
    for row in rows:
        new_keys = [key for key in row.keys if key not in known[row.profile_id]]
        if new_keys:
            bringing.append(replace(row, keys=new_keys))
    return bringing


def match_backlog(*, chunk_size: int | None = None) -> int:
    """Match every live record alone on its profile with the active model (the records that arrived before
    there was one), chunk by chunk, each chunk one transaction. Returns the number of records examined."""
    active = match_model_active()
    if active is None:
        return 0
    match_keys_rebuild(missing_only=True)
    chunk_size = chunk_size or settings.CDP_RESOLVE_CHUNK_SIZE
    live = SourceRecord.objects.filter(deleted_at__isnull=True, profile_id__isnull=False)
    alone = live.values("profile_id").annotate(n=Count("id")).filter(n=1).values("profile_id")
    ids = list(live.filter(profile_id__in=alone).order_by("id").values_list("id", flat=True))
    deferred = _backlog_pass(ids, chunk_size, active, wait=False)
    _backlog_pass(deferred, chunk_size, active, wait=True)
    return len(ids)


def _backlog_pass(
    ids: list[int], chunk_size: int, active: tuple[int, MatchModel], *, wait: bool
) -> list[int]:
    """Match these records chunk by chunk, each chunk one transaction. It runs beside the workers: without
    ``wait``, a record whose blocking keys another transaction holds is not waited for but returned, to be
    matched in a later pass (as the pipeline's claim step defers); with it, every lock is waited for."""
    live = SourceRecord.objects.filter(deleted_at__isnull=True, profile_id__isnull=False)
    slugs = _source_slugs()
    deferred: list[int] = []
    for start in range(0, len(ids), chunk_size):
        with transaction.atomic():
            rows = [
                _row(pk, profile_id, slugs[source_id], external_id, attributes)
                for pk, profile_id, source_id, external_id, attributes in live.filter(
                    id__in=ids[start : start + chunk_size]
                ).values_list("id", "profile_id", "source_id", "external_id", "attributes")
            ]
            still_alone = _profiles_alone({row.profile_id for row in rows})
            rows = [row for row in rows if row.profile_id in still_alone and row.keys]
            if not wait:
                held = identifier_keys_try_lock(match_key_locks(key for row in rows for key in row.keys))
                busy = {row.id for row in rows if not match_key_locks(row.keys) <= held}
                deferred += sorted(busy)
                rows = [row for row in rows if row.id not in busy]
            _rows_link(rows, *active)
    return deferred


def _follow(merged: dict[UUID, UUID], profile_id: UUID) -> UUID:
    while profile_id in merged:
        profile_id = merged[profile_id]
    return profile_id


def _profiles_alone(profile_ids: Collection[UUID]) -> set[UUID]:
    """The profiles among these that hold exactly one live record."""
    return {
        profile_id
        for profile_id, count in SourceRecord.objects.filter(
            profile_id__in=list(profile_ids), deleted_at__isnull=True
        )
        .values_list("profile_id")
        .annotate(count=Count("id"))
        if count == 1
    }


def _candidates(rows: list[_Row]) -> dict[int, list[int]]:
    """Per row, the ids of the records worth comparing it with (see "Bounds" in the module docstring)."""
    identifier_keys_lock(match_key_locks(key for row in rows for key in row.keys))
    wanted = {key for row in rows for key in row.keys}
    sizes = dict(
        MatchKey.objects.filter(key__in=wanted).values_list("key").annotate(members=Count("id")).order_by()
    )
    usable = {key for key, size in sizes.items() if size <= MAX_BLOCK_MEMBERS}
    members: dict[str, list[int]] = defaultdict(list)
    for key, record_id in MatchKey.objects.filter(key__in=usable).values_list("key", "record_id"):
        members[key].append(record_id)
    found = {}
    for row in rows:
        shared = Counter(
            record_id for key in row.keys for record_id in members.get(key, ()) if record_id != row.id
        )
        ranked = sorted(shared.items(), key=lambda item: (-item[1], -item[0]))[:MAX_CANDIDATES]
        found[row.id] = [record_id for record_id, _ in ranked]
    return found


@dataclass
class _Link:
    row: _Row
    other: _Row
    decision: Decision


def _rows_link(rows: list[_Row], version_id: int, model: MatchModel) -> dict[UUID, UUID]:
    """Score these records against their candidates on other profiles and act on the decisions. Returns
    merged profile -> survivor."""
    if not rows:
        return {}
    candidates = _candidates(rows)
    wanted = {record_id for ids in candidates.values() for record_id in ids}
    by_id: dict[int, _Row] = {row.id: row for row in rows}
    for pk, profile_id, source, external_id, match in _matchable_load(
        SourceRecord.objects.filter(
            id__in=wanted - by_id.keys(), deleted_at__isnull=True, profile_id__isnull=False
        )
    ):
        by_id[pk] = _Row(pk, profile_id, source, external_id, match)

    # Each unordered pair once, on two different profiles; the newer record is "the record".
    pairs: dict[frozenset, tuple[_Row, _Row]] = {}
    for row in rows:
        for other_id in candidates[row.id]:
            other = by_id.get(other_id)
            if other is None or other.profile_id == row.profile_id:
                continue
            newer, older = (row, other) if row.id > other.id else (other, row)
            pairs.setdefault(frozenset((row.id, other_id)), (newer, older))
    if not pairs:
        return {}
    decisions = _pairs_decide(list(pairs.values()), model)
    # Per pair of profiles, the strongest evidence decides.
    best: dict[frozenset, _Link] = {}
    for link in decisions:
        profiles = frozenset((link.row.profile_id, link.other.profile_id))
        if profiles not in best or link.decision.probability > best[profiles].decision.probability:
            best[profiles] = link
    if not best:
        return {}
    return _links_apply(sorted(best.values(), key=lambda found: -found.decision.probability), version_id)


def _pairs_decide(pairs: list[tuple[_Row, _Row]], model: MatchModel) -> list[_Link]:
    """Score every pair (vectorised, like the engine) and decide those above the review threshold."""
    records: list[MatchRecord] = []
    position: dict[int, int] = {}
    for a, b in pairs:
        for row in (a, b):
            if row.id not in position:
                position[row.id] = len(records)
                records.append(row.match)
    indices = [(position[a.id], position[b.id]) for a, b in pairs]
    matrix = comparison_matrix(records, indices, model.comparisons)
    totals = total_weights(model, records, indices, matrix)
    probabilities = 1.0 / (1.0 + np.exp2(-np.clip(totals, -60, 60)))
    links = []
    for index in np.nonzero(probabilities >= DEFAULT_THRESHOLDS.review)[0]:
        a, b = pairs[index]
        score = model.score(a.match, b.match, tuple(int(v) for v in matrix[index]))
        decision = decide(score, DEFAULT_THRESHOLDS, pair=(a.match, b.match))
        if decision.outcome != NEW:
            links.append(_Link(a, b, decision))
    return links


def _links_apply(links: list[_Link], version_id: int) -> dict[UUID, UUID]:
    """Merge or suggest, strongest first, with the guardrails; returns merged profile -> survivor.

    Decided in memory on the locked profiles, then written for the whole chunk at once (``_groups_merge``):
    a merge per link through ``profiles_merge`` cost some twenty queries each."""
    survivor_of = profiles_lock(
        {pid for link in links for pid in (link.row.profile_id, link.other.profile_id)}
    )
    live = set(survivor_of.values())
    members: dict[UUID, list[MatchRecord]] = defaultdict(list)
    for _, profile_id, _, _, match in _matchable_load(
        SourceRecord.objects.filter(profile_id__in=live, deleted_at__isnull=True)
    ):
        members[profile_id].append(match)
    keys: dict[UUID, set] = defaultdict(set)
    for profile_id, kind, value in Identity.objects.filter(profile_id__in=live).values_list(
        "profile_id", "type", "value"
    ):
        keys[profile_id].add((kind, value))
    rules = identifier_rules_load()
    ids = [r.record_id for records in members.values() for r in records]
    never: dict[int, set[int]] = defaultdict(set)
    for a, b in NeverLink.objects.filter(record_a_id__in=ids, record_b_id__in=ids).values_list(
        "record_a_id", "record_b_id"
    ):
        never[a].add(b)
        never[b].add(a)

    parent: dict[UUID, UUID] = {}

    def find(profile_id: UUID) -> UUID:
        while profile_id in parent:
            profile_id = parent[profile_id]
        return profile_id

    evidence_of: dict[UUID, dict] = {}
    suggestions: list[MatchSuggestion] = []
    limit = settings.CDP_MATCH_MAX_RECORDS_PER_SOURCE
    for link in links:
        own, theirs = survivor_of[link.row.profile_id], survivor_of[link.other.profile_id]
        left, right = find(own), find(theirs)
        if left == right:
            continue
        left_ids = {r.record_id for r in members[left]}
        if any(never[r.record_id] & left_ids for r in members[right]):
            continue  # a steward separated these people: neither a link nor a question again
        explanation = link.decision.explanation() | {
            "model_version": version_id,
            "record": link.row.reference(),
            "candidate_record": link.other.reference(),
        }
        if link.decision.outcome == LINK:
            stopped, bridged = _guard(members[left], members[right], limit)
            violation = None if stopped else rules.violation(keys[left] | keys[right])
            if violation is not None:
                kind, count, most = violation
                stopped = f"merging would put {count} {kind} identifiers on one profile (limit {most})"
            if not stopped:
                if bridged:
                    explanation["guard_bridged"] = bridged
                parent[right] = left
                members[left] += members.pop(right)
                keys[left] |= keys.pop(right, set())
                evidence_of.setdefault(own, explanation)
                evidence_of.setdefault(theirs, explanation)
                continue
            explanation |= {"outcome": "review", "reason": f"above the link threshold, but {stopped}"}
        suggestions.append(
            MatchSuggestion(
                record_id=link.row.id,
                candidate_record_id=link.other.id,
                profile_id=own,
                candidate_profile_id=theirs,
                probability=link.decision.probability,
                explanation=explanation,
            )
        )
    groups: dict[UUID, set[UUID]] = defaultdict(set)
    for profile_id in parent:
        groups[find(profile_id)].update((profile_id, find(profile_id)))
    merged = _groups_merge(list(groups.values()), evidence_of)
    moved = {pid: live_id for pid, live_id in survivor_of.items() if pid != live_id}
    merged |= {pid: _follow(merged, live_id) for pid, live_id in moved.items()}
    _suggestions_write(suggestions, merged)
    return merged


def _groups_merge(groups: list[set[UUID]], evidence_of: dict[UUID, dict]) -> dict[UUID, UUID]:
    """Merge each group of (locked, live) profiles into its oldest, all groups at once; the same tables
    re-pointed by ``resolution.profiles_repoint``, one UPDATE per table for the whole chunk."""
    if not groups:
        return {}
    created = dict(Profile.objects.filter(pk__in=set().union(*groups)).values_list("pk", "created_at"))
    now = timezone.now()
    mapping: dict[UUID, UUID] = {}
    events = []
    for group in groups:
        survivor = min(group, key=lambda pk: (created[pk], str(pk)))
        for loser in sorted(group - {survivor}, key=str):
            mapping[loser] = survivor
            events.append(
                MergeEvent(
                    survivor_id=survivor,
                    merged_id=loser,
                    rule=RULE_PROBABILISTIC,
                    evidence=evidence_of[loser],
                    created_at=now,
                )
            )

    profiles_repoint(mapping, now)
    MergeEvent.objects.bulk_create(events)
    profiles_refresh(profile_ids=set(mapping.values()))
    return mapping


def _guard(left: list[MatchRecord], right: list[MatchRecord], limit: int) -> tuple[str, list[dict]]:
    """Why these two profiles must not be joined on a probabilistic link ("" when nothing stops it), and the
    pairs of their records nothing confirmed as one person that a third record bridged, for the evidence."""
    if len(left) * len(right) > MAX_CROSS_PAIRS:
        return f"joining would compare {len(left) * len(right)} pairs of records", []
    check = groups_conflict(left, right)
    if check.conflict:
        a, b, conflict = check.conflict
        return f"records {a.record_id} and {b.record_id}: {conflict}", []
    source, count = Counter(r.source for r in (*left, *right)).most_common(1)[0]
    if count > limit:
        return f"{count} records of source {source!r} on one profile (limit {limit})", []
    bridged = [
        {
            "records": [a.record_id, b.record_id],
            "confirmed_by": z.record_id,
            "objection": GIVEN_NAMES_DISAGREE_UNCONFIRMED,
        }
        for a, b, z in check.bridged
    ]
    return "", bridged


def _suggestions_write(suggestions: list[MatchSuggestion], merged: dict[UUID, UUID]) -> None:
    """Store the suggestions still between two profiles, one open per pair whichever way round."""
    for suggestion in suggestions:
        suggestion.profile_id = _follow(merged, suggestion.profile_id)
        suggestion.candidate_profile_id = _follow(merged, suggestion.candidate_profile_id)
    suggestions = [s for s in suggestions if s.profile_id != s.candidate_profile_id]
    if not suggestions:
        return
    ids = {pk for s in suggestions for pk in (s.record_id, s.candidate_record_id)}
    open_pairs = {
        frozenset(pair)
        for pair in MatchSuggestion.objects.filter(
            Q(record_id__in=ids) & Q(candidate_record_id__in=ids), status=MatchSuggestion.Status.OPEN
        ).values_list("record_id", "candidate_record_id")
    }
    now = timezone.now()
    fresh = []
    for suggestion in suggestions:
        pair = frozenset((suggestion.record_id, suggestion.candidate_record_id))
        if pair not in open_pairs:
            open_pairs.add(pair)
            suggestion.created_at = now
            fresh.append(suggestion)
    MatchSuggestion.objects.bulk_create(fresh, ignore_conflicts=True)
