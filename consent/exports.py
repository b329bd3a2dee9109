"""The access / portability export: everything held about one person, as one machine-readable document."""

from __future__ import annotations

from django.forms.models import model_to_dict
from django.utils import timezone

from ingestion.models import InboundRecord
from profiles.models import Event, Identity, Profile, SourceRecord

from .erasure import subject_footprint
from .models import ConsentRejection, DataSubjectRequest, ProfileAccess
from .selectors import entry_as_dict, profile_consents

EXPORT_FORMAT = "cdp.subject-export/1"


def _rows(queryset, exclude: tuple[str, ...] = ()) -> list[dict]:
    return [model_to_dict(row, exclude=list(exclude)) | {"id": row.pk} for row in queryset]


def subject_export(*, request: DataSubjectRequest) -> dict:
    """Profile (and the tombstones merged into it), identities, source records with their raw payloads, the
    raw inbound payloads, events, record history, merges, resolution conflicts, the consent state and the
    full ledger history, rejected consent statements, and the log of staff reads of the profile. Found the
    same way erasure finds them, so an export shows what an erasure would delete (the access log is the
    company's record of its own staff and is kept)."""
    found = subject_footprint(
        profile_id=request.profile_id, identifiers=[tuple(key) for key in request.identifiers]
    )
    ids = list(found.profile_ids)
    profile = Profile.objects.filter(pk=request.profile_id).first() if request.profile_id else None
    records = list(
        SourceRecord.objects.filter(pk__in=list(found.record_ids)).select_related("source").order_by("pk")
    )
    payloads = dict(  # a record's raw payload: the inbound record of the version applied
        InboundRecord.objects.filter(
            pk__in=[r.inbound_seq for r in records if r.inbound_seq is not None]
        ).values_list("pk", "payload")
    )
    inbound = InboundRecord.objects.filter(pk__in=list(found.inbound_ids)).select_related("source")
    return {
        "format": EXPORT_FORMAT,
        "request": str(request.pk),
        "generated_at": timezone.now(),
        "profiles": _rows(Profile.objects.filter(pk__in=ids).order_by("created_at"), ("search_name",)),
        "identities": [
            {"type": kind, "value": value, "profile": profile_id}
            for kind, value, profile_id in Identity.objects.filter(profile_id__in=ids)
            .order_by("type", "value")
            .values_list("type", "value", "profile_id")
        ],
        "source_records": [
            model_to_dict(r, exclude=["content_hash", "inbound_seq"])
            | {
                "id": r.pk,
                "source": r.source.slug,
                "raw": payloads.get(r.inbound_seq) if r.deleted_at is None else None,
            }
            for r in records
        ],
        "inbound_payloads": [
            {
                "id": row.pk,
                "source": row.source.slug,
                "batch": row.batch_id,
                "operation": row.operation,
                "external_id": row.external_id,
                "status": row.status,
                "outcome": row.outcome,
                "error": row.error,
                "received_at": row.received_at,
                "payload": row.payload,
            }
            for row in inbound.order_by("pk")
        ],
        "events": _rows(Event.objects.filter(pk__in=list(found.event_ids)).order_by("timestamp", "pk")),
        "record_changes": _rows(found.record_changes().order_by("occurred_at", "pk")),
        "merges": _rows(found.merges().order_by("created_at", "pk")),
        "resolution_conflicts": _rows(found.conflicts().order_by("created_at", "pk")),
        "consent": {
            "state": profile_consents(profile=profile)["state"] if profile else [],
            "history": [
                entry_as_dict(e)
                for e in found.ledger()
                .select_related("notice_version", "source")
                .order_by("effective_at", "id")
            ],
            "rejected_statements": _rows(
                ConsentRejection.objects.filter(pk__in=list(found.rejection_ids)).order_by("pk")
            ),
        },
        # Who at the company read the profile (and the profiles merged into it), through which view, when.
        "access_log": [
            {"profile": profile_id, "user": username, "view": view, "accessed_at": accessed_at}
            for profile_id, username, view, accessed_at in ProfileAccess.objects.filter(profile_id__in=ids)
            .order_by("accessed_at", "id")
            .values_list("profile_id", "username", "view", "accessed_at")
        ],
    }
