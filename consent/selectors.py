"""Reads of the consent app: the ledger entries that speak for a person, and the decisions derived from them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from django.db.models import Q
from django.utils import timezone

from profiles.models import Identity, Profile
from profiles.selectors import identifier_normalise, profile_get

from . import rules
from .models import Channel, ConsentEntry, Purpose, RestrictedProfile

RESTRICTED = "restricted"


class UnknownPurpose(ValueError):
    pass


class UnknownChannel(ValueError):
    pass


@dataclass(frozen=True)
class Subject:
    """Whom a question is about: a profile (with the ids and identifiers that speak for it), or an identifier
    no profile holds yet (consent may be recorded before the first record of a person arrives)."""

    profile_id: UUID | None
    profile_ids: tuple[UUID, ...]  # the profile and its merged-away tombstones
    identifiers: tuple[tuple[str, str], ...]


def subject_of_profile(profile: Profile) -> Subject:
    ids = (profile.pk, *Profile.objects.filter(merged_into_id=profile.pk).values_list("pk", flat=True))
    identifiers = tuple(Identity.objects.filter(profile_id=profile.pk).values_list("type", "value"))
    return Subject(profile_id=profile.pk, profile_ids=ids, identifiers=identifiers)


def subject_resolve(*, profile_id: str | None = None, identifier: dict | None = None) -> Subject | None:
    """The subject of a profile id (a merged-away id means its survivor) or of an identifier in any spelling.

    Raises ``UnknownIdentifierType`` / ``InvalidValue`` (from ``profiles.selectors``) for a bad identifier;
    returns None for an unknown profile id."""
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
    return {
        "allowed": decision.allowed,
        "rule": decision.rule,
        "explanation": decision.explanation,
        "reasons": [reason_as_dict(r) for r in decision.reasons],
    }


def consent_check(
    *, subject: Subject, purpose: str, channel: str, at: datetime | None = None
) -> rules.Decision:
    """Whether the subject may be processed for ``purpose`` on ``channel``, and which entries decided it.

    ``at`` asks about a past moment, as the ledger stood then (entries recorded later are not used)."""
    purpose_rules = purpose_rule(slug=purpose)
    channel_check(slug=channel)
    moment = at or timezone.now()
    if subject.profile_ids and RestrictedProfile.objects.filter(profile_id__in=subject.profile_ids).exists():
        return rules.Decision(
            allowed=False,
            rule=RESTRICTED,
            explanation="Processing of this person is restricted (a data-subject request) until lifted.",
        )
    entries = rule_entries(subject=subject, known_at=at)
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
