"""Tracking events onto profiles: the identity each message carries is resolved like any record of its
source, then the event is stored on the profile that identity belongs to.

A message's identity is a record of the sending source (``userId``, or ``anonymous:<anonymousId>`` for a
visitor not yet known). Unlike the records API, where each version replaces the last, messages accumulate:
an identify's traits update the attributes they name and leave the others, and every anonymous id a user was
seen with stays an identifier of theirs. The accumulated record then goes through ``records_resolve``
unchanged, with its locks, limits, merges, conflicts and golden record.
"""

from __future__ import annotations

from uuid import UUID

from ingestion.models import InboundRecord, Source
from ingestion.normalise import NormalisedRecord, content_hash
from ingestion.pipeline import PipelineItem
from profiles.models import Event, SourceRecord

from .resolution import identifier_keys_lock, records_resolve


def _accumulate(record: SourceRecord | None, items: list[PipelineItem]) -> PipelineItem:
    """One upsert of the source record that holds what every message so far said about this identity."""
    live = record is not None and record.deleted_at is None
    attributes = dict(record.attributes) if live else {}
    identifiers = [tuple(key) for key in record.identifiers] if live else []
    version_at = record.version_at if live else None
    for item in sorted(items, key=lambda i: (i.version_at, i.inbound_id)):
        newer = version_at is None or item.version_at >= version_at
        for name, value in item.record.attributes.items():
            if newer or name not in attributes:
                attributes[name] = value  # an older identify only fills gaps
        for key in item.record.identifiers:
            if tuple(key) not in identifiers:
                identifiers.append(tuple(key))
        version_at = item.version_at if newer else version_at
    latest = max(items, key=lambda i: i.inbound_id)
    external_id = latest.record.external_id
    merged = NormalisedRecord(
        external_id=external_id,
        updated_at=None,
        attributes=attributes,
        identifiers=identifiers,
        content_hash=content_hash(external_id, None, attributes, identifiers),
    )
    return PipelineItem(
        latest.inbound_id,
        InboundRecord.Operation.UPSERT,
        external_id,
        version_at=version_at,
        record=merged,
        raw=latest.raw,
    )


def events_resolve(*, source: Source, items: list[PipelineItem]) -> set[UUID]:
    """Resolve the identities of a chunk of one source's tracking messages and store their events.

    Must run inside a transaction. A message whose ``messageId`` this source already sent is not stored again
    (outcome "duplicate"). Returns the ids of the profiles changed.
    """
    items = [item for item in items if not item.finished and item.event is not None]
    if not items:
        return set()
    by_identity: dict[str, list[PipelineItem]] = {}
    for item in items:
        by_identity.setdefault(item.record.external_id, []).append(item)
    # Read-modify-write of the accumulated records: hold their keys first (records_resolve takes them again).
    identifier_keys_lock(
        {(source.slug, external_id) for external_id in by_identity}.union(
            *(map(tuple, item.record.identifiers) for item in items)
        )
    )
    existing = {
        record.external_id: record
        for record in SourceRecord.objects.filter(source=source, external_id__in=list(by_identity))
    }
    upserts = [_accumulate(existing.get(external_id), group) for external_id, group in by_identity.items()]
    touched = records_resolve(source=source, items=upserts)

    profile_of = dict(
        SourceRecord.objects.filter(source=source, external_id__in=list(by_identity)).values_list(
            "external_id", "profile_id"
        )
    )
    known = set(
        Event.objects.filter(source=source, message_id__in=[i.event.message_id for i in items]).values_list(
            "message_id", flat=True
        )
    )
    events = []
    for item in items:
        event = item.event
        if event.message_id in known:
            item.finish("duplicate")
            continue
        known.add(event.message_id)
        profile_id = profile_of.get(item.record.external_id)
        events.append(
            Event(
                profile_id=profile_id,
                source=source,
                message_id=event.message_id,
                type=event.type,
                name=event.name[:255],
                timestamp=event.timestamp,
                original_timestamp=event.original_timestamp,
                sent_at=event.sent_at,
                received_at=event.received_at,
                user_id=event.user_id,
                anonymous_id=event.anonymous_id,
                properties=event.properties,
                context=event.context,
            )
        )
        if profile_id is not None:
            touched.add(profile_id)
        item.finish("event")
    # A racing worker storing the same message first is a duplicate too: the constraint decides.
    Event.objects.bulk_create(events, batch_size=1000, ignore_conflicts=True)
    return touched
