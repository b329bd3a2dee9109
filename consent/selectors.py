"""Reads of the consent app: the ledger entries that speak for a person, and the decisions derived from them.

The consent check is called before every message, so on PostgreSQL it is one SQL statement: the subject's
profile (following merges), its tombstones, identifiers, ledger entries and restriction, and a stamp of the
vocabulary (purposes, channels, identifier types). The vocabulary itself is cached in the process and used
only while the stamp read in that same statement matches it, so an edit in the admin is seen by every process
at its next check, with no time window and no signal to miss. Other databases take the plain ORM path.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from ingestion.models import IdentifierType
from ingestion.normalise import normalise_identifier
from profiles.models import Identity, Profile
from profiles.selectors import UnknownIdentifierType, identifier_normalise, profile_get

from . import rules
from .models import Channel, ConsentEntry, Purpose, RestrictedProfile

PROCESSING_RESTRICTED = rules.PROCESSING_RESTRICTED


class UnknownPurpose(ValueError):
    pass


class UnknownChannel(ValueError):
    pass


# --- The vocabulary: purposes, channels, identifier types ------------------------------------------------


@dataclass(frozen=True)
class Vocabulary:
    """What a check needs to know besides the person, as of ``stamp``."""

    stamp: str
    purposes: dict[str, rules.PurposeRule]
    channels: frozenset[str]
    normalisers: dict[str, str]  # identifier type -> normaliser


def _stamp_sql() -> str:
    """A digest of every field of the vocabulary a check reads: any edit, addition or removal changes it."""
    return (
        "md5(concat_ws('|', "
        f"(SELECT string_agg(concat_ws(':', slug, requires_consent, direct_marketing, sale_sharing), ',' "
        f"ORDER BY slug) FROM {Purpose._meta.db_table}), "
        f"(SELECT string_agg(slug, ',' ORDER BY slug) FROM {Channel._meta.db_table}), "
        f"(SELECT string_agg(concat_ws(':', name, normaliser), ',' ORDER BY name) "
        f"FROM {IdentifierType._meta.db_table})))"
    )


_vocabulary: Vocabulary | None = None
_vocabulary_lock = threading.Lock()


def vocabulary_load() -> Vocabulary:
    """Read the vocabulary and keep it for this process. The stamp is read first: should an edit land between
    the reads, the rows are newer than the stamp and the next check, seeing another stamp, reads them again."""
    global _vocabulary
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {_stamp_sql()}")
        (stamp,) = cursor.fetchone()
    vocabulary = Vocabulary(
        stamp=stamp,
        purposes={p.slug: p.as_rule() for p in Purpose.objects.all()},
        channels=frozenset(Channel.objects.values_list("slug", flat=True)),
        normalisers=dict(IdentifierType.objects.values_list("name", "normaliser")),
    )
    with _vocabulary_lock:
        _vocabulary = vocabulary
    return vocabulary


def _vocabulary_cached() -> Vocabulary:
    return _vocabulary or vocabulary_load()


# --- Subjects ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """What one statement read about a subject for its consent checks: the whole ledger of the person (with
    when each entry was recorded, for questions about the past), its restriction, and the vocabulary."""

    ledger: tuple[tuple[datetime, rules.Entry], ...]
    restricted_by: UUID | None  # the data-subject request restricting processing, if any
    vocabulary: Vocabulary


@dataclass(frozen=True)
class Subject:
    """Whom a question is about: a profile (with the ids and identifiers that speak for it), or an identifier
    no profile holds yet (consent may be recorded before the first record of a person arrives)."""

    profile_id: UUID | None
    profile_ids: tuple[UUID, ...]  # the profile and its merged-away tombstones
    identifiers: tuple[tuple[str, str], ...]
    snapshot: Snapshot | None = field(default=None, compare=False, repr=False)


def subject_of_profile(profile: Profile) -> Subject:
    ids = (profile.pk, *Profile.objects.filter(merged_into_id=profile.pk).values_list("pk", flat=True))
    identifiers = tuple(Identity.objects.filter(profile_id=profile.pk).values_list("type", "value"))
    return Subject(profile_id=profile.pk, profile_ids=ids, identifiers=identifiers)


def subject_resolve(*, profile_id: str | None = None, identifier: dict | None = None) -> Subject | None:
    """The subject of a profile id (a merged-away id means its survivor) or of an identifier in any spelling.

    Raises ``UnknownIdentifierType`` / ``InvalidValue`` (from ``profiles.selectors``) for a bad identifier;
    returns None for an unknown profile id."""
    if connection.vendor == "postgresql":
        return _subject_load(profile_id=profile_id, identifier=identifier)
    return _subject_resolve_orm(profile_id=profile_id, identifier=identifier)


def _subject_resolve_orm(*, profile_id: str | None, identifier: dict | None) -> Subject | None:
    if profile_id is not None:
        profile = profile_get(profile_id=profile_id)
        return subject_of_profile(profile) if profile else None
    kind = identifier["type"]
    value = identifier_normalise(type=kind, value=identifier["value"], region=identifier.get("region"))
    owner = Identity.objects.filter(type=kind, value=value).values_list("profile_id", flat=True).first()
    profile = profile_get(profile_id=owner) if owner else None
    if profile is not None:
        return subject_of_profile(profile)
    return Subject(profile_id=None, profile_ids=(), identifiers=((kind, value),))


# One statement for a whole subject. ``start`` is the profile the question names (through an identity, or by
# id); ``chain`` follows merges to the survivor like ``profile_get``; ``held`` are the identifiers whose
# entries count (the survivor's, or the asked identifier when no profile holds it); each branch of ``ledger``
# is one index lookup. Rows are tagged: v (vocabulary stamp, chain length, restriction), s (survivor),
# f (a tombstone), h (an identifier), e (a ledger entry).
_SUBJECT_SQL = """
WITH RECURSIVE
start(id) AS ({start}),
chain(id, merged_into_id, depth) AS (
    SELECT p.id, p.merged_into_id, 0 FROM {profile} p WHERE p.id IN (SELECT id FROM start)
    UNION ALL
    SELECT p.id, p.merged_into_id, c.depth + 1 FROM chain c JOIN {profile} p ON p.id = c.merged_into_id
    WHERE c.depth < 64
),
survivor(id) AS (SELECT id FROM chain WHERE merged_into_id IS NULL LIMIT 1),
tombstone(id) AS (SELECT p.id FROM {profile} p WHERE p.merged_into_id IN (SELECT id FROM survivor)),
family(id) AS (SELECT id FROM survivor UNION ALL SELECT id FROM tombstone),
held(type, value) AS (
    SELECT i.type, i.value FROM {identity} i WHERE i.profile_id IN (SELECT id FROM survivor)
    {unheld}
),
ledger(id) AS (
    SELECT e.id FROM {entry} e JOIN held h ON e.identifier_value = h.value AND e.identifier_type = h.type
    UNION
    SELECT e.id FROM {entry} e
    WHERE e.subject_profile_id IS NOT NULL AND e.subject_profile_id IN (SELECT id FROM family)
    UNION
    SELECT e.id FROM {entry} e
    WHERE e.recorded_for_profile_id IS NOT NULL AND e.recorded_for_profile_id IN (SELECT id FROM family)
)
SELECT 'v', (SELECT r.request_id FROM {restricted} r WHERE r.profile_id IN (SELECT id FROM family)
             ORDER BY r.created_at, r.id LIMIT 1),
       {stamp}, NULL, NULL, NULL, NULL, (SELECT count(*) FROM chain), NULL::timestamptz, NULL::timestamptz,
       NULL::timestamptz
UNION ALL SELECT 's', id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM survivor
UNION ALL SELECT 'f', id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM tombstone
UNION ALL SELECT 'h', NULL, type, value, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM held
UNION ALL SELECT 'e', e.subject_profile_id, e.identifier_type, e.identifier_value, e.purpose_id, e.channel_id,
       e.decision, e.id, e.effective_at, e.expires_at, e.recorded_at
FROM {entry} e WHERE e.id IN (SELECT id FROM ledger)
"""


def _subject_sql(*, by_identifier: bool) -> str:
    tables = {
        "profile": Profile._meta.db_table,
        "identity": Identity._meta.db_table,
        "entry": ConsentEntry._meta.db_table,
        "restricted": RestrictedProfile._meta.db_table,
    }
    if by_identifier:
        start = f"SELECT profile_id FROM {tables['identity']} WHERE type = %(type)s AND value = %(value)s"
        unheld = "UNION ALL SELECT %(type)s, %(value)s WHERE NOT EXISTS (SELECT 1 FROM survivor)"
    else:
        start, unheld = "SELECT %(profile)s::uuid", ""
    return _SUBJECT_SQL.format(start=start, unheld=unheld, stamp=_stamp_sql(), **tables)


def _subject_load(
    *, profile_id: str | None, identifier: dict | None, retried: bool = False
) -> Subject | None:
    vocabulary = _vocabulary_cached()
    if profile_id is not None:
        try:
            params = {"profile": UUID(str(profile_id))}
        except ValueError:
            return None
    else:
        kind = identifier["type"]
        normaliser = vocabulary.normalisers.get(kind)
        if normaliser is None and not retried:  # perhaps declared since the cache was filled
            vocabulary = vocabulary_load()
            normaliser = vocabulary.normalisers.get(kind)
        if normaliser is None:
            raise UnknownIdentifierType(f"unknown identifier type {kind!r}")
        region = identifier.get("region") or settings.CDP_DEFAULT_PHONE_REGION
        params = {"type": kind, "value": normalise_identifier(normaliser, identifier["value"], region)}
    with connection.cursor() as cursor:
        cursor.execute(_subject_sql(by_identifier=profile_id is None), params)
        rows = cursor.fetchall()

    stamp, chain_length, restricted_by = None, 0, None
    survivor, tombstones, held, ledger = None, [], [], []
    for kind, uid, a, b, c, d, e, n, t1, t2, t3 in rows:
        if kind == "e":
            contact = ("profile", str(uid)) if uid else (a, b)
            entry = rules.Entry(
                id=n, contact_point=contact, purpose=c, channel=d, decision=e, effective_at=t1, expires_at=t2
            )
            ledger.append((t3, entry))
        elif kind == "h":
            held.append((a, b))
        elif kind == "f":
            tombstones.append(uid)
        elif kind == "s":
            survivor = uid
        else:
            stamp, chain_length, restricted_by = a, n, uid
    if stamp != vocabulary.stamp:
        # The vocabulary changed since it was cached: read it again, then the subject (the identifier may
        # normalise differently now). Should it change again meanwhile, answer without the snapshot.
        vocabulary_load()
        if not retried:
            return _subject_load(profile_id=profile_id, identifier=identifier, retried=True)
        return _subject_resolve_orm(profile_id=profile_id, identifier=identifier)
    if survivor is None and chain_length:  # a merge chain without an end (a cycle): as profile_get answers
        return _subject_resolve_orm(profile_id=profile_id, identifier=identifier)
    snapshot = Snapshot(ledger=tuple(ledger), restricted_by=restricted_by, vocabulary=vocabulary)
    if survivor is None:
        if profile_id is not None:
            return None
        return Subject(profile_id=None, profile_ids=(), identifiers=tuple(held), snapshot=snapshot)
    return Subject(
        profile_id=survivor, profile_ids=(survivor, *tombstones), identifiers=tuple(held), snapshot=snapshot
    )


def ledger_entries(*, subject: Subject, known_at: datetime | None = None):
    """Every ledger row that speaks for the subject: given for one of its identifiers, for its id or a
    merged-away id, or given for an identifier it held when the entry was recorded. One indexed query."""
    condition = Q()
    for kind, value in subject.identifiers:
        condition |= Q(identifier_value=value, identifier_type=kind)
    if subject.profile_ids:
        condition |= Q(subject_profile_id__in=subject.profile_ids)
        condition |= Q(recorded_for_profile_id__in=subject.profile_ids)
    if not condition:
        return ConsentEntry.objects.none()
    entries = ConsentEntry.objects.filter(condition)
    if known_at is not None:
        entries = entries.filter(recorded_at__lte=known_at)
    return entries


def rule_entries(*, subject: Subject, known_at: datetime | None = None) -> list[rules.Entry]:
    rows = ledger_entries(subject=subject, known_at=known_at).values_list(
        "id",
        "identifier_type",
        "identifier_value",
        "subject_profile_id",
        "purpose_id",
        "channel_id",
        "decision",
        "effective_at",
        "expires_at",
    )
    return [
        rules.Entry(
            id=pk,
            contact_point=("profile", str(profile_id)) if profile_id else (kind, value),
            purpose=purpose,
            channel=channel,
            decision=decision,
            effective_at=effective_at,
            expires_at=expires_at,
        )
        for pk, kind, value, profile_id, purpose, channel, decision, effective_at, expires_at in rows
    ]


def purpose_rule(*, slug: str) -> rules.PurposeRule:
    purpose = Purpose.objects.filter(slug=slug).first()
    if purpose is None:
        raise UnknownPurpose(f"unknown purpose {slug!r}")
    return purpose.as_rule()


def channel_check(*, slug: str) -> str:
    if not Channel.objects.filter(slug=slug).exists():
        raise UnknownChannel(f"unknown channel {slug!r}")
    return slug


def reason_as_dict(reason: rules.Reason) -> dict:
    entry = reason.entry
    kind, value = entry.contact_point
    return {
        "entry": entry.id,
        "effect": reason.effect,
        "decision": entry.decision,
        "identifier": {"profile": value} if kind == "profile" else {"type": kind, "value": value},
        "purpose": entry.purpose,
        "channel": entry.channel,
        "effective_at": entry.effective_at,
        "expires_at": entry.expires_at,
    }


def decision_as_dict(decision: rules.Decision) -> dict:
    answer = {
        "allowed": decision.allowed,
        "rule": decision.rule,
        "explanation": decision.explanation,
        "reasons": [reason_as_dict(r) for r in decision.reasons],
    }
    if decision.restriction_request is not None:
        answer["restriction"] = {"request": decision.restriction_request}
    return answer


def consent_check(
    *, subject: Subject, purpose: str, channel: str, at: datetime | None = None
) -> rules.Decision:
    """Whether the subject may be processed for ``purpose`` on ``channel``, and which entries decided it.

    ``at`` asks about a past moment, as the ledger stood then (entries recorded later are not used)."""
    moment = at or timezone.now()
    snapshot = subject.snapshot
    if snapshot is None:
        purpose_rules = purpose_rule(slug=purpose)
        channel_check(slug=channel)
        restricted_by = (
            RestrictedProfile.objects.filter(profile_id__in=subject.profile_ids)
            .order_by("created_at", "id")
            .values_list("request_id", flat=True)
            .first()
            if subject.profile_ids
            else None
        )
    else:
        purpose_rules = snapshot.vocabulary.purposes.get(purpose)
        if purpose_rules is None:
            raise UnknownPurpose(f"unknown purpose {purpose!r}")
        if channel not in snapshot.vocabulary.channels:
            raise UnknownChannel(f"unknown channel {channel!r}")
        restricted_by = snapshot.restricted_by
    if restricted_by is not None:
        return rules.processing_restricted(request_id=restricted_by)
    if snapshot is None:
        entries = rule_entries(subject=subject, known_at=at)
    else:
        entries = [entry for recorded_at, entry in snapshot.ledger if at is None or recorded_at <= at]
    return rules.decide(entries, purpose=purpose_rules, channel=channel, at=moment)


def profile_consents(*, profile: Profile, at: datetime | None = None) -> dict:
    """The effective state of every purpose x channel, and the full history behind it."""
    subject = subject_of_profile(profile)
    moment = at or timezone.now()
    purposes = [p.as_rule() for p in Purpose.objects.all()]
    channels = list(Channel.objects.values_list("slug", flat=True))
    entries = rule_entries(subject=subject, known_at=at)
    state = rules.effective_state(entries, purposes=purposes, channels=channels, at=moment)
    history = (
        ledger_entries(subject=subject, known_at=at)
        .select_related("notice_version", "source")
        .order_by("effective_at", "id")
    )
    return {
        "profile": profile.pk,
        "at": moment,
        "state": [
            {"purpose": purpose, "channel": channel, **decision_as_dict(decision)}
            for (purpose, channel), decision in state.items()
        ],
        "history": [entry_as_dict(e) for e in history],
    }


def entry_as_dict(entry: ConsentEntry) -> dict:
    notice = entry.notice_version
    return {
        "id": entry.pk,
        "identifier": {"profile": str(entry.subject_profile_id)}
        if entry.subject_profile_id
        else {"type": entry.identifier_type, "value": entry.identifier_value},
        "purpose": entry.purpose_id,
        "channel": entry.channel_id,
        "decision": entry.decision,
        "legal_basis": entry.legal_basis,
        "notice_version": {
            "id": notice.pk,
            "notice": notice.notice,
            "version": notice.version,
            "language": notice.language,
            "text_sha256": notice.text_sha256,
        }
        if notice
        else None,
        "capture_method": entry.capture_method,
        "ip": entry.ip,
        "user_agent": entry.user_agent,
        "source": entry.source.slug if entry.source else None,
        "recorded_by": entry.recorded_by,
        "effective_at": entry.effective_at,
        "recorded_at": entry.recorded_at,
        "expires_at": entry.expires_at,
        "evidence": entry.evidence,
        "idempotency_key": entry.idempotency_key,
    }
