"""The data-subject request API, for privacy officers: staff holding the request model's permissions."""

from __future__ import annotations

import json
from datetime import timedelta

from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpResponse
from django.urls import path
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp.api import ErrorSerializer, field_error
from cdp.permissions import IsStaffUser
from ingestion.normalise import InvalidValue
from profiles.selectors import UnknownIdentifierType, profile_get

from .dsr import DsrError, dsr_execute, dsr_extend, dsr_lift, dsr_open, dsr_reject, dsr_verify
from .exports import subject_export
from .models import DataSubjectRequest
from .services import profile_access_record

ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Malformed input; names the field and the reason."),
    401: OpenApiResponse(ErrorSerializer, description="No or invalid credentials."),
    403: OpenApiResponse(ErrorSerializer, description="Not staff, or without the permission."),
    404: OpenApiResponse(ErrorSerializer, description="No request with this id."),
}
EXPORTABLE = (DataSubjectRequest.Type.ACCESS, DataSubjectRequest.Type.PORTABILITY)
_STATUS = f"({'|'.join(DataSubjectRequest.Status.values)})"
_STATUSES_PATTERN = f"^(open|{_STATUS}(,{_STATUS})*)$"


class PrivacyOfficer(BasePermission):
    """Staff with the view's permission on data-subject requests (``consent.*_datasubjectrequest``)."""

    message = "Data-subject requests are for privacy officers (staff with the request permissions)."

    def has_permission(self, request, view) -> bool:
        needed = view.permission_for(request)
        return IsStaffUser().has_permission(request, view) and request.user.has_perm(needed)


def _actor(request) -> str:
    return f"staff:{request.user.get_username()}"


def dsr_as_dict(dsr: DataSubjectRequest, *, with_events: bool = False) -> dict:
    data = {
        "id": dsr.pk,
        "type": dsr.type,
        "regime": dsr.regime,
        "status": dsr.status,
        "identifiers": [{"type": kind, "value": value} for kind, value in dsr.identifiers],
        "profile": dsr.profile_id,
        "received_at": dsr.received_at,
        "due_at": dsr.due_at,
        "original_due_at": dsr.original_due_at,
        "overdue": dsr.is_open and dsr.due_at < timezone.now(),
        "extended_at": dsr.extended_at,
        "extension_reason": dsr.extension_reason,
        "verification": {"at": dsr.verified_at, "by": dsr.verified_by, "method": dsr.verification_method},
        "completed_at": dsr.completed_at,
        "lifted_at": dsr.lifted_at,
        "outcome": dsr.outcome,
    }
    if with_events:
        data["events"] = [
            {
                "action": e.action,
                "from_status": e.from_status,
                "to_status": e.to_status,
                "actor": e.actor,
                "note": e.note,
                "details": e.details,
                "at": e.at,
            }
            for e in dsr.events.all()
        ]
    return data


def _get(dsr_id) -> DataSubjectRequest:
    dsr = DataSubjectRequest.objects.filter(pk=dsr_id).first()
    if dsr is None:
        raise Http404
    return dsr


def _export_ready(dsr: DataSubjectRequest) -> bool:
    return dsr.type in EXPORTABLE and dsr.status == DataSubjectRequest.Status.COMPLETED


class DsrIn(serializers.Serializer):
    type = serializers.ChoiceField(choices=DataSubjectRequest.Type.choices)
    regime = serializers.ChoiceField(choices=DataSubjectRequest.Regime.choices, required=False)
    identifier = serializers.DictField(required=False, help_text='{"type": "email", "value": "..."}')
    identifiers = serializers.ListField(child=serializers.DictField(), required=False)
    received_at = serializers.DateTimeField(
        required=False,
        help_text="When the request reached you (not in the future). Default: now. Starts the clock.",
    )

    def validate_received_at(self, value):
        if value.year < 1900:
            raise serializers.ValidationError("must be in 1900 or later")
        if value > timezone.now() + timedelta(days=1):
            raise serializers.ValidationError("cannot be in the future: when the request reached you")
        return value


class DsrListView(APIView):
    """The privacy officers' queue, soonest deadline first; and where new requests are opened."""

    permission_classes = [PrivacyOfficer]

    @staticmethod
    def permission_for(request) -> str:
        return (
            "consent.add_datasubjectrequest"
            if request.method == "POST"
            else "consent.view_datasubjectrequest"
        )

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "status",
                {"type": "string", "pattern": _STATUSES_PATTERN},
                description="Comma-separated statuses, or 'open'.",
            ),
            OpenApiParameter("type", OpenApiTypes.STR),
            OpenApiParameter("limit", OpenApiTypes.INT, description="At most 500; default 100."),
        ],
        responses={200: OpenApiTypes.OBJECT, **ERRORS},
        summary="Data-subject request queue",
        operation_id="dsr_queue",
    )
    def get(self, request):
        queryset = DataSubjectRequest.objects.order_by("due_at", "received_at")
        status = request.query_params.get("status")
        if status == "open":
            queryset = queryset.exclude(status__in=["completed", "rejected"])
        elif status:
            statuses = status.split(",")
            unknown = set(statuses) - set(DataSubjectRequest.Status.values)
            if unknown:
                return field_error("status", f"unknown status {sorted(unknown)[0]!r}")
            queryset = queryset.filter(status__in=statuses)
        if request.query_params.get("type"):
            queryset = queryset.filter(type=request.query_params["type"])
        try:
            limit = min(max(int(request.query_params.get("limit", 100)), 1), 500)
        except ValueError:
            return field_error("limit", "Must be a number.")
        return Response({"results": [dsr_as_dict(d) for d in queryset[:limit]]})

    @extend_schema(
        request=DsrIn,
        responses={201: OpenApiTypes.OBJECT, 409: OpenApiResponse(ErrorSerializer), **ERRORS},
        summary="Open a data-subject request",
        description='{"type": "erasure", "identifier": {"type": "email", "value": "..."}} (or "identifiers": '
        "[...]). The due date follows the regime: GDPR one month, CCPA 45 days.",
    )
    def post(self, request):
        data = request.data
        if not isinstance(data, dict):
            return field_error("", "The body must be a JSON object.")
        unknown = sorted(set(data) - set(DsrIn().fields))
        if unknown:
            return field_error(unknown[0], "Unknown field.")
        serializer = DsrIn(data=data)
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        identifiers = list(values.get("identifiers", []))
        if "identifier" in values:
            identifiers.insert(0, values["identifier"])
        if not identifiers:
            return field_error("identifier", 'Required: {"type": "email", "value": "..."}.')
        for index, identifier in enumerate(identifiers):
            if not all(isinstance(identifier.get(k), str) and identifier[k] for k in ("type", "value")):
                return field_error(f"identifiers[{index}]", 'Must be {"type": "email", "value": "..."}.')
        try:
            dsr = dsr_open(
                type=values["type"],
                identifiers=identifiers,
                regime=values.get("regime", DataSubjectRequest.Regime.GDPR),
                received_at=values.get("received_at"),
                actor=_actor(request),
            )
        except UnknownIdentifierType as exc:
            return field_error("identifier.type", str(exc))
        except InvalidValue as exc:
            return field_error("identifier.value", str(exc))
        except ValueError as exc:
            return field_error("identifiers", str(exc))
        except DsrError as exc:
            return field_error("identifiers", str(exc), 409)
        return Response(dsr_as_dict(dsr, with_events=True), status=201)


def _export_read(request, dsr: DataSubjectRequest) -> None:
    """Reading a person's export is a read of their profile: it goes to the access log like any other."""
    profile = profile_get(profile_id=dsr.profile_id) if dsr.profile_id else None
    if profile is not None:
        profile_access_record(request=request, profile=profile, view="api:dsr-export")


class DsrDetailView(APIView):
    permission_classes = [PrivacyOfficer]

    @staticmethod
    def permission_for(request) -> str:
        return "consent.view_datasubjectrequest"

    @extend_schema(
        responses={200: OpenApiTypes.OBJECT, **ERRORS},
        summary="A data-subject request",
        operation_id="dsr_get",
        description="Status, deadline, audit trail; for a completed access or portability request the export.",
    )
    def get(self, request, dsr_id):
        dsr = _get(dsr_id)
        data = dsr_as_dict(dsr, with_events=True)
        if _export_ready(dsr):
            _export_read(request, dsr)
            data["export"] = subject_export(request=dsr)
        return Response(data)


class DsrExportView(APIView):
    permission_classes = [PrivacyOfficer]

    @staticmethod
    def permission_for(request) -> str:
        return "consent.view_datasubjectrequest"

    @extend_schema(
        responses={200: OpenApiTypes.OBJECT, 409: OpenApiResponse(ErrorSerializer), **ERRORS},
        summary="Download the export of an access / portability request",
    )
    def get(self, request, dsr_id):
        dsr = _get(dsr_id)
        if not _export_ready(dsr):
            return field_error("status", "Only a completed access or portability request has an export.", 409)
        _export_read(request, dsr)
        body = json.dumps(subject_export(request=dsr), cls=DjangoJSONEncoder, indent=2, ensure_ascii=False)
        response = HttpResponse(body, content_type="application/json; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="subject-export-{dsr.pk}.json"'
        return response


ACTIONS = {
    "verify": ("consent.change_datasubjectrequest", "method"),
    "extend": ("consent.change_datasubjectrequest", "reason"),
    "reject": ("consent.change_datasubjectrequest", "reason"),
    "lift": ("consent.change_datasubjectrequest", None),
    "execute": ("consent.execute_datasubjectrequest", None),
}


class DsrActionView(APIView):
    """One step of the workflow: verify {method}, extend {reason}, reject {reason}, execute, lift."""

    permission_classes = [PrivacyOfficer]
    action_name = ""

    def permission_for(self, request) -> str:
        return ACTIONS[self.action_name][0]

    @extend_schema(
        request=inline_serializer(
            "DsrActionIn",
            {
                "method": serializers.CharField(required=False, help_text="verify: how identity was checked"),
                "reason": serializers.CharField(required=False, help_text="extend, reject: required"),
                "note": serializers.CharField(required=False),
            },
        ),
        responses={200: OpenApiTypes.OBJECT, 409: OpenApiResponse(ErrorSerializer), **ERRORS},
        summary="A step of a data-subject request",
    )
    def post(self, request, dsr_id):
        dsr = _get(dsr_id)
        data = request.data if isinstance(request.data, dict) else {}
        required = ACTIONS[self.action_name][1]
        if required and (not isinstance(data.get(required), str) or not data[required].strip()):
            return field_error(required, "Required, a non-empty string.")
        note = data.get("note", "") if isinstance(data.get("note", ""), str) else ""
        actor = _actor(request)
        try:
            if self.action_name == "verify":
                dsr = dsr_verify(request=dsr, actor=actor, method=data["method"])
            elif self.action_name == "extend":
                dsr = dsr_extend(request=dsr, actor=actor, reason=data["reason"])
            elif self.action_name == "reject":
                dsr = dsr_reject(request=dsr, actor=actor, reason=data["reason"])
            elif self.action_name == "lift":
                dsr = dsr_lift(request=dsr, actor=actor, note=note)
            else:
                dsr = dsr_execute(request=dsr, actor=actor, note=note)
        except DsrError as exc:
            return field_error("status", str(exc), 409)
        return Response(dsr_as_dict(dsr, with_events=True))


urlpatterns = [
    path("dsr", DsrListView.as_view(), name="dsr-list"),
    path("dsr/<uuid:dsr_id>", DsrDetailView.as_view(), name="dsr-detail"),
    path("dsr/<uuid:dsr_id>/export", DsrExportView.as_view(), name="dsr-export"),
    *(
        path(f"dsr/<uuid:dsr_id>/{name}", DsrActionView.as_view(action_name=name), name=f"dsr-{name}")
        for name in ACTIONS
    ),
]
