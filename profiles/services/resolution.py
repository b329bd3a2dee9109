"""Deterministic identity resolution: records that share an identifier end on one profile.

A chunk of records of one source is resolved together, set-based:

1. take locks on every identifier key the chunk carries (PostgreSQL advisory locks, sorted, so two workers
   never deadlock on them) and on the profiles those keys already belong to, in primary-key order;
2. replay the records in order against an in-memory picture of the affected profiles (groups of profiles and
   the keys they own), linking, merging, or refusing a link that would break an identifier rule;
3. write the outcome in bulk: new profiles, records, identities, merges with their audit entries;
4. recompute the golden record of every profile touched.

The unique constraint on ``Identity`` stays the last line of defence: a racing insert fails the transaction,
which the caller retries.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from uuid import UUID

import phonenumbers
from django.db import connection
from django.utils import timezone

from cdp.db import rows_update
from ingestion.models import IdentifierType, InboundRecord, Source
from ingestion.normalise import PHONE, InvalidValue, normalise_identifier
from ingestion.pipeline import PipelineItem
from profiles.models import (
    Event,
    Identity,
    MergeEvent,
    Profile,
    RecordChange,
    ResolutionConflict,
    SourceRecord,
)

from .refresh import profiles_refresh

Key = tuple[str, str]  # (identifier type, normalised value)

MAX_LOCK_ROUNDS = 5


class ResolutionRetry(Exception):
    """The profiles changed under us too often; the caller should retry the chunk."""


# --- Rules ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IdentifierRules:
    limits: dict[str, int]
    blocked: frozenset[Key]
    blocked_phone_digits: frozenset[str]

    def is_blocked(self, key: Key) -> bool:
        if key in self.blocked:
            return True
        if key[0] == PHONE and self.blocked_phone_digits:
            # A junk value such as 0000000000 is junk in any country it is read in; a real number whose
            # national digits happen to match (a valid UK 01234 567890) is not.
            try:
                number = phonenumbers.parse(key[1])
            except phonenumbers.NumberParseException:
                return False
            return str(
                number.national_number
            ) in self.blocked_phone_digits and not phonenumbers.is_valid_number(number)
        return False

    def violation(self, keys: Iterable[Key]) -> tuple[str, int, int] | None:
        """The first identifier type whose limit these keys, on one profile, would exceed."""
        counts = Counter(kind for kind, _ in keys if kind in self.limits)
        for kind, count in sorted(counts.items()):
            if count > self.limits[kind]:
                return kind, count, self.limits[kind]
        return None


def identifier_rules_load() -> IdentifierRules:
    from django.conf import settings

    limits, blocked, phone_digits = {}, set(), set()
    for rule in IdentifierType.objects.all():
        if rule.max_per_profile is not None:
            limits[rule.name] = rule.max_per_profile
        for value in rule.blocked_values or []:
            if rule.normaliser == PHONE:
                digits = "".join(ch for ch in str(value) if ch.isdigit())
                if digits:
                    phone_digits.add(digits.lstrip("0") or "0")
            try:
                blocked.add(
                    (
                        rule.name,
                        normalise_identifier(rule.normaliser, value, settings.CDP_DEFAULT_PHONE_REGION),
                    )
                )
            except InvalidValue:
                continue
    return IdentifierRules(limits, frozenset(blocked), frozenset(phone_digits))


# --- Locks ---------------------------------------------------------------------------------------------


def _lock_id(key: Key) -> int:
    digest = hashlib.blake2b(f"{key[0]}\x1f{key[1]}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def identifier_keys_lock(keys: Iterable[Key]) -> None:
    """Serialise work on the same identifiers across workers (transaction-scoped; no-op on SQLite,
    where a write transaction already excludes every other writer)."""
    if connection.vendor != "postgresql":
        return
    lock_ids = sorted({_lock_id(key) for key in keys})
    if lock_ids:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT unnest(%s::bigint[]) AS k ORDER BY 1) s",
                [lock_ids],
            )


def profiles_lock(profile_ids: Iterable[UUID]) -> dict[UUID, UUID]:
    """Lock the active profiles these ids stand for, in primary-key order; return id -> active profile id.

    Tombstones are followed with plain reads and never locked: a merge elsewhere may re-point them while we
    wait, and locking them would let two workers wait on each other. A profile merged between our read and
    our lock is followed in a further round.
    """
    current = {profile_id: profile_id for profile_id in profile_ids}
    locked: set[UUID] = set()
    for _ in range(MAX_LOCK_ROUNDS):
        targets = set(current.values()) - locked
        if not targets:
            return current
        pointers = dict(Profile.objects.filter(pk__in=targets).values_list("pk", "merged_into_id"))
        live = sorted(pk for pk in targets if pointers.get(pk) is None)
        for pk, merged_into in (
            Profile.objects.select_for_update()
            .filter(pk__in=live)
            .order_by("pk")
            .values_list("pk", "merged_into_id")
        ):
            if merged_into is None:
                locked.add(pk)
            else:
                pointers[pk] = merged_into
        locked |= targets - pointers.keys()  # gone: nothing to lock
        current = {
            pid: pointers.get(cur) or cur if cur not in locked else cur for pid, cur in current.items()
        }
    raise ResolutionRetry("profiles kept merging while being locked")


# --- In-memory replay ----------------------------------------------------------------------------------


@dataclass(eq=False)
class _Group:
    """Profiles and new records that resolve to one person, and the identifier keys they own."""

    profile_ids: set[UUID] = field(default_factory=set)
    keys: set[Key] = field(default_factory=set)
    items: list[PipelineItem] = field(default_factory=list)
    new_keys: list[Key] = field(default_factory=list)
    parent: _Group | None = None


@dataclass
class _Merge:
    profile_ids: set[UUID]
    rule: str
    evidence: dict


@dataclass
class _Conflict:
    item: PipelineItem
    group: _Group
    other_groups: list[_Group]
    identifier_type: str
    reason: str


class _Replay:
    def __init__(self, rules: IdentifierRules, source: Source, profile_keys: dict[UUID, set[Key]]):
        self.rules = rules
        self.source = source
        self.groups: list[_Group] = []
        self.key_group: dict[Key, _Group] = {}
        self.profile_group: dict[UUID, _Group] = {}
        self.merges: list[_Merge] = []
        self.conflicts: list[_Conflict] = []
        for profile_id, keys in profile_keys.items():
            group = self._new_group(profile_ids={profile_id}, keys=set(keys))
            self.profile_group[profile_id] = group
            for key in keys:
                self.key_group[key] = group

    def _new_group(self, **kwargs) -> _Group:
        group = _Group(**kwargs)
        self.groups.append(group)
        return group

    @staticmethod
    def find(group: _Group) -> _Group:
        while group.parent is not None:
            group = group.parent
        return group

    def _union(self, groups: list[_Group], item: PipelineItem, links: dict) -> _Group:
        root = max(groups, key=lambda g: len(g.keys))
        existing = [g for g in groups if g.profile_ids]
        if len(existing) > 1:
            linked_types = sorted({kind for keys in links.values() for kind, _ in keys})
            self.merges.append(
                _Merge(
                    profile_ids=set().union(*(g.profile_ids for g in existing)),
                    rule="deterministic:" + ("+".join(linked_types) or "record"),
                    evidence={
                        "record": {"source": self.source.slug, "external_id": item.external_id},
                        "links": [
                            {
                                "profiles": sorted(str(p) for p in g.profile_ids),
                                "identifiers": sorted(f"{kind}:{value}" for kind, value in links.get(g, ())),
                            }
                            for g in existing
                        ],
                    },
                )
            )
        for group in groups:
            if group is root:
                continue
            group.parent = root
            root.profile_ids |= group.profile_ids
            root.keys |= group.keys
            root.items += group.items
            root.new_keys += group.new_keys
        return root

    def place(self, item: PipelineItem, own_profile_id: UUID | None, keys: list[Key]) -> None:
        own = self.find(self.profile_group[own_profile_id]) if own_profile_id else None
        links: dict[_Group, list[Key]] = {}
        for key in keys:
            group = self.key_group.get(key)
            if group is not None:
                links.setdefault(self.find(group), []).append(key)
        candidates = list(dict.fromkeys([*([own] if own else []), *links]))

        if not candidates:
            target = self._new_group()
        elif candidates == [own]:
            target = own  # the record stays where it is; the per-key check below guards the limits
        else:
            violation = self.rules.violation(set(keys).union(*(g.keys for g in candidates)))
            if violation is None:
                target = self._union(candidates, item, links) if len(candidates) > 1 else candidates[0]
            else:
                target = own or self._new_group()
                kind, count, limit = violation
                self.conflicts.append(
                    _Conflict(
                        item,
                        target,
                        [g for g in candidates if g is not target],
                        kind,
                        f"linking would put {count} {kind} identifiers on one profile (limit {limit})",
                    )
                )
        for key in keys:
            owner = self.key_group.get(key)
            if owner is not None:
                continue  # already target's, or another person's (a recorded conflict)
            if self.rules.violation([*target.keys, key]) is not None:
                self.conflicts.append(
                    _Conflict(
                        item, target, [], key[0], f"{key[0]} {key[1]} would exceed the per-profile limit"
                    )
                )
                continue
            target.keys.add(key)
            target.new_keys.append(key)
            self.key_group[key] = target
        target.items.append(item)

    def roots(self) -> list[_Group]:
        return [group for group in self.groups if group.parent is None]


# --- Entry point ---------------------------------------------------------------------------------------


def _latest_per_external_id(items: list[PipelineItem]) -> list[PipelineItem]:
    """Within one chunk, only the newest version of a record counts (ties: the later one sent)."""
    latest: dict[str, PipelineItem] = {}
    for item in items:
        current = latest.get(item.external_id)
        if current is None or item.version_at >= current.version_at:
            if current is not None:
                current.finish("superseded")
            latest[item.external_id] = item
        else:
            item.finish("superseded")
    return [item for item in items if not item.finished]


def _outdated(record: SourceRecord | None, item: PipelineItem) -> str:
    """Why an item must not be applied ("stale", "unchanged"), or "" when it must.

    Two updates are ordered by the source's own change time (one clock); an update and a deletion by the
    order we received them, since a deletion carries no time of the source's.
    """
    if record is None:
        return ""
    if item.operation == InboundRecord.Operation.DELETE or record.deleted_at is not None:
        received_later = record.inbound_seq is not None and record.inbound_seq > item.inbound_id
        return "stale" if received_later else ""
    if record.version_at > item.version_at:
        return "stale"
    return "unchanged" if record.content_hash == item.record.content_hash else ""


def records_resolve(*, source: Source, items: list[PipelineItem]) -> set[UUID]:
    """Apply upserts and deletions of one source's records and resolve them to profiles.

    Must run inside a transaction. Sets each item's outcome; returns the ids of the profiles it changed.
    """
    items = _latest_per_external_id([item for item in items if not item.finished])
    if not items:
        return set()
    rules = identifier_rules_load()
    own_type = source.slug

    def matchable(item: PipelineItem) -> list[Key]:
        if item.record is None:
            return []
        return [tuple(key) for key in item.record.identifiers if not rules.is_blocked(tuple(key))]

    keys_by_item = {id(item): matchable(item) for item in items}
    all_keys = {(own_type, item.external_id) for item in items}.union(*keys_by_item.values())
    identifier_keys_lock(all_keys)

    existing = {
        record.external_id: record
        for record in SourceRecord.objects.filter(
            source=source, external_id__in=[i.external_id for i in items]
        )
    }
    changes: list[PipelineItem] = []
    for item in items:
        record = existing.get(item.external_id)
        outcome = _outdated(record, item)
        if outcome:
            item.finish(outcome)
        else:
            if record is not None and item.operation == InboundRecord.Operation.DELETE:
                item.version_at = max(item.version_at, record.version_at)  # older updates stay stale
            changes.append(item)
    if not changes:
        return set()

    change_keys = set().union(*(keys_by_item[id(item)] for item in changes))
    owners = _identity_owners(change_keys)
    own_profiles = {r.profile_id for r in existing.values() if r.profile_id and r.deleted_at is None}
    survivor_of = profiles_lock(set(owners.values()) | own_profiles)
    profile_keys: dict[UUID, set[Key]] = {profile_id: set() for profile_id in set(survivor_of.values())}
    for profile_id, kind, value in Identity.objects.filter(profile_id__in=profile_keys).values_list(
        "profile_id", "type", "value"
    ):
        profile_keys[profile_id].add((kind, value))

    replay = _Replay(rules, source, profile_keys)
    now = timezone.now()
    touched: set[UUID] = set()
    deletions: list[tuple[PipelineItem, SourceRecord | None]] = []
    for item in changes:
        record = existing.get(item.external_id)
        live = record is not None and record.deleted_at is None and record.profile_id is not None
        if item.operation == InboundRecord.Operation.DELETE:
            deletions.append((item, record))
            if live:
                touched.add(survivor_of[record.profile_id])
            continue
        replay.place(item, survivor_of[record.profile_id] if live else None, keys_by_item[id(item)])

    final_profile = _write_groups(source, replay, existing, now)

    def current_profile(profile_id: UUID) -> UUID:
        survivor = survivor_of.get(profile_id, profile_id)
        return final_profile.get(survivor, survivor)

    touched = {current_profile(profile_id) for profile_id in touched} | set(final_profile.values())
    _write_deletions(source, deletions, now, current_profile)
    profiles_refresh(profile_ids=touched)
    return touched


def _identity_owners(keys: set[Key]) -> dict[Key, UUID]:
    if not keys:
        return {}
    values = {value for _, value in keys}
    return {
        (kind, value): profile_id
        for kind, value, profile_id in Identity.objects.filter(value__in=values).values_list(
            "type", "value", "profile_id"
        )
        if (kind, value) in keys
    }


def _write_groups(source: Source, replay: _Replay, existing: dict, now) -> dict[UUID, UUID]:
    """Write the replayed groups; return each affected profile id (existing or new) -> its survivor."""
    roots = [root for root in replay.roots() if root.items or len(root.profile_ids) > 1]
    created_at = dict(
        Profile.objects.filter(pk__in=set().union(*(r.profile_ids for r in roots))).values_list(
            "pk", "created_at"
        )
    )
    new_profiles, new_records, changed_records, new_identities, merge_events = [], [], [], [], []
    history: list[RecordChange] = []
    final_profile: dict[UUID, UUID] = {}
    profile_of_group: dict[int, UUID] = {}
    for root in roots:
        if root.profile_ids:
            survivor_id = min(root.profile_ids, key=lambda pk: (created_at[pk], str(pk)))
        else:
            profile = Profile(created_at=now, updated_at=now)
            new_profiles.append(profile)
            survivor_id = profile.pk
        profile_of_group[id(root)] = survivor_id
        final_profile[survivor_id] = survivor_id
        final_profile.update(dict.fromkeys(root.profile_ids, survivor_id))
        losers = root.profile_ids - {survivor_id}
        if losers:
            _merge_into(survivor_id, losers, now)
            for merge in replay.merges:
                for loser in sorted(merge.profile_ids & losers, key=str):
                    merge_events.append(
                        MergeEvent(
                            survivor_id=survivor_id,
                            merged_id=loser,
                            rule=merge.rule,
                            evidence=merge.evidence,
                            created_at=now,
                        )
                    )
                    losers.discard(loser)
        new_identities += [
            Identity(type=k, value=v, profile_id=survivor_id, created_at=now) for k, v in root.new_keys
        ]
        for item in root.items:
            record, change = _record_apply(source, existing, item, survivor_id, now)
            (new_records if record.pk is None else changed_records).append(record)
            history.append(change)

    Profile.objects.bulk_create(new_profiles, batch_size=500)
    SourceRecord.objects.bulk_create(new_records, batch_size=500)
    rows_update(
        changed_records,
        [
            "profile_id",
            "attributes",
            "identifiers",
            "raw",
            "content_hash",
            "source_updated_at",
            "version_at",
            "deleted_at",
            "inbound_seq",
            "updated_at",
        ],
    )
    Identity.objects.bulk_create(new_identities, batch_size=500)
    MergeEvent.objects.bulk_create(merge_events)
    RecordChange.objects.bulk_create(history, batch_size=500)

    def profile_ids_of(group: _Group) -> list[str]:
        root = replay.find(group)
        if id(root) in profile_of_group:
            return [str(profile_of_group[id(root)])]
        return sorted(str(profile_id) for profile_id in root.profile_ids)

    ResolutionConflict.objects.bulk_create(
        [
            ResolutionConflict(
                record=existing[c.item.external_id],
                profile_id=profile_of_group[id(replay.find(c.group))],
                other_profiles=sorted({pid for g in c.other_groups for pid in profile_ids_of(g)}),
                identifier_type=c.identifier_type,
                reason=c.reason,
                created_at=now,
            )
            for c in replay.conflicts
        ]
    )
    return final_profile


def _record_apply(
    source: Source, existing: dict, item: PipelineItem, profile_id: UUID, now
) -> tuple[SourceRecord, RecordChange]:
    """Apply an upsert to the record in memory; return it and its history entry."""
    record, new = existing.get(item.external_id), item.record
    identifiers = [list(key) for key in new.identifiers]
    if record is None or record.deleted_at is not None:
        kind, changed = RecordChange.Kind.CREATED, sorted(new.attributes)
    else:
        old = record.attributes
        kind = RecordChange.Kind.UPDATED
        changed = sorted(
            name for name in old.keys() | new.attributes.keys() if old.get(name) != new.attributes.get(name)
        )
        if record.identifiers != identifiers:
            changed.append("identifiers")
    if record is None:
        record = SourceRecord(source=source, external_id=item.external_id, created_at=now)
        existing[item.external_id] = record
    record.profile_id = profile_id
    record.attributes, record.identifiers, record.raw = new.attributes, identifiers, item.raw
    record.content_hash, record.source_updated_at = new.content_hash, new.updated_at
    record.version_at, record.deleted_at, record.updated_at = item.version_at, None, now
    record.inbound_seq = item.inbound_id
    item.finish(kind)
    change = RecordChange(
        record=record,
        profile_id=profile_id,
        source=source,
        kind=kind,
        changed_fields=changed,
        occurred_at=item.version_at,
        recorded_at=now,
    )
    return record, change


def _merge_into(survivor_id: UUID, losers: set[UUID], now) -> None:
    """Re-point everything of the merged profiles to the survivor; the merged ones become tombstones."""
    Profile.objects.filter(pk__in=losers).update(
        status=Profile.Status.MERGED, merged_into_id=survivor_id, golden={}, lineage={}, updated_at=now
    )
    Profile.objects.filter(merged_into_id__in=losers).update(merged_into_id=survivor_id)
    Identity.objects.filter(profile_id__in=losers).update(profile_id=survivor_id)
    SourceRecord.objects.filter(profile_id__in=losers).update(profile_id=survivor_id)
    ResolutionConflict.objects.filter(profile_id__in=losers).update(profile_id=survivor_id)
    RecordChange.objects.filter(profile_id__in=losers).update(profile_id=survivor_id)
    Event.objects.filter(profile_id__in=losers).update(profile_id=survivor_id)


def _write_deletions(source: Source, deletions: list, now, current_profile) -> None:
    """Deleted records keep only a tombstone (so an older update cannot bring them back) and their history."""
    tombstones, history = [], []
    for item, record in deletions:
        if record is None:
            tombstones.append(
                SourceRecord(
                    source=source,
                    external_id=item.external_id,
                    version_at=item.version_at,
                    deleted_at=now,
                    inbound_seq=item.inbound_id,
                    created_at=now,
                    updated_at=now,
                )
            )
            item.finish("unknown")
            continue
        if record.deleted_at is not None:
            item.finish("unchanged")
            continue
        history.append(
            RecordChange(
                record=record,
                profile_id=current_profile(record.profile_id) if record.profile_id else None,
                source=source,
                kind=RecordChange.Kind.DELETED,
                changed_fields=sorted(record.attributes),
                occurred_at=item.version_at,
                recorded_at=now,
            )
        )
        record.profile_id = None
        record.attributes, record.identifiers, record.raw, record.content_hash = {}, [], None, ""
        record.version_at, record.deleted_at, record.updated_at = item.version_at, now, now
        record.inbound_seq = item.inbound_id
        record.save()
        item.finish("deleted")
    SourceRecord.objects.bulk_create(tombstones)
    RecordChange.objects.bulk_create(history)
