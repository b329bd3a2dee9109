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
import operator
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC
from functools import reduce
from uuid import UUID, uuid4

import phonenumbers
from django.db import connection
from django.db.models import Case, Q, UUIDField, Value, When
from django.utils import timezone

from cdp.db import array_text, instance, rows_insert, rows_update, values_insert
from ingestion.models import IdentifierType, InboundRecord, Source
from ingestion.normalise import PHONE, InvalidValue, normalise_identifier
from ingestion.pipeline import PipelineItem
from profiles.golden import Candidate
from profiles.models import (
    Event,
    Identity,
    MatchSuggestion,
    MergeEvent,
    NeverLink,
    Profile,
    RecordChange,
    ResolutionConflict,
    SourceRecord,
)

from .guard import IdentityGuard
from .refresh import DERIVED_FIELDS, profile_derived, profiles_refresh, survivorship_rules_load

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
            # national digits happen to match (a valid UK 01234 567890) is not. An E.164 value ends with its
            # national number, so only a value ending with blocked digits is worth parsing.
            if not any(key[1].endswith(digits) for digits in self.blocked_phone_digits):
                return False
            try:
                number = phonenumbers.parse(key[1])
            except phonenumbers.NumberParseException:
                return False
            return str(
                number.national_number
            ) in self.blocked_phone_digits and not phonenumbers.is_valid_number(number)
        return False

    def violation(self, keys: Iterable[Key], tolerated: Counter | None = None) -> tuple[str, int, int] | None:
        """The first identifier type whose limit these keys, on one profile, would exceed.

        ``tolerated``: per type, how many one profile already holds lawfully (an alias joined two user ids,
        or staff lowered a limit later): up to that many is no violation, so such a profile still takes new
        identifiers of other types and stitches anonymous visits.
        """
        counts = Counter(kind for kind, _ in keys if kind in self.limits)
        for kind, count in sorted(counts.items()):
            if count > max(self.limits[kind], (tolerated or {}).get(kind, 0)):
                return kind, count, self.limits[kind]
        return None


def _type_counts(keys: Iterable[Key]) -> Counter:
    return Counter(kind for kind, _ in keys)


def identifier_rules_load() -> IdentifierRules:
    return identifier_rules(IdentifierType.objects.all())


def identifier_rules(types: Iterable[IdentifierType]) -> IdentifierRules:
    """The rules of these identifier types (anything with their ``name``, ``normaliser``,
    ``max_per_profile`` and ``blocked_values``)."""
    from django.conf import settings

    limits, blocked, phone_digits = {}, set(), set()
    for rule in types:
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
                [array_text(lock_ids)],
            )


def identifier_keys_try_lock(keys: Iterable[Key]) -> set[Key]:
    """Take the locks of these keys that no other transaction holds, without waiting; return the keys whose
    locks this transaction now holds (every key on SQLite)."""
    keys = set(keys)
    if connection.vendor != "postgresql" or not keys:
        return keys
    keys_of: dict[int, list[Key]] = defaultdict(list)
    for key in keys:
        keys_of[_lock_id(key)].append(key)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT k FROM (SELECT unnest(%s::bigint[]) AS k ORDER BY 1) s WHERE pg_try_advisory_xact_lock(k)",
            [array_text(sorted(keys_of))],
        )
        return {key for (lock_id,) in cursor.fetchall() for key in keys_of[lock_id]}


def profiles_lock(profile_ids: Iterable[UUID]) -> dict[UUID, UUID]:
    """Lock the active profiles these ids stand for, in primary-key order; return id -> active profile id.

    Tombstones are followed with plain reads and never locked: a merge elsewhere may re-point them while we
    wait, and locking them would let two workers wait on each other. A profile merged between our read and
    our lock is followed in a further round.

    The lock is ``FOR NO KEY UPDATE``: it serialises everything that changes a profile (every such change
    takes it here), while the foreign-key checks of rows that merely point at the profile (records,
    identities, events of another worker, each taking ``KEY SHARE``) need not wait for it.
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
            Profile.objects.select_for_update(no_key=True)
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


# --- Never-link pairs -------------------------------------------------------------------------------------


@dataclass
class NeverLinks:
    """The never-link pairs among some records: record -> {other record: reason}, and the profile each of
    those records is on (absent for a deleted one)."""

    pairs: dict[int, dict[int, str]] = field(default_factory=dict)
    profile_of: dict[int, UUID] = field(default_factory=dict)


def never_links_load(*, profile_ids: set[UUID], record_ids: set[int]) -> NeverLinks:
    """The pairs whose two records are both on these profiles or among these records: one query."""
    never = NeverLinks()
    if not profile_ids and not record_ids:
        return never
    # A semi-join from the records in scope (profile and primary-key indexes) to the pairs' indexes: its cost
    # follows the records involved, not the size of the never-link table.
    in_scope = SourceRecord.objects.filter(Q(profile_id__in=profile_ids) | Q(pk__in=record_ids)).values("pk")
    for a, profile_a, b, profile_b, reason in NeverLink.objects.filter(
        record_a_id__in=in_scope, record_b_id__in=in_scope
    ).values_list("record_a_id", "record_a__profile_id", "record_b_id", "record_b__profile_id", "reason"):
        never.pairs.setdefault(a, {})[b] = reason
        never.pairs.setdefault(b, {})[a] = reason
        for record_id, profile_id in ((a, profile_a), (b, profile_b)):
            if profile_id is not None:
                never.profile_of[record_id] = profile_id
    return never


# --- In-memory replay ----------------------------------------------------------------------------------


@dataclass(eq=False)
class _Group:
    """Profiles and new records that resolve to one person, and the identifier keys they own."""

    profile_ids: set[UUID] = field(default_factory=set)
    keys: set[Key] = field(default_factory=set)
    items: list[PipelineItem] = field(default_factory=list)
    new_keys: list[Key] = field(default_factory=list)
    records: set[int] = field(default_factory=set)  # only records in a never-link pair
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
    def __init__(
        self,
        rules: IdentifierRules,
        source: Source,
        profile_keys: dict[UUID, set[Key]],
        never_links: NeverLinks | None = None,
        guard: IdentityGuard | None = None,
    ):
        self.rules = rules
        self.source = source
        self.never = never_links or NeverLinks()
        self.guard = guard or IdentityGuard({})
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
        for record_id, profile_id in self.never.profile_of.items():
            if profile_id in self.profile_group:
                self.profile_group[profile_id].records.add(record_id)

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
            root.records |= group.records
        return root

    def _never_linked(
        self, candidates: list[_Group], own: _Group | None, record_id: int | None
    ) -> tuple[int, int, str] | None:
        """A never-link pair that joining these groups (and the record, when it has no profile yet) would
        put on one profile."""
        part_of: dict[int, int] = {}
        for index, group in enumerate(candidates):
            part_of.update(dict.fromkeys(group.records, index))
        if own is None and record_id in self.never.pairs:
            part_of[record_id] = len(candidates)
        for record_id_ in sorted(part_of):
            for other, reason in sorted(self.never.pairs.get(record_id_, {}).items()):
                if part_of.get(other, part_of[record_id_]) != part_of[record_id_]:
                    return min(record_id_, other), max(record_id_, other), reason
        return None

    def place(
        self, item: PipelineItem, own_profile_id: UUID | None, keys: list[Key], record_id: int | None = None
    ) -> None:
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
        elif never_linked := self._never_linked(candidates, own, record_id):
            # A steward (or an unmerge) said these are different people: no identifier overrules that.
            target = own or self._new_group()
            others = [g for g in candidates if g is not target]
            a, b, why = never_linked
            kinds = sorted({kind for g in others for kind, _ in links.get(g, ())})
            self.conflicts.append(
                _Conflict(
                    item,
                    target,
                    others,
                    kinds[0] if kinds else "never_link",
                    f"not linked through {', '.join(kinds) or 'its identifiers'}: records {a} and {b} "
                    f"were marked as different people (never link, {why})",
                )
            )
        else:
            # One family email or landline, two people (see profiles.services.guard): the identifier shared
            # with a clearly different person links nothing (a conflict for review); the record still joins
            # the profiles its other identifiers link it to without such a clash.
            clashes = self._identity_clashes(item, candidates, own, record_id)
            clashing = {id(group) for group, _, _ in clashes}
            linked = [g for g in candidates if id(g) not in clashing]
            if not linked:
                target = self._new_group()
            elif linked == [own]:
                target = own
            else:
                violation = self.rules.violation(
                    set(keys).union(*(g.keys for g in linked)),
                    tolerated=reduce(operator.or_, (_type_counts(g.keys) for g in linked)),
                )
                if violation is None:
                    target = self._union(linked, item, links) if len(linked) > 1 else linked[0]
                else:
                    target = own or self._new_group()
                    kind, count, limit = violation
                    self.conflicts.append(
                        _Conflict(
                            item,
                            target,
                            [g for g in linked if g is not target],
                            kind,
                            f"linking would put {count} {kind} identifiers on one profile (limit {limit})",
                        )
                    )
            for group, reason, other in clashes:
                kinds = sorted({kind for kind, _ in links.get(group, ())})
                self.conflicts.append(
                    _Conflict(
                        item,
                        target,
                        [group],
                        kinds[0] if kinds else "identity",
                        f"not linked through {', '.join(f'{k} {v}' for k, v in links.get(group, ()))}: "
                        f"{reason} with record {other}, so these look like different people sharing it",
                    )
                )
        for key in keys:
            owner = self.key_group.get(key)
            if owner is not None:
                continue  # already target's, or another person's (a recorded conflict)
            if (
                key[0] in self.rules.limits
                and self.rules.violation([*target.keys, key], tolerated=_type_counts(target.keys)) is not None
            ):
                self.conflicts.append(
                    _Conflict(
                        item, target, [], key[0], f"{key[0]} {key[1]} would exceed the per-profile limit"
                    )
                )
                continue
            target.keys.add(key)
            target.new_keys.append(key)
            self.key_group[key] = target
        if record_id in self.never.pairs:
            target.records.add(record_id)
        target.items.append(item)

    def _identity_clashes(
        self, item: PipelineItem, candidates: list[_Group], own: _Group | None, record_id: int | None
    ) -> list[tuple[_Group, str, int | str]]:
        """The candidate groups (other than the record's own) holding a record clearly somebody else's:
        (group, reason, that record)."""
        if item.record is None:
            return []
        clashes = []
        for group in candidates:
            if group is own:
                continue
            clash = self.guard.clash(
                item.record.attributes,
                record_id=record_id,
                profile_ids=group.profile_ids,
                pending=[(i.external_id, i.record.attributes) for i in group.items if i.record is not None],
            )
            if clash is not None:
                clashes.append((group, *clash))
        return clashes

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


@dataclass
class HeldRecords:
    """A chunk's source records, read under the locks of their identifier keys (``records_hold``).

    Lets a caller that must read the records before resolving them (tracking accumulates each message into
    its identity's record) take the chunk's locks once: ``records_resolve`` locks only keys not yet held, and
    fills ``profiles`` with the profiles it locked (id -> live id). On return every live record points at its
    profile's survivor.
    """

    keys: set[Key]
    records: dict[str, SourceRecord]
    profiles: dict[UUID, UUID] = field(default_factory=dict)


def records_hold(
    *, source: Source, external_ids: Iterable[str], keys: Iterable[Key], locked_keys: set[Key] = frozenset()
) -> HeldRecords:
    """Lock these identifier keys and the source's own key of each record (one query; none for keys in
    ``locked_keys``, already held by this transaction), then read the records (one query)."""
    external_ids = list(dict.fromkeys(external_ids))
    held_keys = {(source.slug, external_id) for external_id in external_ids}.union(keys)
    identifier_keys_lock(held_keys - locked_keys)
    held_keys |= locked_keys
    records = SourceRecord.objects.filter(source=source, external_id__in=external_ids)
    return HeldRecords(held_keys, {record.external_id: record for record in records})


def records_resolve(
    *,
    source: Source,
    items: list[PipelineItem],
    held: HeldRecords | None = None,
    history: bool = True,
    locked_keys: set[Key] = frozenset(),
) -> set[UUID]:
    """Apply upserts and deletions of one source's records and resolve them to profiles.

    Must run inside a transaction. Sets each item's outcome; returns the ids of the profiles it changed.
    ``held``: the records already read under their locks (``records_hold``). ``history``: write the
    ``RecordChange`` entries of the journey (tracking identities do not: their events are the journey).
    ``locked_keys``: identifier keys this transaction already holds (an earlier pipeline step took them).
    """
    items = _latest_per_external_id([item for item in items if not item.finished])
    if not items:
        return set()
    if held is None:
        held = records_hold(
            source=source,
            external_ids=[i.external_id for i in items],
            keys={tuple(key) for item in items if item.record is not None for key in item.record.identifiers},
            locked_keys=locked_keys,
        )
    existing = held.records
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

    rules = identifier_rules_load()

    def matchable(item: PipelineItem) -> list[Key]:
        if item.record is None:
            return []
        return [tuple(key) for key in item.record.identifiers if not rules.is_blocked(tuple(key))]

    keys_by_item = {id(item): matchable(item) for item in changes}
    change_keys = set().union(*keys_by_item.values())
    owners = _identity_owners(change_keys)
    # A caller that read the records first held only the keys its messages carried. Of the keys the records
    # already had, those on the record's own profile are guarded by that profile's lock (taken below); the
    # others (a link refused earlier) are locked now, and their owners read again.
    own_profile_of = {
        key: record.profile_id
        for item in changes
        if (record := existing.get(item.external_id)) is not None and record.profile_id is not None
        for key in keys_by_item[id(item)]
    }
    unguarded = {
        key
        for key in change_keys - held.keys
        if owners.get(key) is None or owners[key] != own_profile_of.get(key)
    }
    if unguarded:
        identifier_keys_lock(unguarded)
        held.keys |= unguarded
        owners = {key: pid for key, pid in owners.items() if key not in unguarded}
        owners.update(_identity_owners(unguarded))
    own_profiles = {r.profile_id for r in existing.values() if r.profile_id and r.deleted_at is None}
    survivor_of = profiles_lock(set(owners.values()) | own_profiles)
    held.profiles.update(survivor_of)
    profile_keys: dict[UUID, set[Key]] = {profile_id: set() for profile_id in set(survivor_of.values())}
    for profile_id, kind, value in Identity.objects.filter(profile_id__in=profile_keys).values_list(
        "profile_id", "type", "value"
    ):
        profile_keys[profile_id].add((kind, value))

    replay = _Replay(
        rules,
        source,
        profile_keys,
        never_links_load(
            profile_ids=set(profile_keys), record_ids={record.pk for record in existing.values()}
        ),
        IdentityGuard.load({survivor_of[profile_id] for profile_id in owners.values()}),
    )
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
        replay.place(
            item,
            survivor_of[record.profile_id] if live else None,
            keys_by_item[id(item)],
            record.pk if record is not None else None,
        )

    lost_identifiers = _losing_identifiers(changes, existing)
    final_profile, fresh = _write_groups(source, replay, existing, now, history)

    def current_profile(profile_id: UUID) -> UUID:
        survivor = survivor_of.get(profile_id, profile_id)
        return final_profile.get(survivor, survivor)

    touched = {current_profile(profile_id) for profile_id in touched} | set(final_profile.values())
    _write_deletions(source, deletions, now, current_profile)
    for record in existing.values():
        if record.profile_id is not None and record.deleted_at is None:
            record.profile_id = current_profile(record.profile_id)
    held.profiles.update({pid: current_profile(pid) for pid in held.profiles.keys() | final_profile.keys()})
    profiles_refresh(
        profile_ids=touched - fresh, orphans_in={current_profile(pid) for pid in lost_identifiers}
    )
    from .matching import records_match  # it merges through merge.py, which builds on this module

    return records_match(source=source, items=changes, records=existing, profile_ids=touched, link=history)


def _losing_identifiers(changes: list[PipelineItem], existing: dict[str, SourceRecord]) -> set[UUID]:
    """The profiles whose records these changes take identifiers from (an update that drops one, a
    deletion): only they can be left with an identity no live record carries. Read before the changes
    are applied."""
    losing = set()
    for item in changes:
        record = existing.get(item.external_id)
        if record is None or record.deleted_at is not None or record.profile_id is None:
            continue
        kept = {tuple(key) for key in item.record.identifiers} if item.record is not None else set()
        if any(tuple(key) not in kept for key in record.identifiers):
            losing.add(record.profile_id)
    return losing


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


def _write_groups(
    source: Source, replay: _Replay, existing: dict, now, history: bool = True
) -> tuple[dict[UUID, UUID], set[UUID]]:
    """Write the replayed groups; return each affected profile id (existing or new) -> its survivor, and
    the new profiles written complete (nothing to refresh)."""
    roots = [root for root in replay.roots() if root.items or len(root.profile_ids) > 1]
    created_at = dict(
        Profile.objects.filter(pk__in=set().union(*(r.profile_ids for r in roots))).values_list(
            "pk", "created_at"
        )
    )
    new_profiles, new_records, changed_records, new_identities, merge_events = [], [], [], [], []
    fresh: list[tuple[Profile, list[PipelineItem]]] = []  # new profiles, made of this chunk's records only
    changes: list[tuple[SourceRecord, UUID, str, list[str], object]] = []
    final_profile: dict[UUID, UUID] = {}
    profile_of_group: dict[int, UUID] = {}
    merged_into: dict[UUID, UUID] = {}
    for root in roots:
        if root.profile_ids:
            survivor_id = min(root.profile_ids, key=lambda pk: (created_at[pk], str(pk)))
        else:
            profile = instance(
                Profile,
                {
                    "id": uuid4(),
                    "status": Profile.Status.ACTIVE,
                    "merged_into_id": None,
                    "golden": {},  # _fresh_profiles_derive fills in these four
                    "lineage": {},
                    "display_name": "",
                    "search_name": "",
                    "created_at": now,
                    "updated_at": now,
                },
            )
            new_profiles.append(profile)
            fresh.append((profile, root.items))
            survivor_id = profile.pk
        profile_of_group[id(root)] = survivor_id
        final_profile[survivor_id] = survivor_id
        final_profile.update(dict.fromkeys(root.profile_ids, survivor_id))
        losers = root.profile_ids - {survivor_id}
        if losers:
            merged_into.update(dict.fromkeys(losers, survivor_id))
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
        new_identities += [(k, v, survivor_id, now) for k, v in root.new_keys]
        for item in root.items:
            record, change = _record_apply(source, existing, item, survivor_id, now)
            (new_records if record.pk is None else changed_records).append(record)
            changes.append(change)

    profiles_repoint(merged_into, now)
    # The records first (foreign keys are checked at commit): a new profile's golden record names them.
    rows_insert(new_records)
    _fresh_profiles_derive(source, fresh, existing)
    rows_insert(new_profiles)
    rows_update(
        changed_records,
        [
            "profile_id",
            "attributes",
            "identifiers",
            "content_hash",
            "source_updated_at",
            "version_at",
            "deleted_at",
            "inbound_seq",
            "updated_at",
        ],
    )
    # Identities and history are written as plain rows: nothing reads them back in this chunk.
    values_insert(model=Identity, fields=["type", "value", "profile", "created_at"], rows=new_identities)
    MergeEvent.objects.bulk_create(merge_events)
    if history:
        values_insert(
            model=RecordChange,
            fields=["record", "profile", "source", "kind", "changed_fields", "occurred_at", "recorded_at"],
            rows=[
                (record.pk, profile_id, source.pk, kind, changed, occurred_at, now)
                for record, profile_id, kind, changed, occurred_at in changes
            ],
        )

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
    return final_profile, {profile.pk for profile, _ in fresh}


def _fresh_profiles_derive(source: Source, fresh: list[tuple[Profile, list[PipelineItem]]], existing: dict):
    """Fill in what a new profile derives from its records (``profiles_refresh``), from the records in
    memory: every record of a new profile is in this chunk. It is then written once, complete."""
    if not fresh:
        return
    rules = survivorship_rules_load()
    for profile, items in fresh:
        candidates = []
        for item in items:
            record = existing[item.external_id]
            candidates.append(
                Candidate(
                    record_id=record.pk,
                    source=source.slug,
                    external_id=record.external_id,
                    trust_rank=source.trust_rank,
                    observed_at=record.version_at.astimezone(UTC),  # as the database gives it back
                    attributes=record.attributes,
                    source_time=record.source_updated_at is not None
                    or item.operation == InboundRecord.Operation.EVENT,
                )
            )
        derived = profile_derived(candidates, rules)
        for name, value in zip(DERIVED_FIELDS, derived, strict=True):
            setattr(profile, name, value)


def _record_apply(
    source: Source, existing: dict, item: PipelineItem, profile_id: UUID, now
) -> tuple[SourceRecord, tuple[SourceRecord, UUID, str, list[str], object]]:
    """Apply an upsert to the record in memory; return it and its history entry (record, profile id, kind,
    changed fields, change time)."""
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
    values = {
        "profile_id": profile_id,
        "attributes": new.attributes,
        "identifiers": identifiers,
        "content_hash": new.content_hash,
        "source_updated_at": new.updated_at,
        "version_at": item.version_at,
        "deleted_at": None,
        "inbound_seq": item.inbound_id,
        "updated_at": now,
    }
    if record is None:
        values.update(id=None, source_id=source.pk, external_id=item.external_id, created_at=now)
        record = existing[item.external_id] = instance(SourceRecord, values)
        record.source = source  # cached, as the keyword constructor would
    else:
        for name, value in values.items():
            setattr(record, name, value)
    item.finish(kind)
    return record, (record, profile_id, kind.value, changed, item.version_at)


def _merge_into(survivor_id: UUID, losers: set[UUID], now) -> None:
    """Merge ``losers`` into the survivor (see ``profiles_repoint``)."""
    profiles_repoint(dict.fromkeys(losers, survivor_id), now)


# Every column that points at a live profile and follows it into its survivor when it merges. (Audit rows,
# merges and splits, keep the ids they were written with; consent follows tombstones when it reads.)
PROFILE_POINTERS = (
    (Profile, "merged_into_id"),
    (Identity, "profile_id"),
    (SourceRecord, "profile_id"),
    (ResolutionConflict, "profile_id"),
    (RecordChange, "profile_id"),
    (Event, "profile_id"),
    (MatchSuggestion, "profile_id"),
    (MatchSuggestion, "candidate_profile_id"),
)


def profiles_repoint(mapping: dict[UUID, UUID], now) -> None:
    """Merge profiles (merged id -> survivor id): the merged become tombstones and every row pointing at one
    of them points at its survivor. Every way of merging ends here (the deterministic replay, probabilistic
    links, accepted suggestions, ``resolve --all``): one UPDATE per table for all the merges of a chunk."""
    if not mapping:
        return
    losers = list(mapping)
    if connection.vendor != "postgresql":  # development databases: a CASE per statement is fine there

        def survivor_of(column: str) -> Case:
            whens = (When(**{column: loser}, then=Value(survivor)) for loser, survivor in mapping.items())
            return Case(*whens, output_field=UUIDField())

        Profile.objects.filter(pk__in=losers).update(
            status=Profile.Status.MERGED,
            merged_into_id=survivor_of("pk"),
            golden={},
            lineage={},
            updated_at=now,
        )
        for model, column in PROFILE_POINTERS:
            model.objects.filter(**{f"{column}__in": losers}).update(**{column: survivor_of(column)})
        return
    pairs = [
        array_text([str(loser) for loser in losers]),
        array_text([str(mapping[loser]) for loser in losers]),
    ]
    join = "FROM unnest(%s::uuid[], %s::uuid[]) AS m(loser, survivor) WHERE t.{column} = m.loser"
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Profile._meta.db_table} AS t SET status = %s, merged_into_id = m.survivor,"
            f" golden = '{{}}', lineage = '{{}}', updated_at = %s {join.format(column='id')}",
            [Profile.Status.MERGED, now, *pairs],
        )
        for model, column in PROFILE_POINTERS:
            cursor.execute(
                f"UPDATE {model._meta.db_table} AS t SET {column} = m.survivor {join.format(column=column)}",
                pairs,
            )


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
        record.attributes, record.identifiers, record.content_hash = {}, [], ""
        record.version_at, record.deleted_at, record.updated_at = item.version_at, now, now
        record.inbound_seq = item.inbound_id
        record.save()
        item.finish("deleted")
    SourceRecord.objects.bulk_create(tombstones)
    RecordChange.objects.bulk_create(history)
