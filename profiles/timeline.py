"""The journey timeline of a profile: events, record changes, merges and splits, on one clock, newest first.

What a person did and what changed about them: the tracking events (an identify shows the traits it sent),
the changes of records the source systems (CRM, ERP...) made, and the merges and splits of the profile. The
records tracking keeps for each identity (``userId``, ``anonymous:<id>``) are bookkeeping and leave no
entries: their events are the journey.

Each stream is read with its own index scan (profile, time) and a LIMIT of one page, then the streams are
merged in memory: the cost of a page does not grow with the size of the profile. Events are indexed by
(profile, type, time): each type is its own ordered scan, and PostgreSQL merges the types asked for (a
UNION ALL of one LIMITed scan per type), so a rare kind (identify among 100,000 page views) costs what a common
one does. Pages are cut with a keyset cursor on (time, kind, id) whose time bound is an index condition, so a
deep page costs what the first does, and a page never repeats or skips an entry when new ones arrive.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from heapq import merge

from django.db import connection
from django.db.models import Q

from ingestion.models import Source

from .models import Event, MergeEvent, Profile, ProfileSplit, RecordChange

EVENT_TYPES = ("track", "page", "screen", "identify", "group", "alias")
KINDS = (*EVENT_TYPES, "record", "merge", "split")
# Order of entries at the same instant (descending): splits, events, record changes, merges. (The numbers are
# in the cursors handed out: never renumber.)
STREAM_RANK = {"merge": 0, "record": 1, "event": 2, "split": 3}


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True)
class Cursor:
    at: datetime
    rank: int
    id: int

    def encode(self) -> str:
        return base64.urlsafe_b64encode(
            json.dumps([self.at.isoformat(), self.rank, self.id]).encode()
        ).decode()

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            at, rank, pk = json.loads(base64.urlsafe_b64decode(text.encode()))
            return cls(datetime.fromisoformat(at), int(rank), int(pk))
        except (ValueError, TypeError) as exc:
            raise InvalidCursor("not a cursor this API handed out") from exc


def _before(cursor: Cursor | None, rank: int, time_field: str) -> Q:
    """Rows of a stream of this rank that come after the cursor in (time, rank, id) descending order."""
    if cursor is None:
        return Q()
    if rank < cursor.rank:
        return Q(**{f"{time_field}__lte": cursor.at})
    if rank == cursor.rank:
        # The plain bound first: it is what the index scan starts from; the tie-break filters the few rows left.
        return Q(**{f"{time_field}__lte": cursor.at}) & (
            Q(**{f"{time_field}__lt": cursor.at}) | Q(id__lt=cursor.id)
        )
    return Q(**{f"{time_field}__lt": cursor.at})


def _event_entry(event: Event, slugs: dict[int, str]) -> dict:
    return {
        "kind": event.type,
        "at": event.timestamp,
        "source": slugs[event.source_id],
        "id": f"event:{event.pk}",
        "name": event.name,
        "message_id": event.message_id,
        "user_id": event.user_id,
        "anonymous_id": event.anonymous_id,
        "original_timestamp": event.original_timestamp,
        "received_at": event.received_at,
        "properties": event.properties,
        "context": event.context,
    }


def _record_entry(change: RecordChange) -> dict:
    return {
        "kind": "record",
        "at": change.occurred_at,
        "source": change.source.slug,
        "id": f"record:{change.pk}",
        "change": change.kind,
        "external_id": change.record.external_id,
        "changed_fields": change.changed_fields,
    }


def _merge_entry(merge_event: MergeEvent) -> dict:
    return {
        "kind": "merge",
        "at": merge_event.created_at,
        "source": "",
        "id": f"merge:{merge_event.pk}",
        "merged": str(merge_event.merged_id),
        "survivor": str(merge_event.survivor_id),
        "rule": merge_event.rule,
        "actor": merge_event.actor,
    }


def _split_entry(split: ProfileSplit) -> dict:
    return {
        "kind": "split",
        "at": split.created_at,
        "source": "",
        "id": f"split:{split.pk}",
        "profile": str(split.profile_id),
        "new_profile": str(split.new_profile_id),
        "records": split.records,
        "reason": split.reason,
        "actor": split.actor,
    }


def profile_timeline(
    *,
    profile: Profile,
    kinds: set[str] | None = None,
    source: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: Cursor | None = None,
    limit: int = 50,
) -> tuple[list[dict], Cursor | None]:
    """One page of the profile's timeline, newest first, and the cursor of the next page (None at the end).

    ``kinds``: event types (track, page, screen, identify, group, alias), ``record`` (changes of source
    records: created, updated with the fields, deleted), ``merge`` and ``split`` (shown on both halves).
    ``source``: a source slug (merges and splits have none). ``since`` inclusive, ``until`` exclusive.
    """
    kinds = set(kinds or KINDS)
    streams = []
    # The profile and the tombstones merged into it (two index scans in a subquery; an OR across a join
    # would read every merge ever made).
    journey_profiles = Profile.objects.filter(Q(pk=profile.pk) | Q(merged_into=profile.pk)).values("pk")

    def window(field: str) -> Q:
        q = Q()
        if since is not None:
            q &= Q(**{f"{field}__gte": since})
        if until is not None:
            q &= Q(**{f"{field}__lt": until})
        return q

    event_types = sorted(kinds & set(EVENT_TYPES))
    if event_types:
        events = Event.objects.filter(profile=profile)
        if source:
            events = events.filter(source__in=Source.objects.filter(slug=source).values("pk"))
        events = events.filter(window("timestamp"), _before(cursor, STREAM_RANK["event"], "timestamp"))
        order = ("-timestamp", "-id")
        if len(event_types) == 1:
            events = events.filter(type=event_types[0]).order_by(*order)[: limit + 1]
        elif connection.features.supports_slicing_ordering_in_compound:
            per_type = [events.filter(type=kind).order_by(*order)[: limit + 1] for kind in event_types]
            events = per_type[0].union(*per_type[1:], all=True).order_by(*order)[: limit + 1]
        else:  # SQLite: one scan filtered by type
            events = events.filter(type__in=event_types).order_by(*order)[: limit + 1]
        events = list(events)
        slugs = dict(Source.objects.filter(pk__in={e.source_id for e in events}).values_list("pk", "slug"))
        streams.append([(e.timestamp, STREAM_RANK["event"], e.pk, _event_entry(e, slugs)) for e in events])
    if "record" in kinds:
        changes = RecordChange.objects.filter(profile=profile).select_related("source", "record")
        if source:
            changes = changes.filter(source__slug=source)
        changes = changes.filter(window("occurred_at"), _before(cursor, STREAM_RANK["record"], "occurred_at"))
        streams.append(
            [
                (c.occurred_at, STREAM_RANK["record"], c.pk, _record_entry(c))
                for c in changes.order_by("-occurred_at", "-id")[: limit + 1]
            ]
        )
    if "merge" in kinds and not source:
        # Tombstones point straight at their final survivor: merges into them belong to this journey too.
        merges = MergeEvent.objects.filter(survivor__in=journey_profiles)
        merges = merges.filter(window("created_at"), _before(cursor, STREAM_RANK["merge"], "created_at"))
        streams.append(
            [
                (m.created_at, STREAM_RANK["merge"], m.pk, _merge_entry(m))
                for m in merges.order_by("-created_at", "-id")[: limit + 1]
            ]
        )
    if "split" in kinds and not source:
        # Both halves of a split show it; so do the survivors of profiles merged after it.
        splits = ProfileSplit.objects.filter(
            Q(profile__in=journey_profiles) | Q(new_profile__in=journey_profiles)
        )
        splits = splits.filter(window("created_at"), _before(cursor, STREAM_RANK["split"], "created_at"))
        streams.append(
            [
                (s.created_at, STREAM_RANK["split"], s.pk, _split_entry(s))
                for s in splits.order_by("-created_at", "-id")[: limit + 1]
            ]
        )
    rows = list(merge(*streams, key=lambda row: row[:3], reverse=True))
    page = rows[:limit]
    next_cursor = Cursor(*page[-1][:3]) if len(rows) > limit else None
    return [row[3] for row in page], next_cursor
