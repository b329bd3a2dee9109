"""The consent API: record statements, ask whether a purpose is allowed, read a person's consent history."""

from django.http import Http404
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp.api import CursorPagination, ErrorSerializer, field_error
from cdp.auth import SourcePrincipal
from cdp.permissions import IsStaffUser, StaffOrSourceScope
from ingestion.models import SourceKey
from ingestion.normalise import InvalidValue, parse_timestamp
from profiles.access import profile_read
from profiles.selectors import UnknownIdentifierType, profile_get

from .dsr import profile_accesses
from .dsr_api import urlpatterns as dsr_urlpatterns
from .models import ProfileAccess
from .selectors import (
    UnknownChannel,
    UnknownPurpose,
    consent_check,
    decision_as_dict,
    profile_consents,
    subject_resolve,
)
from .services import MAX_CONSENTS_PER_REQUEST, consent_record

ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Malformed input; names the field and the reason."),
    401: OpenApiResponse(ErrorSerializer, description="No or invalid credentials."),
    403: OpenApiResponse(ErrorSerializer, description="Credentials without the permission or scope."),
}


class DjangoPermission(BasePermission):
    """Staff holding the view's ``required_permission``."""

    message = "This user lacks the permission this endpoint needs."

    def has_permission(self, request, view) -> bool:
        return request.user.has_perm(view.required_permission)


class StaffWithPermissionOrSourceScope(BasePermission):
    """A source key with the view's scope, or staff holding the view's Django permission."""

    message = "This key lacks the scope, or this user the permission, this endpoint needs."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if isinstance(user, SourcePrincipal):
            return user.has_scope(view.required_scope)
        return IsStaffUser().has_permission(request, view) and user.has_perm(view.required_permission)


class IdentifierSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="email, phone, a source slug...")
    value = serializers.CharField(help_text="In any spelling that normalises the same.")
    region = serializers.CharField(required=False, help_text="Country to read a national phone number in.")


class ConsentInSerializer(serializers.Serializer):
    identifier = IdentifierSerializer(required=False)
    profile = serializers.UUIDField(required=False)
    purpose = serializers.CharField()
    channel = serializers.CharField(required=False, allow_null=True, help_text="Empty: every channel.")
    decision = serializers.ChoiceField(
        choices=["granted", "denied", "withdrawn", "objection_direct_marketing", "opt_out_sale_sharing"]
    )
    effective_at = serializers.DateTimeField(required=False, help_text="Default: when received.")
    expires_at = serializers.DateTimeField(required=False)
    legal_basis = serializers.CharField(required=False)
    notice_version = serializers.JSONField(
        required=False, help_text='An id or {"notice", "version", "language"}.'
    )
    capture_method = serializers.CharField(
        required=False, help_text="form, double_opt_in, import, agent, gpc, tcf, tracked"
    )
    ip = serializers.IPAddressField(required=False)
    user_agent = serializers.CharField(required=False)
    idempotency_key = serializers.CharField(required=False)
    evidence = serializers.JSONField(required=False)
    tcf_string = serializers.CharField(
        required=False, help_text="An IAB TCF v2.2 TC string, kept as evidence."
    )


class ConsentsView(APIView):
    """Record consent statements in the append-only ledger."""

    permission_classes = [StaffWithPermissionOrSourceScope]
    required_scope = SourceKey.Scope.CONSENTS_WRITE
    required_permission = "consent.add_consententry"

    @extend_schema(
        request=inline_serializer(
            "ConsentsIn", {"consents": serializers.ListField(child=ConsentInSerializer(), min_length=1)}
        ),
        responses={
            200: inline_serializer(
                "ConsentsReceipt",
                {
                    "recorded": serializers.ListField(child=serializers.DictField()),
                    "rejected": serializers.ListField(child=serializers.DictField()),
                },
            ),
            413: OpenApiResponse(ErrorSerializer, description=f"Over {MAX_CONSENTS_PER_REQUEST} statements."),
            **ERRORS,
        },
        summary="Record consents",
        description="Synchronous: 200 once every valid statement is in the ledger (nothing is queued). "
        "Partial acceptance: invalid statements are listed with index, field and reason and kept for review. "
        "Idempotent: the same statement (same idempotency_key, or without one the same content) is stored "
        "once and answered as a duplicate.",
    )
    def post(self, request):
        data = request.data
        if not isinstance(data, dict) or "consents" not in data:
            return field_error("consents", 'The body must be a JSON object {"consents": [...]}.')
        unknown = sorted(set(data) - {"consents"})
        if unknown:
            return field_error(unknown[0], 'Unknown field; the body is {"consents": [...]}.')
        consents = data["consents"]
        if not isinstance(consents, list) or not consents:
            return field_error("consents", "Must be a non-empty list of consents.")
        if len(consents) > MAX_CONSENTS_PER_REQUEST:
            return field_error(
                "consents", f"{len(consents)} consents; at most {MAX_CONSENTS_PER_REQUEST} per request.", 413
            )
        user = request.user
        if isinstance(user, SourcePrincipal):
            source, recorded_by = user.source, str(user)
        else:
            source, recorded_by = None, f"staff:{user.get_username()}"
        receipt = consent_record(consents=consents, source=source, recorded_by=recorded_by)
        return Response({"recorded": receipt.recorded, "rejected": receipt.rejected})


def _subject_or_error(data: dict):
    """(subject, None) or (None, error response) for {"identifier": ...} or {"profile": ...}."""
    identifier, profile = data.get("identifier"), data.get("profile")
    if (identifier is None) == (profile is None):
        return None, field_error("identifier", 'Give exactly one of "identifier" or "profile".')
    if profile is not None:
        if not isinstance(profile, str):
            return None, field_error("profile", "Must be a profile id.")
        subject = subject_resolve(profile_id=profile)
        if subject is None:
            return None, field_error("profile", "No profile has this id.", 404)
        return subject, None
    if not isinstance(identifier, dict) or not all(
        isinstance(identifier.get(k), str) for k in ("type", "value")
    ):
        return None, field_error("identifier", 'Must be an object {"type": "phone", "value": "..."}.')
    if identifier.get("region") is not None and not isinstance(identifier["region"], str):
        return None, field_error("identifier.region", "Must be a two-letter country code.")
    try:
        return subject_resolve(identifier=identifier), None
    except UnknownIdentifierType as exc:
        return None, field_error("identifier.type", str(exc))
    except InvalidValue as exc:
        return None, field_error("identifier.value", str(exc))


def _moment(value, name: str):
    if value is None:
        return None, None
    try:
        return parse_timestamp(value), None
    except InvalidValue as exc:
        return None, field_error(name, str(exc))


REASON = inline_serializer(
    "ConsentReason",
    {
        "entry": serializers.IntegerField(),
        "effect": serializers.CharField(),
        "decision": serializers.CharField(),
        "identifier": serializers.DictField(),
        "purpose": serializers.CharField(),
        "channel": serializers.CharField(allow_null=True),
        "effective_at": serializers.DateTimeField(),
        "expires_at": serializers.DateTimeField(allow_null=True),
    },
)


class ConsentCheckView(APIView):
    """May this person be processed for this purpose on this channel? Fail closed."""

    permission_classes = [StaffOrSourceScope]
    required_scope = SourceKey.Scope.CONSENTS_READ

    @extend_schema(
        request=inline_serializer(
            "ConsentCheckIn",
            {
                "identifier": IdentifierSerializer(required=False),
                "profile": serializers.UUIDField(required=False),
                "purpose": serializers.CharField(),
                "channel": serializers.CharField(),
                "at": serializers.DateTimeField(required=False, help_text="A past moment; default now."),
            },
        ),
        responses={
            200: inline_serializer(
                "ConsentCheck",
                {
                    "allowed": serializers.BooleanField(),
                    "rule": serializers.CharField(),
                    "explanation": serializers.CharField(),
                    "reasons": REASON.__class__(many=True),
                    "profile": serializers.UUIDField(allow_null=True),
                },
            ),
            404: OpenApiResponse(ErrorSerializer, description="Unknown profile id."),
            **ERRORS,
        },
        summary="Check consent",
        description="Decided from every ledger entry of every identifier of the person, of its profile id and "
        "of profiles merged into it. reasons name the entries that decided it.",
    )
    def post(self, request):
        data = request.data
        if not isinstance(data, dict):
            return field_error("", "The body must be a JSON object.")
        unknown = sorted(set(data) - {"identifier", "profile", "purpose", "channel", "at"})
        if unknown:
            return field_error(unknown[0], "Unknown field.")
        for name in ("purpose", "channel"):
            if not isinstance(data.get(name), str) or not data[name]:
                return field_error(name, "Required, a string.")
        at, error = _moment(data.get("at"), "at")
        if error:
            return error
        subject, error = _subject_or_error(data)
        if error:
            return error
        try:
            decision = consent_check(subject=subject, purpose=data["purpose"], channel=data["channel"], at=at)
        except UnknownPurpose as exc:
            return field_error("purpose", str(exc))
        except UnknownChannel as exc:
            return field_error("channel", str(exc))
        return Response({**decision_as_dict(decision), "profile": subject.profile_id})


class ProfileConsentsView(APIView):
    """A person's effective consent for every purpose x channel and the full ledger history behind it."""

    permission_classes = [StaffOrSourceScope]
    required_scope = SourceKey.Scope.PROFILES_READ

    @extend_schema(
        parameters=[OpenApiParameter("at", OpenApiTypes.DATETIME, description="A past moment; default now.")],
        responses={200: OpenApiTypes.OBJECT, 404: OpenApiResponse(ErrorSerializer), **ERRORS},
        summary="A profile's consents",
        description="?at= answers as the ledger stood at that moment (entries recorded later are left out). "
        "A merged-away profile id answers with its survivor.",
    )
    def get(self, request, profile_id: str):
        at, error = _moment(request.query_params.get("at"), "at")
        if error:
            return error
        profile = profile_get(profile_id=profile_id)
        if profile is None:
            raise Http404
        if refusal := profile_read(request=request, profile=profile, view="api:profile-consents"):
            return field_error("profile", refusal, 403)
        return Response(profile_consents(profile=profile, at=at))


class ProfileAccessSerializer(serializers.ModelSerializer):
    profile = serializers.UUIDField(
        source="profile_id", help_text="The id that was read (maybe merged since)."
    )
    user = serializers.CharField(source="username")

    class Meta:
        model = ProfileAccess
        fields = ["id", "profile", "user", "view", "accessed_at"]


class AccessLogPagination(CursorPagination):
    ordering = ("-accessed_at", "-id")
    page_size = 100
    max_page_size = 1000


class ProfileAccessLogView(ListAPIView):
    """Who read this person: every read of the profile by staff, through the API or the admin, newest first.
    A merged profile includes the reads of the profiles merged into it."""

    permission_classes = [IsStaffUser, DjangoPermission]
    required_permission = "consent.view_profileaccess"
    serializer_class = ProfileAccessSerializer
    pagination_class = AccessLogPagination
    filter_backends = []

    @extend_schema(
        responses={200: ProfileAccessSerializer(many=True), 404: OpenApiResponse(ErrorSerializer), **ERRORS},
        summary="A profile's access log",
        description="For privacy officers (permission consent.view_profileaccess). Cursor-paginated.",
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        profile = profile_get(profile_id=self.kwargs["profile_id"])
        if profile is None:
            raise Http404
        return profile_accesses(profile=profile)


urlpatterns = [
    path("consents", ConsentsView.as_view(), name="consents"),
    path("consent/check", ConsentCheckView.as_view(), name="consent-check"),
    path("profiles/<str:profile_id>/consents", ProfileConsentsView.as_view(), name="profile-consents"),
    path("profiles/<str:profile_id>/access-log", ProfileAccessLogView.as_view(), name="profile-access-log"),
    *dsr_urlpatterns,
]
