"""Merging whole profiles on a decision taken outside the deterministic replay: a probabilistic link, a
steward accepting a suggested match, ``resolve --all``.

The deterministic resolver merges inside its own replay (``resolution._Replay``); both end in
``resolution._merge_into``, so a merge re-points the same tables whichever way it was decided.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection
from uuid import UUID

from django.db.models import Q
from django.utils import timezone

from profiles.models import Identity, MergeEvent, NeverLink, Profile, SourceRecord

from .refresh import profiles_refresh
from .resolution import _merge_into, identifier_rules_load, profiles_lock


class MergeRefused(Exception):
    """The merge would join people a steward separated, or break an identifier rule."""


def never_linked(profile_ids: Collection[UUID]) -> list[tuple[int, int]]:
    """Never-link pairs whose two records sit on two different ones of these (live) profiles."""
    profile_ids = list(profile_ids)
    if len(profile_ids) < 2:
        return []
    profile_of = dict(
        SourceRecord.objects.filter(profile_id__in=profile_ids, deleted_at__isnull=True).values_list(
            "id", "profile_id"
        )
    )
    pairs = NeverLink.objects.filter(Q(record_a_id__in=profile_of) & Q(record_b_id__in=profile_of))
    return [
        (a, b) for a, b in pairs.values_list("record_a_id", "record_b_id") if profile_of[a] != profile_of[b]
    ]


def merge_refusal(profile_ids: Collection[UUID]) -> str:
    """Why these live profiles must not become one, or "" when nothing stands in the way."""
    pairs = never_linked(profile_ids)
    if pairs:
        a, b = pairs[0]
        return f"records {a} and {b} were marked as different people (never link)"
    rules = identifier_rules_load()
    keys, held = set(), defaultdict(Counter)
    for profile_id, kind, value in Identity.objects.filter(profile_id__in=list(profile_ids)).values_list(
        "profile_id", "type", "value"
    ):
        keys.add((kind, value))
        held[profile_id][kind] += 1
    # A profile may lawfully hold more than a limit (an alias joined two user ids; staff lowered the limit):
    # only a merge that puts more on one profile than either side held already is refused.
    tolerated = Counter()
    for counts in held.values():
        tolerated |= counts
    violation = rules.violation(keys, tolerated)
    if violation is not None:
        kind, count, limit = violation
        return f"merging would put {count} {kind} identifiers on one profile (limit {limit})"
    return ""


def profiles_merge(
    *, profile_ids: Collection[UUID], rule: str, evidence: dict, actor: str = "system"
) -> UUID:
    """Merge these profiles (tombstones are followed) into the oldest one; return the survivor's id.

    Must run inside a transaction. Raises ``MergeRefused`` when a never-link pair or an identifier limit
    forbids it; nothing is written then.
    """
    survivor_of = profiles_lock(profile_ids)
    live = set(survivor_of.values())
    if len(live) == 1:
        return live.pop()
    refusal = merge_refusal(live)
    if refusal:
        raise MergeRefused(refusal)
    created = dict(Profile.objects.filter(pk__in=live).values_list("pk", "created_at"))
    survivor = min(live, key=lambda pk: (created[pk], str(pk)))
    losers = live - {survivor}
    now = timezone.now()
    _merge_into(survivor, losers, now)
    MergeEvent.objects.bulk_create(
        MergeEvent(
            survivor_id=survivor, merged_id=loser, rule=rule, evidence=evidence, actor=actor, created_at=now
        )
        for loser in sorted(losers, key=str)
    )
    profiles_refresh(profile_ids=[survivor])
    return survivor
