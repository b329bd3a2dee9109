"""Tracking events onto profiles: the identity each message carries is resolved like any record of its
source, then the event is stored on the profile that identity belongs to.

A message's identity is a record of the sending source (``userId``, or ``anonymous:<anonymousId>`` for a
visitor not yet known). Unlike the records API, where each version replaces the last, messages accumulate:
an identify's traits update the attributes they name and leave the others, and every anonymous id a user was
seen with stays an identifier of theirs. The accumulated record then goes through ``records_resolve``
unchanged, with its locks, limits, merges, conflicts and golden record; only its history is not written, as
the events themselves (an identify shows its traits) are the journey.

An ``alias`` whose ``previousId`` is a user id the source already sent is the sender saying that two of its
user ids are one person (Segment: alias merges identities). The two profiles are merged, unless a steward
said they are different people (never link) or another identifier limit forbids it; a refusal is kept for
review as a conflict. The one-user-id-per-profile limit that protects shared devices does not apply to that
explicit statement, and only to it: an anonymous id seen with two user ids still links nobody.
"""

from __future__ import annotations

import operator
from functools import reduce
from uuid import UUID

from django.utils import timezone

from cdp.db import rows_insert
from ingestion.models import InboundRecord, Source
from ingestion.normalise import NormalisedRecord, content_hash
from ingestion.pipeline import PipelineItem
from ingestion.tracking import ANONYMOUS_PREFIX
from profiles.models import Event, Identity, MergeEvent, Profile, ResolutionConflict, SourceRecord

from .merge import never_linked
from .refresh import profiles_refresh
from .resolution import (
    _merge_into,
    _type_counts,
    identifier_rules_load,
    profiles_lock,
    records_hold,
    records_resolve,
)

ALIAS_RULE = "alias"


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


def _previous_user_id(item: PipelineItem) -> str:
    """An alias's ``previousId`` when it can name a user id of the source (not an anonymous record)."""
    if item.event.type != "alias":
        return ""
    previous = (item.event.properties or {}).get("previousId") or ""
    if previous.startswith(ANONYMOUS_PREFIX) or previous == item.event.user_id:
        return ""
    return previous


def events_resolve(
    *, source: Source, items: list[PipelineItem], locked_keys: set[tuple[str, str]] = frozenset()
) -> set[UUID]:
    """Resolve the identities of a chunk of one source's tracking messages and store their events.

    Must run inside a transaction. A message whose ``messageId`` this source already sent is not stored again
    (outcome "duplicate"). Returns the ids of the profiles changed. ``locked_keys``: identifier keys this
    transaction already holds (an earlier pipeline step took them).

    Locks, once per chunk and in one round each: the identifier keys of every identity (and of every user id
    an alias names), then the profiles they are on; an event is stored on a locked profile, so no merge can
    move that profile's events away before this transaction commits.
    """
    items = [item for item in items if not item.finished and item.event is not None]
    if not items:
        return set()
    held = records_hold(
        source=source,
        external_ids=[
            *dict.fromkeys(item.record.external_id for item in items),
            *sorted({_previous_user_id(item) for item in items} - {""}),
        ],
        keys=set().union(*(map(tuple, item.record.identifiers) for item in items)),
        locked_keys=locked_keys,
    )
    # Read under the locks: a worker handed the same batch at once (a redelivery) waits for the first one to
    # commit, then finds its messages stored.
    known = set(
        Event.objects.filter(source=source, message_id__in={i.event.message_id for i in items}).values_list(
            "message_id", flat=True
        )
    )
    fresh = []
    for item in items:
        if item.event.message_id in known:
            item.finish("duplicate")  # a resent batch: its messages changed nothing the first time didn't
        else:
            known.add(item.event.message_id)
            fresh.append(item)
    if not fresh:
        return set()

    by_identity: dict[str, list[PipelineItem]] = {}
    for item in fresh:
        by_identity.setdefault(item.record.external_id, []).append(item)
    upserts = [
        _accumulate(held.records.get(external_id), group) for external_id, group in by_identity.items()
    ]
    touched = records_resolve(source=source, items=upserts, held=held, history=False)

    # Nothing changed about some identities: their profiles are not locked yet.
    profile_of = {
        record.external_id: record.profile_id
        for record in held.records.values()
        if record.profile_id is not None and record.deleted_at is None
    }
    unlocked = set(profile_of.values()) - set(held.profiles.values())
    if unlocked:
        current = profiles_lock(unlocked)
        held.profiles.update(current)
        profile_of = {external_id: current.get(pid, pid) for external_id, pid in profile_of.items()}

    aliases = [item for item in fresh if _previous_user_id(item) in profile_of]
    if aliases:
        survivor_of = _aliases_link(source, aliases, profile_of, held.records)
        touched = {survivor_of.get(pid, pid) for pid in touched}
        touched |= set(survivor_of.values())
        profile_of = {external_id: survivor_of.get(pid, pid) for external_id, pid in profile_of.items()}

    events = []
    for item in fresh:
        event = item.event
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
    # COPY on PostgreSQL. Should another worker store one of these messages meanwhile (the same messageId
    # under another identity), the unique constraint fails the chunk, whose retry finds it a duplicate.
    rows_insert(events)
    return touched


def _aliases_link(
    source: Source, aliases: list[PipelineItem], profile_of: dict[str, UUID], records: dict[str, SourceRecord]
) -> dict[UUID, UUID]:
    """Merge the profiles of the two user ids of each alias (both profiles already locked); return every
    merged profile id -> its survivor."""
    rules = identifier_rules_load()
    survivor_of: dict[UUID, UUID] = {}
    now = timezone.now()

    def current(profile_id: UUID) -> UUID:
        while profile_id in survivor_of:
            profile_id = survivor_of[profile_id]
        return profile_id

    for item in sorted(aliases, key=lambda i: (i.event.timestamp, i.inbound_id)):
        previous, user_id = _previous_user_id(item), item.record.external_id
        if user_id not in profile_of:
            continue
        pair = {current(profile_of[user_id]), current(profile_of[previous])}
        if len(pair) == 1:
            continue  # already one person
        refusal = _alias_refusal(source, rules, pair)
        if refusal:
            user_profile = current(profile_of[user_id])
            ResolutionConflict.objects.create(
                record=records[user_id],
                profile_id=user_profile,
                other_profiles=[str(pid) for pid in sorted(pair - {user_profile}, key=str)],
                identifier_type=source.slug,
                reason=f"alias of {previous} to {user_id} not applied: {refusal}",
                created_at=now,
            )
            continue
        created = dict(Profile.objects.filter(pk__in=pair).values_list("pk", "created_at"))
        survivor = min(pair, key=lambda pk: (created[pk], str(pk)))
        (loser,) = pair - {survivor}
        _merge_into(survivor, {loser}, now)
        MergeEvent.objects.create(
            survivor_id=survivor,
            merged_id=loser,
            rule=ALIAS_RULE,
            evidence={
                "source": source.slug,
                "message_id": item.event.message_id,
                "previous_id": previous,
                "user_id": user_id,
            },
            created_at=now,
        )
        survivor_of[loser] = survivor
    survivors = {current(pid) for pid in survivor_of}
    profiles_refresh(profile_ids=survivors)
    return {pid: current(pid) for pid in survivor_of}


def _alias_refusal(source: Source, rules, profile_ids: set[UUID]) -> str:
    """Why an alias must not merge these profiles, or "": never-link pairs and every identifier limit but
    the source's own user ids (which the alias is about)."""
    pairs = never_linked(profile_ids)
    if pairs:
        a, b = pairs[0]
        return f"records {a} and {b} were marked as different people (never link)"
    keys_of: dict[UUID, set] = {pid: set() for pid in profile_ids}
    for profile_id, kind, value in Identity.objects.filter(profile_id__in=profile_ids).values_list(
        "profile_id", "type", "value"
    ):
        keys_of[profile_id].add((kind, value))
    union = set().union(*keys_of.values())
    tolerated = reduce(operator.or_, (_type_counts(keys) for keys in keys_of.values()))
    tolerated[source.slug] = sum(1 for kind, _ in union if kind == source.slug)
    violation = rules.violation(union, tolerated=tolerated)
    if violation is not None:
        kind, count, limit = violation
        return f"it would put {count} {kind} identifiers on one profile (limit {limit})"
    return ""
