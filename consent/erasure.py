"""Everything the platform holds about one person, found once, for an export or an erasure.

The footprint of a person starts from their profile (and the tombstones merged into it) and from the
identifiers of their request, and reaches every table: identities, source records and the raw payloads they
came in, tracking events, record history, merges, resolution conflicts, consent ledger entries and rejected
consent statements. Raw payloads that never became a source record (quarantined, pending) are matched by
reading them: any string in them that normalises to one of the person's identifiers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from uuid import UUID

from django.conf import settings
from django.db.models import Q

from ingestion.models import InboundRecord, Source
from ingestion.normalise import InvalidValue, normalise_email, normalise_phone
from profiles.models import (
    Event,
    Identity,
    MergeEvent,
    Profile,
    RecordChange,
    ResolutionConflict,
    SourceRecord,
)

from .models import ConsentEntry, ConsentRejection

Key = tuple[str, str]


@dataclass
class Footprint:
    profile_ids: set[UUID] = field(default_factory=set)
    identifiers: set[Key] = field(default_factory=set)
    record_ids: set[int] = field(default_factory=set)
    event_ids: set[int] = field(default_factory=set)
    inbound_ids: set[int] = field(default_factory=set)
    rejection_ids: set[int] = field(default_factory=set)

    def ledger(self):
        condition = Q(pk__in=[])
        for kind, value in self.identifiers:
            condition |= Q(identifier_value=value, identifier_type=kind)
        if self.profile_ids:
            ids = list(self.profile_ids)
            condition |= Q(subject_profile_id__in=ids) | Q(recorded_for_profile_id__in=ids)
        return ConsentEntry.objects.filter(condition)

    def merges(self):
        ids = list(self.profile_ids)
        return MergeEvent.objects.filter(Q(survivor_id__in=ids) | Q(merged_id__in=ids))

    def record_changes(self):
        return RecordChange.objects.filter(
            Q(record_id__in=list(self.record_ids)) | Q(profile_id__in=list(self.profile_ids))
        )

    def conflicts(self):
        return ResolutionConflict.objects.filter(
            Q(record_id__in=list(self.record_ids)) | Q(profile_id__in=list(self.profile_ids))
        )


def _profile_family(profile_id: UUID | None) -> set[UUID]:
    """The profile and every tombstone that was merged into it, directly or through another tombstone."""
    if profile_id is None:
        return set()
    family, frontier = {profile_id}, {profile_id}
    while frontier:
        frontier = (
            set(Profile.objects.filter(merged_into_id__in=frontier).values_list("pk", flat=True)) - family
        )
        family |= frontier
    return family


def _strings(value: object) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _mentions(payload: object, values: set[str], region: str) -> bool:
    """Whether any string in the payload is one of the values, in any spelling that normalises the same."""
    for text in _strings(payload):
        candidate = " ".join(text.split())
        if candidate in values or candidate.casefold() in values:
            return True
        if "@" in candidate:
            try:
                if normalise_email(candidate) in values:
                    return True
            except InvalidValue:
                pass
        elif sum(c.isdigit() for c in candidate) >= 6:
            try:
                if normalise_phone(candidate, region) in values:
                    return True
            except InvalidValue:
                pass
    return False


def subject_footprint(*, profile_id: UUID | None, identifiers: Iterable[Key]) -> Footprint:
    """Find every row about the person. Reads only; the caller holds the transaction (and the locks)."""
    found = Footprint(profile_ids=_profile_family(profile_id), identifiers={tuple(k) for k in identifiers})
    ids = list(found.profile_ids)
    found.identifiers |= set(Identity.objects.filter(profile_id__in=ids).values_list("type", "value"))
    source_slugs = set(Source.objects.values_list("slug", flat=True))
    own_ids = Q(pk__in=[])
    for kind, value in found.identifiers:
        if kind in source_slugs:
            own_ids |= Q(source__slug=kind, external_id=value)
    records = list(
        SourceRecord.objects.filter(Q(profile_id__in=ids) | own_ids).values_list(
            "pk", "source_id", "external_id", "identifiers"
        )
    )
    found.record_ids = {pk for pk, *_ in records}
    for _, _, _, record_identifiers in records:
        found.identifiers |= {tuple(key) for key in record_identifiers or []}
    record_keys = {(source_id, external_id) for _, source_id, external_id, _ in records}

    anonymous = [value for kind, value in found.identifiers if kind == "anonymous_id"]
    by_user = Q(pk__in=[])
    for source_id, external_id in record_keys:
        by_user |= Q(source_id=source_id, user_id=external_id)
    events = Event.objects.filter(Q(profile_id__in=ids) | Q(anonymous_id__in=anonymous) | by_user)
    event_keys = set(events.values_list("source_id", "message_id"))
    found.event_ids = set(events.values_list("pk", flat=True))

    inbound = Q(pk__in=[])
    for source_id, external_id in record_keys | event_keys:
        inbound |= Q(source_id=source_id, external_id=external_id)
    found.inbound_ids = set(InboundRecord.objects.filter(inbound).values_list("pk", flat=True))

    # Payloads that never became a record or an event of theirs: read them.
    values = {value for _, value in found.identifiers} | {value.casefold() for _, value in found.identifiers}
    regions = dict(Source.objects.values_list("pk", "default_region"))
    unresolved = (
        InboundRecord.objects.exclude(status=InboundRecord.Status.PROCESSED)
        .exclude(pk__in=list(found.inbound_ids))
        .values_list("pk", "source_id", "external_id", "payload")
    )
    for pk, source_id, external_id, payload in unresolved.iterator(chunk_size=2000):
        region = regions.get(source_id, settings.CDP_DEFAULT_PHONE_REGION)
        if _mentions([external_id, payload], values, region):
            found.inbound_ids.add(pk)
    for pk, payload in ConsentRejection.objects.values_list("pk", "payload").iterator(chunk_size=2000):
        if _mentions(payload, values, settings.CDP_DEFAULT_PHONE_REGION):
            found.rejection_ids.add(pk)
    return found
