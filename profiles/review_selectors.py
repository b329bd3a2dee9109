"""Reads of the review queue and of unmerge requests, shared by the API and the admin."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from functools import reduce
from uuid import UUID

from django.db.models import Count, Q, QuerySet

from ingestion.models import Source

from .models import MatchSuggestion, SourceRecord


def suggestion_list() -> QuerySet[MatchSuggestion]:
    """Suggestions with both records, their sources and their current profiles, most probable first."""
    return MatchSuggestion.objects.select_related(
        "record__source", "record__profile", "candidate_record__source", "candidate_record__profile"
    ).order_by("-probability", "-id")


def suggestions_open_count(*, profile_id: UUID) -> int:
    """Open suggestions whose record or candidate record is on this (live) profile now."""
    return MatchSuggestion.objects.filter(
        Q(record__profile_id=profile_id) | Q(candidate_record__profile_id=profile_id),
        status=MatchSuggestion.Status.OPEN,
    ).aggregate(n=Count("pk"))["n"]


@dataclass(frozen=True)
class RecordRef:
    """A record named in a request: by id, or by its source's slug and its id there."""

    index: int
    record_id: int | None = None
    source: str | None = None
    external_id: str | None = None


def record_refs_resolve(*, refs: list[RecordRef]) -> tuple[list[int], list[tuple[str, str]]]:
    """The record ids these references name, in order, and (field, reason) for each that names none."""
    slugs = {ref.source for ref in refs if ref.record_id is None}
    sources = dict(Source.objects.filter(slug__in=slugs).values_list("slug", "pk"))
    named = [
        Q(source_id=sources[ref.source], external_id=ref.external_id)
        for ref in refs
        if ref.record_id is None and ref.source in sources
    ]
    by_key = {}
    if named:
        by_key = {
            (source_id, external_id): pk
            for pk, source_id, external_id in SourceRecord.objects.filter(
                reduce(operator.or_, named)
            ).values_list("pk", "source_id", "external_id")
        }
    ids, missing = [], []
    for ref in refs:
        where = f"records[{ref.index}]"
        if ref.record_id is not None:
            ids.append(ref.record_id)
        elif ref.source not in sources:
            missing.append((f"{where}.source", f"no source {ref.source!r}"))
        elif (pk := by_key.get((sources[ref.source], ref.external_id))) is None:
            missing.append((where, f"no record {ref.external_id!r} of source {ref.source!r}"))
        else:
            ids.append(pk)
    return ids, missing
