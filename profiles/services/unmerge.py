"""Unmerge: a steward splits a profile that holds two people, by moving chosen source records to a new one.

What moves with the records is what only they explain: the identities no remaining record carries, the
records' history, and the events of the tracking identities they are (``userId`` or
``anonymous:<anonymousId>``). An identifier both halves carry cannot belong to two profiles: it stays with the
original, and the split entry says so for each moved record. Every moved record is then marked as never to be
linked with every remaining one, so neither the deterministic resolver nor a probabilistic link redoes the
mistake. Apps above ``profiles`` (consent) follow through ``CDP_PROFILE_SPLIT_HOOKS``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string

from ingestion.tracking import ANONYMOUS_PREFIX
from profiles.models import (
    Event,
    Identity,
    MatchSuggestion,
    NeverLink,
    Profile,
    ProfileSplit,
    RecordChange,
    ResolutionConflict,
    SourceRecord,
)
from profiles.selectors import profile_get

from .refresh import profiles_refresh
from .resolution import MAX_LOCK_ROUNDS, ResolutionRetry, identifier_keys_lock, profiles_lock

NEVER_LINK_REASON = "unmerge"


class UnmergeInvalid(ValueError):
    """The request cannot be carried out as asked; ``field`` names the input at fault."""

    def __init__(self, field: str, reason: str, record_id: int | None = None):
        super().__init__(reason)
        self.field = field
        self.reason = reason
        self.record_id = record_id  # the record at fault, when one is


def never_link_pairs(left: Collection[int], right: Collection[int]) -> list[tuple[int, int]]:
    """Every (lower id, higher id) pair between the two sets of records, each once."""
    return sorted({(min(a, b), max(a, b)) for a in left for b in right if a != b})


def _tracking_events(profile_id: UUID, records: list[SourceRecord]) -> Q:
    """Events of the profile whose tracking identity is one of these records: a message with a ``userId`` is
    that record's; one with only an ``anonymousId`` is the record ``anonymous:<id>`` (``ingestion.tracking``)."""
    user_ids: dict[int, list[str]] = defaultdict(list)
    anonymous_ids: dict[int, list[str]] = defaultdict(list)
    for record in records:
        if record.external_id.startswith(ANONYMOUS_PREFIX):
            anonymous_ids[record.source_id].append(record.external_id[len(ANONYMOUS_PREFIX) :])
        else:
            user_ids[record.source_id].append(record.external_id)
    match = Q(pk__in=[])
    for source_id, ids in user_ids.items():
        match |= Q(source_id=source_id, user_id__in=ids)
    for source_id, ids in anonymous_ids.items():
        match |= Q(source_id=source_id, user_id="", anonymous_id__in=ids)
    return Q(profile_id=profile_id) & match


def _suggestions_repoint(profile_ids: list[UUID], actor: str, now) -> None:
    """Open suggestions touching the halves now follow their records; those whose two records are one
    profile, gone, or on the two sides of the split (never linked now) are obsolete."""
    open_suggestions = list(
        MatchSuggestion.objects.filter(status=MatchSuggestion.Status.OPEN)
        .filter(
            Q(profile_id__in=profile_ids)
            | Q(candidate_profile_id__in=profile_ids)
            | Q(record__profile_id__in=profile_ids)
            | Q(candidate_record__profile_id__in=profile_ids)
        )
        .select_related("record", "candidate_record")
    )
    if not open_suggestions:
        return
    record_ids = {s.record_id for s in open_suggestions} | {s.candidate_record_id for s in open_suggestions}
    never = set(
        NeverLink.objects.filter(record_a_id__in=record_ids, record_b_id__in=record_ids).values_list(
            "record_a_id", "record_b_id"
        )
    )
    repointed, obsolete = [], []
    for suggestion in open_suggestions:
        mine, theirs = suggestion.record.profile_id, suggestion.candidate_record.profile_id
        a, b = sorted((suggestion.record_id, suggestion.candidate_record_id))
        gone = suggestion.record.deleted_at is not None or suggestion.candidate_record.deleted_at is not None
        if gone or mine is None or theirs is None or mine == theirs or (a, b) in never:
            obsolete.append(suggestion.pk)
        elif (mine, theirs) != (suggestion.profile_id, suggestion.candidate_profile_id):
            suggestion.profile_id, suggestion.candidate_profile_id = mine, theirs
            repointed.append(suggestion)
    MatchSuggestion.objects.bulk_update(repointed, ["profile", "candidate_profile"])
    MatchSuggestion.objects.filter(pk__in=obsolete).update(
        status=MatchSuggestion.Status.OBSOLETE, decided_by=actor, decided_at=now
    )


def _live_records(profile_id: UUID) -> list[SourceRecord]:
    return list(
        SourceRecord.objects.filter(profile_id=profile_id, deleted_at__isnull=True).select_related("source")
    )


def _record_keys(records: list[SourceRecord]) -> set[tuple[str, str]]:
    keys = {(record.source.slug, record.external_id) for record in records}
    return keys.union(*({tuple(key) for key in record.identifiers} for record in records))


def _lock(profile_id: UUID) -> tuple[list[SourceRecord], UUID]:
    """Lock like the resolver, in its order: the identifier keys of the profile's records (advisory), then
    the profile. Returns the live records and the live profile id (a merged-away id is followed)."""
    profile = profile_get(profile_id=profile_id)
    if profile is None:
        raise UnmergeInvalid("profile", f"no profile {profile_id}")
    current, locked_keys = profile.pk, set()
    for _ in range(MAX_LOCK_ROUNDS):
        keys = _record_keys(_live_records(current))
        identifier_keys_lock(keys - locked_keys)
        locked_keys |= keys
        survivor = profiles_lock([current])[current]
        records = _live_records(survivor)
        if survivor == current and _record_keys(records) <= locked_keys:
            if not records:
                raise UnmergeInvalid("profile", f"profile {current} has no live source records to split")
            return records, current
        current = survivor  # merged or given new records while we waited: lock what it is now
    raise ResolutionRetry("the profile kept changing while it was being locked")


def _split_hooks_run(*, profile_ids: list[UUID], actor: str) -> None:
    for path in getattr(settings, "CDP_PROFILE_SPLIT_HOOKS", ()):
        import_string(path)(profile_ids=profile_ids, actor=actor)


@transaction.atomic
def profile_unmerge(
    *, profile_id: UUID | str, record_ids: Collection[int], actor: str, reason: str
) -> Profile:
    """Move these live source records of the profile (a merged-away id stands for its survivor) to a new
    profile; return the new profile.

    Both golden records are recomputed from the records each half keeps, so merging two profiles and splitting
    them again gives back the golden values they had. Raises ``UnmergeInvalid`` when the profile is unknown
    or the records are not a proper part of it.
    """
    try:
        profile_id = UUID(str(profile_id))
    except ValueError:
        raise UnmergeInvalid("profile", f"{profile_id!r} is not a profile id") from None
    wanted = set(record_ids)
    if not wanted:
        raise UnmergeInvalid("records", "choose at least one source record to move")

    records, current = _lock(profile_id)
    by_id = {record.pk: record for record in records}
    foreign = sorted(wanted - by_id.keys())
    if foreign:
        raise UnmergeInvalid(
            "records",
            f"record {foreign[0]} is not a live source record of profile {current}",
            record_id=foreign[0],
        )
    moved = [by_id[pk] for pk in sorted(wanted)]
    remaining = [record for record in records if record.pk not in wanted]
    if not remaining:
        raise UnmergeInvalid(
            "records", "every record of the profile was chosen; at least one must stay with it"
        )

    now = timezone.now()
    new_profile = Profile.objects.create(created_at=now, updated_at=now)
    moved_ids = [record.pk for record in moved]

    kept_keys = {tuple(key) for record in remaining for key in record.identifiers}
    moved_keys = {tuple(key) for record in moved for key in record.identifiers}
    identities = Identity.objects.filter(profile_id=current).values_list("id", "type", "value")
    moving_identities = [pk for pk, kind, value in identities if (kind, value) in moved_keys - kept_keys]
    Identity.objects.filter(pk__in=moving_identities).update(profile_id=new_profile.pk)

    SourceRecord.objects.filter(pk__in=moved_ids).update(profile_id=new_profile.pk, updated_at=now)
    RecordChange.objects.filter(record_id__in=moved_ids).update(profile_id=new_profile.pk)
    ResolutionConflict.objects.filter(record_id__in=moved_ids, profile_id=current).update(
        profile_id=new_profile.pk
    )
    Event.objects.filter(_tracking_events(current, moved)).update(profile_id=new_profile.pk)

    NeverLink.objects.bulk_create(
        [
            NeverLink(record_a_id=a, record_b_id=b, reason=NEVER_LINK_REASON, actor=actor, created_at=now)
            for a, b in never_link_pairs(moved_ids, [record.pk for record in remaining])
        ],
        batch_size=1000,
        ignore_conflicts=True,
    )
    profiles_refresh(profile_ids=[current, new_profile.pk])

    ProfileSplit.objects.create(
        profile_id=current,
        new_profile=new_profile,
        records=[
            {
                "id": record.pk,
                "source": record.source.slug,
                "external_id": record.external_id,
                # Carried by both halves: an identity belongs to one profile, so it stayed with the original.
                "identifiers_kept_on_original": sorted(
                    [kind, value] for kind, value in {tuple(k) for k in record.identifiers} & kept_keys
                ),
            }
            for record in moved
        ],
        reason=reason,
        actor=actor,
        created_at=now,
    )
    _suggestions_repoint([current, new_profile.pk], actor, now)
    _split_hooks_run(profile_ids=[current, new_profile.pk], actor=actor)
    new_profile.refresh_from_db()
    return new_profile
