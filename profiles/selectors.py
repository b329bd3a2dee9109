"""Reads shared by the API, the admin and exports."""

from __future__ import annotations

from collections import defaultdict
from uuid import UUID

from django.conf import settings
from django.db.models import Q, QuerySet

from ingestion.models import IdentifierType
from ingestion.normalise import InvalidValue, normalise_identifier

from .models import Identity, MergeEvent, Profile, SourceRecord


class UnknownIdentifierType(ValueError):
    pass


def profile_get(*, profile_id: UUID | str) -> Profile | None:
    """The profile, or the survivor a merged profile points at (ids handed out earlier keep working)."""
    try:
        profile_id = UUID(str(profile_id))
    except ValueError:
        return None
    profile = Profile.objects.filter(pk=profile_id).first()
    seen = set()
    while profile is not None and profile.merged_into_id is not None and profile.pk not in seen:
        seen.add(profile.pk)
        profile = Profile.objects.filter(pk=profile.merged_into_id).first()
    return profile


def identifier_normalise(*, type: str, value: str, region: str | None = None) -> str:
    normaliser = IdentifierType.objects.filter(name=type).values_list("normaliser", flat=True).first()
    if normaliser is None:
        raise UnknownIdentifierType(f"unknown identifier type {type!r}")
    return normalise_identifier(normaliser, value, region or settings.CDP_DEFAULT_PHONE_REGION)


def profile_lookup(*, type: str, value: str, region: str | None = None) -> Profile | None:
    """Find a person by any identifier, written in any form that normalises the same."""
    normalised = identifier_normalise(type=type, value=value, region=region)
    identity = Identity.objects.filter(type=type, value=normalised).select_related("profile").first()
    return profile_get(profile_id=identity.profile_id) if identity else None


def profile_list() -> QuerySet[Profile]:
    return Profile.objects.filter(status=Profile.Status.ACTIVE)


def profile_detail(*, profile: Profile) -> dict:
    """Golden attributes with lineage and every candidate value, identities, source records, merges.

    A fixed number of queries, whatever the size of the profile."""
    records = list(
        SourceRecord.objects.filter(profile=profile, deleted_at__isnull=True)
        .select_related("source")
        .order_by("-source__trust_rank", "-version_at")
    )
    candidates: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        for name, value in record.attributes.items():
            candidates[name].append(
                {
                    "value": value,
                    "source": record.source.slug,
                    "record": record.pk,
                    "external_id": record.external_id,
                    "trust_rank": record.source.trust_rank,
                    "observed_at": record.version_at,
                }
            )
    attributes = {
        name: {"value": value, **profile.lineage.get(name, {}), "candidates": candidates.get(name, [])}
        for name, value in profile.golden.items()
    }
    # Tombstones point straight at their final survivor, so this also finds merges into profiles that were
    # themselves merged into this one later.
    merges = MergeEvent.objects.filter(Q(survivor=profile) | Q(survivor__merged_into=profile)).order_by(
        "created_at"
    )
    return {
        "id": profile.pk,
        "status": profile.status,
        "display_name": profile.display_name,
        "created_at": profile.created_at,
        "updated_at": profile.updated_at,
        "attributes": attributes,
        "identities": [
            {"type": kind, "value": value}
            for kind, value in Identity.objects.filter(profile=profile)
            .order_by("type", "value")
            .values_list("type", "value")
        ],
        "records": [
            {
                "id": record.pk,
                "source": record.source.slug,
                "external_id": record.external_id,
                "attributes": record.attributes,
                "identifiers": [{"type": kind, "value": value} for kind, value in record.identifiers],
                "source_updated_at": record.source_updated_at,
                "version_at": record.version_at,
                "created_at": record.created_at,
                "updated_at": record.updated_at,
            }
            for record in records
        ],
        "merges": [
            {
                "merged": m.merged_id,
                "rule": m.rule,
                "evidence": m.evidence,
                "actor": m.actor,
                "at": m.created_at,
            }
            for m in merges
        ],
    }


__all__ = [
    "InvalidValue",
    "UnknownIdentifierType",
    "identifier_normalise",
    "profile_detail",
    "profile_get",
    "profile_list",
    "profile_lookup",
]
