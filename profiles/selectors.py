"""Reads shared by the API, the admin and exports."""

from __future__ import annotations

import contextlib
import re
from collections import defaultdict
from uuid import UUID

from django.conf import settings
from django.db import connection
from django.db.models import Case, F, FloatField, Q, QuerySet, Value, When

from ingestion.models import IdentifierType
from ingestion.normalise import InvalidValue, normalise_identifier, search_text
from ingestion.selectors import identifier_normalisers

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


# Ranks of the search box: an identifier, a source's record id or the profile id is a certain hit; a name
# comes after, ordered by how close it is (trigram word similarity on PostgreSQL, exact / prefix / part of the
# name elsewhere).
RANK_IDENTIFIER = 3.0
RANK_NAME_EXACT = 2.0
RANK_NAME_PREFIX = 1.5
RANK_NAME_PART = 1.0
TYPED_TERM = re.compile(r"^(?P<type>[A-Za-z][\w-]*)(?:\s*[:/#]\s*|\s+)(?P<value>\S.*)$")


def profile_search(*, term: str, queryset: QuerySet[Profile] | None = None) -> QuerySet[Profile]:
    """The profiles a search box term finds, annotated with ``search_rank`` (higher is better).

    The term is tried as every identifier type (normalised the way identities are stored, so a phone matches
    in any format and an email in any case), as a value prefixed with its type (a source's id written with the
    source: ``crm:C-1001``, ``crm C-1001``), as a source record's external id, as a profile id, and as a name:
    accents and case ignored, and on PostgreSQL typo-tolerant (pg_trgm similarity, on a trigram index of
    ``search_name``). Identifier lookups are exact, on their unique index. A term with a digit or an "@" is
    no name: it is looked up as an identifier only."""
    queryset = Profile.objects.all() if queryset is None else queryset
    term = term.strip()
    if not term:
        return queryset.annotate(search_rank=Value(0.0, output_field=FloatField()))
    # Exact identifier hits first, in one query on unique / plain indexes: a handful of ids, so the filter
    # below is an index scan per branch (with the trigram index on PostgreSQL), not a pass over every profile.
    hits = SourceRecord.objects.filter(external_id=term, profile__isnull=False).values_list(
        "profile_id", flat=True
    )
    identities = Q()
    normalisers = identifier_normalisers()
    for name, normaliser in normalisers.items():
        try:
            value = normalise_identifier(normaliser, term, settings.CDP_DEFAULT_PHONE_REGION)
        except InvalidValue:
            continue
        identities |= Q(type=name, value=value)
    # "crm:C-1001", "crm C-1001", "erp/E7": an identifier type (a source's slug, or email, phone, ...) and a
    # value of it, as staff copy ids from other systems.
    typed = TYPED_TERM.match(term)
    if typed and (kind := typed["type"].casefold()) in normalisers:
        with contextlib.suppress(InvalidValue):
            value = normalise_identifier(normalisers[kind], typed["value"], settings.CDP_DEFAULT_PHONE_REGION)
            identities |= Q(type=kind, value=value)
    if identities:
        hits = hits.union(Identity.objects.filter(identities).values_list("profile_id", flat=True))
    profile_ids = set(hits)
    with contextlib.suppress(ValueError):
        profile_ids.add(UUID(term))
    identifier_hit = Q(pk__in=profile_ids)

    folded = search_text(term)
    # A name has no digits and no "@": such a term is an identifier (found above, exactly) or nothing. Skipping
    # the name match spares it the trigram index scan, by far the most expensive part of a search.
    if not folded or "@" in term or any(ch.isdigit() for ch in term):
        return queryset.filter(identifier_hit).annotate(
            search_rank=Value(RANK_IDENTIFIER, output_field=FloatField())
        )
    on_postgres = connection.vendor == "postgresql"
    # On PostgreSQL search_name (the folded name) answers alone, on its trigram index.
    name_hit = Q(pk__in=[]) if on_postgres else Q(display_name__icontains=term)
    ranks = [
        When(identifier_hit, then=Value(RANK_IDENTIFIER)),
        When(search_name=folded, then=Value(RANK_NAME_EXACT)),
        When(search_name__startswith=folded, then=Value(RANK_NAME_PREFIX)),
    ]
    name_hit |= Q(search_name__contains=folded)
    name_rank = Value(RANK_NAME_PART)
    if on_postgres:
        from django.contrib.postgres.lookups import TrigramSimilar
        from django.contrib.postgres.search import TrigramSimilarity

        # "%": the whole name's trigram similarity above pg_trgm.similarity_threshold (0.5, set per connection
        # in the settings), answered by the GIN index. It forgives a typo in a full name ("jonh smith") where
        # word similarity misses one in five, without taking in every other Smith.
        name_hit |= Q(TrigramSimilar(F("search_name"), Value(folded)))
        name_rank = TrigramSimilarity("search_name", Value(folded))
    return queryset.filter(identifier_hit | name_hit).annotate(
        search_rank=Case(*ranks, default=name_rank, output_field=FloatField())
    )


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
    "profile_search",
]
