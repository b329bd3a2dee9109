"""Derived state of a profile (golden record, identities, name) recomputed from its live source records."""

from collections import defaultdict
from collections.abc import Collection
from uuid import UUID

from django.utils import timezone

from cdp.db import rows_update
from ingestion.models import Source
from profiles.golden import Candidate, display_name, golden_record, name_search_text
from profiles.models import Identity, Profile, SourceRecord


def profiles_refresh(*, profile_ids: Collection[UUID]) -> None:
    """Recompute golden values and lineage, and drop identities no live record carries any more.

    Set-based: a fixed number of queries for any number of profiles. Call inside the transaction that
    changed the records, with the profiles locked.
    """
    if not profile_ids:
        return
    ranks = dict(Source.objects.values_list("id", "trust_rank"))
    slugs = dict(Source.objects.values_list("id", "slug"))
    candidates: dict[UUID, list[Candidate]] = defaultdict(list)
    carried: dict[UUID, set[tuple[str, str]]] = defaultdict(set)
    rows = SourceRecord.objects.filter(profile_id__in=profile_ids, deleted_at__isnull=True).values_list(
        "id", "profile_id", "source_id", "external_id", "attributes", "identifiers", "version_at"
    )
    for record_id, profile_id, source_id, external_id, attributes, identifiers, version_at in rows:
        candidates[profile_id].append(
            Candidate(record_id, slugs[source_id], external_id, ranks[source_id], version_at, attributes)
        )
        carried[profile_id].update((kind, value) for kind, value in identifiers)

    orphaned = [
        identity_id
        for identity_id, profile_id, kind, value in Identity.objects.filter(
            profile_id__in=profile_ids
        ).values_list("id", "profile_id", "type", "value")
        if (kind, value) not in carried[profile_id]
    ]
    if orphaned:
        Identity.objects.filter(id__in=orphaned).delete()

    now = timezone.now()
    updated = []
    for profile_id in profile_ids:
        golden, lineage = golden_record(candidates.get(profile_id, ()))
        updated.append(
            Profile(
                id=profile_id,
                golden=golden,
                lineage=lineage,
                display_name=display_name(golden),
                search_name=name_search_text(golden),
                status=Profile.Status.ACTIVE if profile_id in candidates else Profile.Status.EMPTY,
                updated_at=now,
            )
        )
    rows_update(updated, ["golden", "lineage", "display_name", "search_name", "status", "updated_at"])
