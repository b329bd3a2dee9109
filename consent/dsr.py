"""Data-subject requests: open, verify, extend, reject, execute, lift. Each step is one transaction and one
``DsrEvent``; the admin and the API call these same functions.

Deadlines: GDPR art. 12(3), one month from receipt, extendable once by two further months with a reason;
CCPA 1798.130, 45 days, extendable once by 45 days.
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from cdp import memory
from cdp.auth import SourcePrincipal
from cdp.memory import memory_forget
from ingestion.models import InboundRecord
from profiles.models import Event, Identity, Profile, ProfileSplit, SourceRecord
from profiles.selectors import identifier_normalise, profile_get
from profiles.services.forget import person_traces_forget

from .erasure import Footprint, subject_footprint_lock
from .models import (
    ConsentRejection,
    DataSubjectRequest,
    DsrEvent,
    ProfileAccess,
    Purpose,
    RestrictedProfile,
    SuppressionEntry,
)
from .suppression import suppression_hash

Status = DataSubjectRequest.Status
Type = DataSubjectRequest.Type
MAX_IDENTIFIERS = 20


class DsrError(Exception):
    """A step not allowed in the request's state; the message says why (the API answers 409)."""


def add_months(moment: datetime, months: int) -> datetime:
    month = moment.month - 1 + months
    year, month = moment.year + month // 12, month % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def due_date(*, regime: str, received_at: datetime) -> datetime:
    if regime == DataSubjectRequest.Regime.CCPA:
        return received_at + timedelta(days=45)
    return add_months(received_at, 1)


def extended_due_date(*, regime: str, original_due_at: datetime) -> datetime:
    if regime == DataSubjectRequest.Regime.CCPA:
        return original_due_at + timedelta(days=45)
    return add_months(original_due_at, 2)


def _step(request: DataSubjectRequest, action: str, actor: str, to_status: str = "", **extra) -> None:
    DsrEvent.objects.create(
        request=request,
        action=action,
        from_status=request.status,
        to_status=to_status or request.status,
        actor=actor,
        note=extra.pop("note", ""),
        details=extra.pop("details", {}),
    )
    if to_status:
        request.status = to_status


def _locked(request: DataSubjectRequest) -> DataSubjectRequest:
    return DataSubjectRequest.objects.select_for_update().get(pk=request.pk)


def _resolve(identifiers: list[list[str]]) -> UUID | None:
    owners = set()
    for kind, value in identifiers:
        owner = Identity.objects.filter(type=kind, value=value).values_list("profile_id", flat=True).first()
        profile = profile_get(profile_id=owner) if owner else None
        if profile is not None:
            owners.add(profile.pk)
    if len(owners) > 1:
        raise DsrError("the identifiers belong to different profiles; open one request per profile")
    return owners.pop() if owners else None


@transaction.atomic
def dsr_open(
    *,
    type: str,
    identifiers: list[dict],
    actor: str,
    regime: str = DataSubjectRequest.Regime.GDPR,
    received_at: datetime | None = None,
) -> DataSubjectRequest:
    """Record a request as received and start its legal clock. Identifiers are normalised here (raises
    ``UnknownIdentifierType`` / ``InvalidValue``) and resolved to the profile holding them, if any."""
    if type not in Type.values:
        raise ValueError(f"unknown request type {type!r}")
    if regime not in DataSubjectRequest.Regime.values:
        raise ValueError(f"unknown regime {regime!r}")
    if not identifiers or len(identifiers) > MAX_IDENTIFIERS:
        raise ValueError(f"between 1 and {MAX_IDENTIFIERS} identifiers")
    normalised = []
    for identifier in identifiers:
        value = identifier_normalise(
            type=identifier["type"], value=identifier["value"], region=identifier.get("region")
        )
        if [identifier["type"], value] not in normalised:
            normalised.append([identifier["type"], value])
    received_at = received_at or timezone.now()
    due_at = due_date(regime=regime, received_at=received_at)
    request = DataSubjectRequest.objects.create(
        type=type,
        regime=regime,
        identifiers=normalised,
        profile_id=_resolve(normalised),
        received_at=received_at,
        due_at=due_at,
        original_due_at=due_at,
        created_by=actor,
    )
    _step(request, "opened", actor, details={"profile_found": request.profile_id is not None})
    return request


@transaction.atomic
def dsr_verify(*, request: DataSubjectRequest, actor: str, method: str) -> DataSubjectRequest:
    """Record that the requester was shown to be the person (how: e.g. "email link", "ID document")."""
    request = _locked(request)
    if request.status != Status.RECEIVED:
        raise DsrError(f"only a received request is verified; this one is {request.status}")
    if not method.strip():
        raise ValueError("say how the identity was verified")
    request.verified_at, request.verified_by, request.verification_method = timezone.now(), actor, method
    _step(request, "verified", actor, Status.VERIFIED, note=method)
    request.save()
    return request


@transaction.atomic
def dsr_extend(*, request: DataSubjectRequest, actor: str, reason: str) -> DataSubjectRequest:
    """Extend the deadline once (GDPR by two months, CCPA by 45 days); the law requires a reason."""
    request = _locked(request)
    if not request.is_open:
        raise DsrError(f"a {request.status} request has no deadline to extend")
    if request.extended_at is not None:
        raise DsrError("the deadline was already extended once")
    if not reason.strip():
        raise ValueError("an extension needs a reason")
    request.due_at = extended_due_date(regime=request.regime, original_due_at=request.original_due_at)
    request.extended_at, request.extension_reason = timezone.now(), reason
    _step(request, "extended", actor, note=reason, details={"due_at": request.due_at.isoformat()})
    request.save()
    return request


@transaction.atomic
def dsr_reject(*, request: DataSubjectRequest, actor: str, reason: str) -> DataSubjectRequest:
    request = _locked(request)
    if not request.is_open:
        raise DsrError(f"the request is already {request.status}")
    if not reason.strip():
        raise ValueError("a rejection needs a reason")
    request.completed_at = timezone.now()
    _step(request, "rejected", actor, Status.REJECTED, note=reason)
    request.save()
    return request


@transaction.atomic
def dsr_execute(*, request: DataSubjectRequest, actor: str, note: str = "") -> DataSubjectRequest:
    """Carry out a verified request: erase, restrict, object, or (access, portability) make the export
    available. The profile is resolved again now: it may have been merged since the request came in."""
    request = _locked(request)
    if request.status != Status.VERIFIED:
        raise DsrError(f"only a verified request is executed; this one is {request.status}")
    _step(request, "started", actor, Status.IN_PROGRESS)
    current = profile_get(profile_id=request.profile_id) if request.profile_id else None
    request.profile_id = current.pk if current else _resolve(request.identifiers)
    if request.type == Type.ERASURE:
        outcome = _erase(request)
    elif request.type == Type.RESTRICTION:
        outcome = _restrict(request)
    elif request.type == Type.OBJECTION:
        outcome = _object(request, actor)
    elif request.type == Type.RECTIFICATION:
        outcome = {"note": "corrected in the source systems; the next sync updates the profile"}
    else:
        outcome = {"export": "available at /api/v1/dsr/<id>/export"}
    request.outcome, request.completed_at = outcome, timezone.now()
    _step(request, "executed", actor, Status.COMPLETED, note=note, details=outcome)
    request.save()
    return request


@transaction.atomic
def dsr_lift(*, request: DataSubjectRequest, actor: str, note: str = "") -> DataSubjectRequest:
    """Lift a restriction of processing: the profile is processed and exported again."""
    request = _locked(request)
    if request.type != Type.RESTRICTION or request.status != Status.COMPLETED:
        raise DsrError("only an executed restriction request is lifted")
    if request.lifted_at is not None:
        raise DsrError("the restriction was already lifted")
    removed, _ = RestrictedProfile.objects.filter(request=request).delete()
    request.lifted_at = timezone.now()
    _step(request, "lifted", actor, note=note, details={"profiles": removed})
    request.save()
    return request


def _restrict(request: DataSubjectRequest) -> dict:
    if request.profile_id is None:
        return {"restricted": 0, "note": "no profile holds these identifiers"}
    RestrictedProfile.objects.get_or_create(profile_id=request.profile_id, defaults={"request": request})
    return {"restricted": 1}


def _object(request: DataSubjectRequest, actor: str) -> dict:
    from .services import consent_record

    purpose = Purpose.objects.filter(direct_marketing=True).order_by("slug").first()
    if purpose is None:
        return {"recorded": 0, "note": "no direct-marketing purpose is configured"}
    subjects = (
        [{"profile": str(request.profile_id)}]
        if request.profile_id
        else [{"identifier": {"type": kind, "value": value}} for kind, value in request.identifiers]
    )
    receipt = consent_record(
        consents=[
            {
                **subject,
                "purpose": purpose.slug,
                "decision": "objection_direct_marketing",
                "capture_method": "agent",
                "idempotency_key": f"dsr:{request.pk}:{index}",
                "evidence": {"data_subject_request": str(request.pk)},
            }
            for index, subject in enumerate(subjects)
        ],
        source=None,
        recorded_by=f"dsr:{request.pk}",
    )
    return {"recorded": len(receipt.recorded), "rejected": len(receipt.rejected)}


def restricted_profile_ids() -> set[UUID]:
    """Profiles under a restriction of processing: exports and consent answers leave them out."""
    return set(RestrictedProfile.objects.values_list("profile_id", flat=True))


def _erase(request: DataSubjectRequest) -> dict:
    """Delete every row about the person, keep keyed hashes of their identifiers and of their national
    identifiers (the ``national_id`` attribute of their records, which identifies them as well as an
    identifier does: a later record carrying only it would bring them back). See ``consent.erasure``."""
    # This process forgets its memos of the person's values once the rows are gone; the others when they see
    # this request completed (``memory_forget_if_erased``).
    transaction.on_commit(memory_forget)
    # Read under the resolver's locks on every identifier key of the person, held to the end of the
    # transaction: a record of the person being resolved right now finishes first (and is erased here) or waits
    # for the erasure (and is then suppressed).
    request.profile_id, found = subject_footprint_lock(
        profile_id=request.profile_id, identifiers=[tuple(key) for key in request.identifiers]
    )
    ids = list(found.profile_ids)
    traces = {
        "attributes": list(
            SourceRecord.objects.filter(pk__in=list(found.record_ids)).values_list("attributes", flat=True)
        ),
        "search_names": list(Profile.objects.filter(pk__in=ids).values_list("search_name", flat=True)),
    }
    counts = {
        "events": Event.objects.filter(pk__in=list(found.event_ids)).delete()[0],
        "conflicts": found.conflicts().delete()[0],
        "record_changes": found.record_changes().delete()[0],
        "merges": found.merges().delete()[0],
    }
    counts["source_records"] = SourceRecord.objects.filter(pk__in=list(found.record_ids)).delete()[0]
    counts["identities"] = Identity.objects.filter(profile_id__in=ids).delete()[0]
    counts["splits"] = ProfileSplit.objects.filter(
        Q(profile_id__in=ids) | Q(new_profile_id__in=ids)
    ).delete()[0]
    Profile.objects.filter(pk__in=ids).update(merged_into=None)
    counts["profiles"] = Profile.objects.filter(pk__in=ids).delete()[0]
    person_traces_forget(**traces)
    counts["inbound_records"] = InboundRecord.objects.filter(pk__in=list(found.inbound_ids)).delete()[0]
    counts["consent_entries"] = found.ledger().erase()
    counts["consent_rejections"] = ConsentRejection.objects.filter(pk__in=list(found.rejection_ids)).delete()[
        0
    ]
    RestrictedProfile.objects.filter(profile_id__in=ids).delete()
    _admin_log_forget(found)

    hashed = {}
    for kind, value in sorted(found.suppression_keys()):
        key_hash = suppression_hash(kind, value)
        hashed[(kind, value)] = key_hash
        SuppressionEntry.objects.get_or_create(
            key_hash=key_hash, defaults={"identifier_type": kind, "request": request}
        )
    counts["suppressed_identifiers"] = len(hashed)
    # The request log keeps no personal data: this request's and the person's other requests' identifiers
    # become their hashes too.
    values = {value for _, value in found.identifiers}
    for other in DataSubjectRequest.objects.exclude(pk=request.pk).select_for_update():
        if (other.profile_id in found.profile_ids) or any(value in values for _, value in other.identifiers):
            other.identifiers = _hashed(other.identifiers)
            other.save(update_fields=["identifiers"])
    request.identifiers = _hashed(request.identifiers)
    return counts


def latest_erasure() -> datetime | None:
    """When the latest erasure completed."""
    return DataSubjectRequest.objects.filter(type=Type.ERASURE, status=Status.COMPLETED).aggregate(
        latest=Max("completed_at")
    )["latest"]


def memory_forget_if_erased(**_signal) -> None:
    """Receiver of request_started and task_prerun: forget this process's memos of personal data when an
    erasure completed since it last looked (``cdp.memory``)."""
    memory.memory_forget_if_erased(latest_erasure, every=settings.CDP_MEMORY_CHECK_SECONDS)


def _hashed(identifiers: list) -> list:
    return [
        [kind, value if value.startswith("hmac:") else f"hmac:{suppression_hash(kind, value)}"]
        for kind, value in identifiers
    ]


def _admin_log_forget(found: Footprint) -> None:
    """The admin's change history names objects by their __str__ (a person's name): forget the erased ones."""
    from django.contrib.admin.models import LogEntry
    from django.contrib.contenttypes.models import ContentType

    for model, ids in (
        (Profile, found.profile_ids),
        (SourceRecord, found.record_ids),
        (Event, found.event_ids),
        (InboundRecord, found.inbound_ids),
    ):
        if ids:
            LogEntry.objects.filter(
                content_type=ContentType.objects.get_for_model(model), object_id__in=[str(i) for i in ids]
            ).delete()


def profile_restriction_refusal(*, request, profile, view: str) -> str | None:
    """Hook of ``CDP_PROFILE_READ_HOOKS``: a source system (a key) may not read a restricted profile, since
    handing the data to another system is processing. Staff still may (they handle the request); the person's
    own access export is a data-subject request and goes through ``consent.exports``."""
    if not isinstance(getattr(request, "user", None), SourcePrincipal):
        return None
    if RestrictedProfile.objects.filter(profile_id__in=profile_family_ids(profile.pk)).exists():
        return "Processing of this person is restricted (a data-subject request) until the restriction is lifted."
    return None


def profiles_unrestricted(*, request, queryset):
    """Hook of ``CDP_PROFILE_LIST_FILTERS``: lists read by source systems leave restricted profiles out (also
    when the restriction was placed on a profile that was merged into another since)."""
    if not isinstance(getattr(request, "user", None), SourcePrincipal):
        return queryset
    restricted = RestrictedProfile.objects.values("profile_id")
    survivors = Profile.objects.filter(pk__in=restricted, merged_into__isnull=False).values("merged_into_id")
    return queryset.exclude(pk__in=restricted).exclude(pk__in=survivors)


# --- The access log ----------------------------------------------------------------------------------------


def profile_family_ids(profile_id: UUID) -> list[UUID]:
    """The profile and the tombstones merged into it (merges re-point older tombstones to the survivor)."""
    return [profile_id, *Profile.objects.filter(merged_into_id=profile_id).values_list("pk", flat=True)]


def profile_accesses(*, profile: Profile):
    """Every recorded read of the person: of the profile and of the profiles merged into it."""
    return ProfileAccess.objects.filter(profile_id__in=profile_family_ids(profile.pk)).order_by(
        "-accessed_at", "-id"
    )
