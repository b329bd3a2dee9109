"""The journey timeline of a profile: events, record changes and merges, on one clock, newest first.

Each stream is read with its own index scan (profile, time) and a LIMIT of one page, then the streams are
merged in memory: the cost of a page does not grow with the size of the profile. Pages are cut with a
keyset cursor on (time, kind, id), so a page never repeats or skips an entry when new ones arrive.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from heapq import merge

from django.db.models import Q

from .models import Event, MergeEvent, Profile, RecordChange

EVENT_TYPES = ("track", "page", "screen", "identify", "group", "alias")
KINDS = (*EVENT_TYPES, "record", "merge")
# Order of entries at the same instant (descending): events, then record changes, then merges.
STREAM_RANK = {"merge": 0, "record": 1, "event": 2}


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
    earlier = Q(**{f"{time_field}__lt": cursor.at})
    if rank < cursor.rank:
        return earlier | Q(**{time_field: cursor.at})
    if rank == cursor.rank:
        return earlier | Q(**{time_field: cursor.at, "id__lt": cursor.id})
    return earlier


def _event_entry(event: Event) -> dict:
    return {
        "kind": event.type,
        "at": event.timestamp,
        "source": event.source.slug,
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
    records: created, updated with the fields, deleted) and ``merge``. ``source``: a source slug (merges have
    none). ``since`` inclusive, ``until`` exclusive.
    """
    kinds = set(kinds or KINDS)
    streams = []

    def window(field: str) -> Q:
        q = Q()
        if since is not None:
            q &= Q(**{f"{field}__gte": since})
        if until is not None:
            q &= Q(**{f"{field}__lt": until})
        return q

    event_types = sorted(kinds & set(EVENT_TYPES))
    if event_types:
        events = Event.objects.filter(profile=profile).select_related("source")
        if len(event_types) < len(EVENT_TYPES):
            events = events.filter(type__in=event_types)
        if source:
            events = events.filter(source__slug=source)
        events = events.filter(window("timestamp"), _before(cursor, STREAM_RANK["event"], "timestamp"))
        streams.append(
            [
                (e.timestamp, STREAM_RANK["event"], e.pk, _event_entry(e))
                for e in events.order_by("-timestamp", "-id")[: limit + 1]
            ]
        )
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
        merges = MergeEvent.objects.filter(Q(survivor=profile) | Q(survivor__merged_into=profile))
        merges = merges.filter(window("created_at"), _before(cursor, STREAM_RANK["merge"], "created_at"))
        streams.append(
            [
                (m.created_at, STREAM_RANK["merge"], m.pk, _merge_entry(m))
                for m in merges.order_by("-created_at", "-id")[: limit + 1]
            ]
        )
    rows = list(merge(*streams, key=lambda row: row[:3], reverse=True))
    page = rows[:limit]
    next_cursor = Cursor(*page[-1][:3]) if len(rows) > limit else None
    return [row[3] for row in page], next_cursor
