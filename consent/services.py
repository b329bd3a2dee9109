"""Writes of the consent app: recording statements in the append-only ledger."""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from cdp.auth import SourcePrincipal
from cdp.parsers import text_problem
from ingestion.models import IdentifierType, Source
from ingestion.normalise import InvalidValue, normalise_identifier, parse_timestamp
from profiles.models import Identity
from profiles.selectors import profile_get

from . import rules
from .models import (
    Channel,
    ConsentEntry,
    ConsentRejection,
    NoticeVersion,
    ProfileAccess,
    Purpose,
    SuppressionEntry,
)
from .suppression import suppressed_hashes, suppression_hash, suppression_keys
from .tcf import TcfInvalid, tcf_decode

MAX_CONSENTS_PER_REQUEST = 1000
# A statement dated ahead of the ledger's clock would beat statements made before that time (a later grant
# lifts a denial): only clock skew is tolerated.
MAX_CLOCK_AHEAD = timedelta(minutes=5)
MAX_TEXT = 1000
SUPPRESSED_REASON = (
    "this identifier was erased at the person's request (it is on the suppression list): nothing is recorded "
    "for it, and the statement is not kept"
)
ITEM_FIELDS = frozenset(
    {
        "identifier",
        "profile",
        "purpose",
        "channel",
        "decision",
        "effective_at",
        "expires_at",
        "legal_basis",
        "notice_version",
        "capture_method",
        "ip",
        "user_agent",
        "idempotency_key",
        "evidence",
        "tcf_string",
    }
)


@dataclass(frozen=True)
class ItemError(Exception):
    field: str
    reason: str


@dataclass
class ConsentReceipt:
    recorded: list[dict] = field(default_factory=list)  # index, id, status (created / duplicate)
    rejected: list[dict] = field(default_factory=list)  # index, field, reason


@dataclass
class _Vocabulary:
    """What the statements of one request are checked against, loaded once per request."""

    purposes: set[str]
    channels: set[str]
    normalisers: dict[str, str]
    region: str
    now: datetime


def _vocabulary(source: Source | None) -> _Vocabulary:
    return _Vocabulary(
        purposes=set(Purpose.objects.values_list("slug", flat=True)),
        channels=set(Channel.objects.values_list("slug", flat=True)),
        normalisers=dict(IdentifierType.objects.values_list("name", "normaliser")),
        region=source.default_region if source else settings.CDP_DEFAULT_PHONE_REGION,
        now=timezone.now(),
    )


def _text(raw: dict, name: str, *, required: bool = False, max_length: int = MAX_TEXT) -> str:
    value = raw.get(name)
    if value is None or value == "":
        if required:
            raise ItemError(name, "required")
        return ""
    if not isinstance(value, str):
        raise ItemError(name, "must be a string")
    if len(value) > max_length:
        raise ItemError(name, f"longer than {max_length} characters")
    if problem := text_problem(value):
        raise ItemError(name, problem)
    return value.strip()


def _time(raw: dict, name: str, now: datetime) -> datetime | None:
    if raw.get(name) is None:
        return None
    try:
        value = parse_timestamp(raw[name])
    except InvalidValue as exc:
        raise ItemError(name, str(exc)) from None
    return value


def _subject(raw: dict, vocab: _Vocabulary) -> dict:
    identifier, profile = raw.get("identifier"), raw.get("profile")
    if (identifier is None) == (profile is None):
        raise ItemError(
            "identifier", 'give exactly one of "identifier" {"type", "value"} or "profile" (an id)'
        )
    if profile is not None:
        found = profile_get(profile_id=profile) if isinstance(profile, str) else None
        if found is None:
            raise ItemError("profile", "no profile has this id")
        return {"subject_profile_id": found.pk}
    if not isinstance(identifier, dict):
        raise ItemError("identifier", 'must be an object {"type": "email", "value": "..."}')
    unknown = sorted(set(identifier) - {"type", "value", "region"})
    if unknown:
        raise ItemError(f"identifier.{unknown[0]}", "unknown field; an identifier has type, value, region")
    kind = identifier.get("type")
    if not isinstance(kind, str) or kind not in vocab.normalisers:
        raise ItemError(
            "identifier.type", f"unknown identifier type {kind!r}; declare it in the identifier rules"
        )
    region = identifier.get("region") or vocab.region
    if not isinstance(region, str) or len(region) != 2:
        raise ItemError("identifier.region", "a two-letter country code, e.g. GB")
    try:
        value = normalise_identifier(vocab.normalisers[kind], identifier.get("value"), region)
    except InvalidValue as exc:
        raise ItemError("identifier.value", str(exc)) from None
    return {"identifier_type": kind, "identifier_value": value}


def _notice(raw: dict) -> NoticeVersion | None:
    given = raw.get("notice_version")
    if given is None:
        return None
    if isinstance(given, int) and not isinstance(given, bool):
        notice = NoticeVersion.objects.filter(pk=given).first()
    elif isinstance(given, dict) and all(isinstance(given.get(k), str) for k in ("notice", "version")):
        notices = NoticeVersion.objects.filter(notice=given["notice"], version=given["version"])
        if isinstance(given.get("language"), str):
            notices = notices.filter(language=given["language"])
        notice = notices.order_by("pk").first()
    else:
        raise ItemError("notice_version", 'an id, or {"notice": ..., "version": ..., "language": ...}')
    if notice is None:
        raise ItemError("notice_version", "no such notice version; record its text first (admin)")
    return notice


def _entry(raw: object, vocab: _Vocabulary) -> dict:
    """Validate one statement and bring it into the ledger's form, or raise ``ItemError``."""
    if not isinstance(raw, dict):
        raise ItemError("", "a consent must be a JSON object")
    unknown = sorted(set(raw) - ITEM_FIELDS)
    if unknown:
        raise ItemError(unknown[0], f"unknown field; a consent has only {', '.join(sorted(ITEM_FIELDS))}")
    values = _subject(raw, vocab)
    purpose = _text(raw, "purpose", required=True, max_length=50)
    if purpose not in vocab.purposes:
        raise ItemError("purpose", f"unknown purpose {purpose!r}; known: {', '.join(sorted(vocab.purposes))}")
    channel = _text(raw, "channel", max_length=50) or None
    if channel is not None and channel not in vocab.channels:
        raise ItemError("channel", f"unknown channel {channel!r}; known: {', '.join(sorted(vocab.channels))}")
    decision = _text(raw, "decision", required=True, max_length=50)
    if decision not in rules.DECISIONS:
        raise ItemError("decision", f"one of {', '.join(rules.DECISIONS)}")
    effective_at = _time(raw, "effective_at", vocab.now) or vocab.now
    if effective_at > vocab.now + MAX_CLOCK_AHEAD:
        raise ItemError("effective_at", "in the future; a statement takes effect when it is made")
    expires_at = _time(raw, "expires_at", vocab.now)
    if expires_at is not None and expires_at <= effective_at:
        raise ItemError("expires_at", "must be after effective_at")
    legal_basis = _text(raw, "legal_basis", max_length=30)
    if legal_basis and legal_basis not in ConsentEntry.LegalBasis.values:
        raise ItemError("legal_basis", f"one of {', '.join(ConsentEntry.LegalBasis.values)}")
    if decision == rules.GRANTED and not legal_basis:
        legal_basis = ConsentEntry.LegalBasis.CONSENT
    evidence = raw.get("evidence") or {}
    if not isinstance(evidence, dict):
        raise ItemError("evidence", "must be a JSON object")
    evidence = dict(evidence)
    capture_method = _text(raw, "capture_method", max_length=20)
    if raw.get("tcf_string") is not None:
        try:
            evidence["tcf"] = tcf_decode(raw["tcf_string"], now=vocab.now).evidence
        except TcfInvalid as exc:
            raise ItemError("tcf_string", f"invalid TCF v2.2 string: {exc}") from None
        capture_method = capture_method or ConsentEntry.CaptureMethod.TCF
    if not capture_method:
        raise ItemError("capture_method", f"required: one of {', '.join(ConsentEntry.CaptureMethod.values)}")
    if capture_method not in ConsentEntry.CaptureMethod.values or capture_method == "system":
        raise ItemError("capture_method", f"one of {', '.join(ConsentEntry.CaptureMethod.values[:-1])}")
    ip = _text(raw, "ip", max_length=45)
    if ip:
        try:
            ip = str(ipaddress.ip_address(ip))
        except ValueError:
            raise ItemError("ip", "not an IPv4 or IPv6 address") from None
    notice = _notice(raw)
    return {
        **values,
        "purpose_id": purpose,
        "channel_id": channel,
        "decision": decision,
        "legal_basis": legal_basis,
        "notice_version": notice,
        "capture_method": capture_method,
        "ip": ip or None,
        "user_agent": _text(raw, "user_agent"),
        "effective_at": effective_at,
        "expires_at": expires_at,
        "evidence": evidence,
        "idempotency_key": _text(raw, "idempotency_key", max_length=200),
    }


def _digest(*parts: object) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _content_hash(values: dict, *, time_given: bool) -> str:
    """What makes two statements the same. A time the sender did not give (it defaults to the receipt
    time) is left out when an idempotency key names the statement, so a retry is a duplicate."""
    notice = values["notice_version"]
    with_time = time_given or not values["idempotency_key"]
    return _digest(
        "content",
        values.get("identifier_type", ""),
        values.get("identifier_value", ""),
        values.get("subject_profile_id"),
        values["purpose_id"],
        values["channel_id"],
        values["decision"],
        values["effective_at"].isoformat() if with_time else None,
        values["expires_at"].isoformat() if values["expires_at"] else None,
        values["legal_basis"],
        notice.pk if notice else None,
        values["capture_method"],
        values["ip"],
        values["user_agent"],
        values["evidence"],
    )


def consent_record(
    *, consents: list, source: Source | None, recorded_by: str, received_at: datetime | None = None
) -> ConsentReceipt:
    """Record statements in the ledger. Partial acceptance: valid statements are recorded, the others are
    kept in ``ConsentRejection`` with the field and the reason.

    Idempotent: a statement is stored once per caller and idempotency key or, without a key, per content
    (the same statement with the same ``effective_at`` sent twice is one entry). A key reused for a different
    statement is refused.
    """
    for attempt in range(3):
        try:
            return _consent_record(consents, source, recorded_by, received_at or timezone.now())
        except IntegrityError:
            # Another request recorded one of these keys between our check and our insert: replaying
            # finds it and answers "duplicate".
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@transaction.atomic
def _consent_record(consents: list, source: Source | None, recorded_by: str, now: datetime) -> ConsentReceipt:
    vocab = _vocabulary(source)
    vocab.now = now
    caller = f"source:{source.slug}" if source else "staff"
    receipt = ConsentReceipt()
    pending: list[tuple[int, dict]] = []
    rejections: list[ConsentRejection] = []

    def reject(index: int, raw: object, field_name: str, reason: str) -> None:
        receipt.rejected.append({"index": index, "field": field_name, "reason": reason})
        rejections.append(
            ConsentRejection(
                received_at=now,
                source=source,
                recorded_by=recorded_by,
                index=index,
                payload=raw,
                field=field_name,
                reason=reason,
            )
        )

    validated: list[tuple[int, dict]] = []
    for index, raw in enumerate(consents):
        try:
            validated.append((index, _entry(raw, vocab)))
        except ItemError as exc:
            reject(index, raw, exc.field, exc.reason)
    erased = _suppressed_subjects(validated, now)
    for index, values in validated:
        if index in erased:
            # Kept without the statement: it names someone who asked to be forgotten.
            reject(index, None, "identifier", SUPPRESSED_REASON)
            continue
        raw = consents[index]
        values["content_hash"] = _content_hash(values, time_given=raw.get("effective_at") is not None)
        key = values["idempotency_key"]
        values["dedupe_key"] = _digest("key", caller, key) if key else values["content_hash"]
        pending.append((index, values))

    existing = {
        row["dedupe_key"]: row
        for row in ConsentEntry.objects.filter(dedupe_key__in=[v["dedupe_key"] for _, v in pending]).values(
            "id", "dedupe_key", "content_hash"
        )
    }
    owners = _identity_owners(
        {(v["identifier_type"], v["identifier_value"]) for _, v in pending if "identifier_type" in v}
    )
    new: list[tuple[int, ConsentEntry]] = []
    new_by_key: dict[str, ConsentEntry] = {}
    repeats: list[tuple[int, ConsentEntry]] = []  # the same statement twice in one request
    for index, values in pending:
        seen = existing.get(values["dedupe_key"])
        first = new_by_key.get(values["dedupe_key"])
        known_hash = seen["content_hash"] if seen else first.content_hash if first else None
        if known_hash is not None and known_hash != values["content_hash"]:
            reject(
                index,
                consents[index],
                "idempotency_key",
                "already used for a different statement; a new statement needs a new key",
            )
        elif seen is not None:
            receipt.recorded.append({"index": index, "id": seen["id"], "status": "duplicate"})
        elif first is not None:
            repeats.append((index, first))
        else:
            owner = owners.get((values.get("identifier_type"), values.get("identifier_value")))
            entry = ConsentEntry(
                **values,
                recorded_for_profile_id=owner,
                source=source,
                recorded_by=recorded_by,
                recorded_at=now,
            )
            new.append((index, entry))
            new_by_key[values["dedupe_key"]] = entry

    ConsentEntry.objects.bulk_create([entry for _, entry in new], batch_size=500)
    if any(entry.pk is None for _, entry in new):  # backends that do not return ids
        ids = dict(
            ConsentEntry.objects.filter(dedupe_key__in=[e.dedupe_key for _, e in new]).values_list(
                "dedupe_key", "id"
            )
        )
        for _, entry in new:
            entry.pk = ids[entry.dedupe_key]
    receipt.recorded.extend({"index": index, "id": entry.pk, "status": "created"} for index, entry in new)
    receipt.recorded.extend(
        {"index": index, "id": entry.pk, "status": "duplicate"} for index, entry in repeats
    )
    ConsentRejection.objects.bulk_create(rejections, batch_size=500)
    receipt.recorded.sort(key=lambda row: row["index"])
    receipt.rejected.sort(key=lambda row: row["index"])
    return receipt


def _suppressed_subjects(validated: list[tuple[int, dict]], now: datetime) -> set[int]:
    """The positions of statements given for an erased identifier (any spelling that normalises the same;
    an identifier of a type named ``national_id`` also as the erased national identifier it spells); each
    one counts a hit on each suppression entry it matched. One query when none is suppressed."""
    keys = {
        index: suppression_keys([(values["identifier_type"], values["identifier_value"])])
        for index, values in validated
        if values.get("identifier_type")
    }
    hits = suppressed_hashes(set().union(*keys.values())) if keys else {}
    if not hits:
        return set()
    counts: Counter[int] = Counter()
    erased = set()
    for index, subject_keys in keys.items():
        matched = {hits[h] for h in (suppression_hash(*key) for key in subject_keys) if h in hits}
        if matched:
            erased.add(index)
            counts.update(matched)
    for entry_id, count in sorted(counts.items()):
        SuppressionEntry.objects.filter(pk=entry_id).update(hits=F("hits") + count, last_hit_at=now)
    return erased


def _identity_owners(keys: set[tuple[str, str]]) -> dict[tuple[str, str], UUID]:
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


@transaction.atomic
def consent_profile_split(*, profile_ids: list[UUID], actor: str = "system") -> int:
    """After an unmerge: every restriction in force for any of the halves stays with all of them.

    Restrictions given for an identifier follow that identifier to its half by themselves; restrictions
    recorded on the profile id (or reaching it through an identifier the profile held when they were
    recorded) would stay with one half only. Each one in force is copied to every half, as an entry given for
    that half's id, with its original effective time and expiry and a pointer to the original. The unmerge
    service of ``profiles`` calls this through the pipeline wiring (it may not import consent); it works on
    the halves as they are after the split and is idempotent. Returns the number of entries written.
    """
    from .selectors import rule_entries, subject_of_profile

    profiles = [profile_get(profile_id=pk) for pk in profile_ids]
    halves = {p.pk: p for p in profiles if p is not None}
    purposes = [p.as_rule() for p in Purpose.objects.all()]
    channels = list(Channel.objects.values_list("slug", flat=True))
    now = timezone.now()
    restrictions: dict[int, rules.Entry] = {}
    for profile in halves.values():
        entries = rule_entries(subject=subject_of_profile(profile))
        for entry in rules.restrictions_in_force(entries, purposes=purposes, channels=channels, at=now):
            restrictions[entry.id] = entry
    found = ConsentEntry.objects.in_bulk(list(restrictions))
    # A copy made by an earlier split stands for its original: copy the original, once per half.
    root_ids = {
        entry.evidence.get("copied_from", entry.pk)
        if entry.capture_method == ConsentEntry.CaptureMethod.SYSTEM
        else entry.pk
        for entry in found.values()
    }
    originals = ConsentEntry.objects.in_bulk(list(root_ids))
    copies = []
    for profile_id in halves:
        for original in originals.values():
            if original.subject_profile_id == profile_id:
                continue
            key = _digest("split-copy", original.pk, str(profile_id))
            copies.append(
                ConsentEntry(
                    subject_profile_id=profile_id,
                    purpose_id=original.purpose_id,
                    channel_id=original.channel_id,
                    decision=original.decision,
                    legal_basis=original.legal_basis,
                    notice_version_id=original.notice_version_id,
                    capture_method=ConsentEntry.CaptureMethod.SYSTEM,
                    source_id=original.source_id,
                    recorded_by=actor,
                    effective_at=original.effective_at,
                    expires_at=original.expires_at,
                    recorded_at=now,
                    evidence={
                        "copied_from": original.pk,
                        "reason": "profile split",
                        "subject": original.subject,
                    },
                    dedupe_key=key,
                    content_hash=key,
                )
            )
    existing = set(
        ConsentEntry.objects.filter(dedupe_key__in=[c.dedupe_key for c in copies]).values_list(
            "dedupe_key", flat=True
        )
    )
    copies = [c for c in copies if c.dedupe_key not in existing]
    ConsentEntry.objects.bulk_create(copies)
    return len(copies)


def consent_entries_append(*, entries: list[ConsentEntry]) -> list[ConsentEntry]:
    """Append statements that were derived, not typed in (preferences on tracked events, the GPC signal):
    each one already carries its ``dedupe_key``, so an input processed twice appends nothing the second
    time. Fills in the profile each identifier belongs to now; returns the entries actually added.

    Must run inside a transaction (the pipeline's). A racing worker inserting the same key makes the unique
    constraint raise ``IntegrityError``; the pipeline retries, and the retry finds the entry."""
    if not entries:
        return []
    unique = list({entry.dedupe_key: entry for entry in entries}.values())
    existing = set(
        ConsentEntry.objects.filter(dedupe_key__in=[e.dedupe_key for e in unique]).values_list(
            "dedupe_key", flat=True
        )
    )
    new = [entry for entry in unique if entry.dedupe_key not in existing]
    owners = _identity_owners({(e.identifier_type, e.identifier_value) for e in new if e.identifier_type})
    for entry in new:
        entry.recorded_for_profile_id = owners.get((entry.identifier_type, entry.identifier_value))
        entry.content_hash = entry.content_hash or entry.dedupe_key
    ConsentEntry.objects.bulk_create(new, batch_size=500)
    return new


def derived_dedupe_key(*parts: object) -> str:
    """The dedupe key of a derived statement: what it was derived from (the message, the identifier, the
    purpose and channel), never when it was processed."""
    return _digest("derived", *parts)


def profile_access_record(*, request, profile, view: str) -> None:
    """Hook of ``CDP_PROFILE_READ_HOOKS``: write who read which profile through which view. One INSERT; reads
    by source systems (keys) are not staff reads and are not logged here."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or isinstance(user, SourcePrincipal):
        return None
    ProfileAccess.objects.create(
        profile_id=profile.pk, user_id=user.pk, username=user.get_username()[:150], view=view[:100]
    )
    return None


def consent_vocabulary(*, source: Source | None) -> _Vocabulary:
    """What statements are checked against (purposes, channels, identifier rules), loaded once for many."""
    return _vocabulary(source)


def consent_statement_validate(*, raw: object, vocabulary: _Vocabulary) -> dict:
    """One statement checked with the rules of ``POST /api/v1/consents``: the ledger's values, or
    ``ItemError`` with the field and the reason."""
    return _entry(raw, vocabulary)
