from django.http import Http404
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from cdp.api import CursorPagination, ErrorSerializer, field_error
from cdp.permissions import StaffOrSourceScope
from ingestion.models import SourceKey
from profiles.access import profile_read, profiles_visible
from profiles.filters import ProfileFilter
from profiles.masking import mask_profile_detail, mask_timeline_entries, masking_rules_for
from profiles.selectors import (
    InvalidValue,
    UnknownIdentifierType,
    profile_detail,
    profile_get,
    profile_list,
    profile_lookup,
)
from profiles.timeline import KINDS, Cursor, InvalidCursor, profile_timeline

from .serializers import ProfileDetailSerializer, ProfileSummarySerializer, TimelinePageSerializer

MAX_TIMELINE_PAGE = 500
NON_EMPTY = {"type": "string", "minLength": 1}


class ProfileCursorPagination(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 50
    max_page_size = 500


class ProfileViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Unified customer profiles: golden attributes with lineage, identities and source records."""

    permission_classes = [StaffOrSourceScope]
    required_scope = SourceKey.Scope.PROFILES_READ
    required_permission = "profiles.view_profile"  # staff: given by their role (cdp.roles)
    serializer_class = ProfileSummarySerializer
    filterset_class = ProfileFilter
    pagination_class = ProfileCursorPagination
    lookup_value_regex = "[^/]+"  # anything else is a JSON 404 from profile_get, not an HTML one

    def get_queryset(self):
        return profiles_visible(request=self.request, queryset=profile_list())

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "pii_rules": masking_rules_for(self.request.user)}

    def _detail(self, profile):
        detail = mask_profile_detail(profile_detail(profile=profile), masking_rules_for(self.request.user))
        return ProfileDetailSerializer(detail).data

    @extend_schema(
        responses={200: ProfileDetailSerializer, 404: OpenApiResponse(ErrorSerializer)},
        description="A merged-away profile id answers with its survivor.",
    )
    def retrieve(self, request, pk=None):
        profile = profile_get(profile_id=pk)
        if profile is None:
            raise Http404
        if refusal := profile_read(request=request, profile=profile, view="api:profile-detail"):
            return field_error("profile", refusal, 403)
        response = Response(self._detail(profile))
        if str(profile.pk) != str(pk):
            response["Content-Location"] = request.build_absolute_uri(f"/api/v1/profiles/{profile.pk}")
        return response

    @extend_schema(
        parameters=[
            OpenApiParameter("type", NON_EMPTY, required=True, description="email, phone, a source slug..."),
            OpenApiParameter("value", NON_EMPTY, required=True, description="In any format."),
            OpenApiParameter("region", OpenApiTypes.STR, description="Country to read a national phone in."),
        ],
        responses={
            200: ProfileDetailSerializer,
            400: OpenApiResponse(ErrorSerializer),
            404: OpenApiResponse(ErrorSerializer),
        },
        summary="Find a profile by any identifier",
    )
    @action(detail=False, methods=["get"], filterset_class=None, pagination_class=None)
    def lookup(self, request):
        kind, value = request.query_params.get("type"), request.query_params.get("value")
        for name, given in (("type", kind), ("value", value)):
            if not given:
                return field_error(name, "This query parameter is required.")
        try:
            profile = profile_lookup(type=kind, value=value, region=request.query_params.get("region"))
        except UnknownIdentifierType as exc:
            return field_error("type", str(exc))
        except InvalidValue as exc:
            return field_error("value", str(exc))
        if profile is None:
            return field_error("value", "No profile has this identifier.", 404)
        if refusal := profile_read(request=request, profile=profile, view="api:profile-lookup"):
            return field_error("profile", refusal, 403)
        return Response(self._detail(profile))

    @extend_schema(
        parameters=[
            OpenApiParameter("kind", OpenApiTypes.STR, description=f"Comma-separated: {', '.join(KINDS)}."),
            OpenApiParameter("source", OpenApiTypes.STR, description="A source slug."),
            OpenApiParameter("since", OpenApiTypes.DATETIME, description="From this time (inclusive)."),
            OpenApiParameter("until", OpenApiTypes.DATETIME, description="Before this time (exclusive)."),
            OpenApiParameter("cursor", OpenApiTypes.STR, description="From the previous page's next."),
            OpenApiParameter(
                "page_size",
                {"type": "integer", "minimum": 1, "maximum": MAX_TIMELINE_PAGE, "default": 50},
                description=f"Up to {MAX_TIMELINE_PAGE}.",
            ),
        ],
        responses={
            200: TimelinePageSerializer,
            400: OpenApiResponse(ErrorSerializer),
            404: OpenApiResponse(ErrorSerializer),
        },
        summary="The customer journey: events, record changes, merges and splits, newest first",
    )
    @action(detail=True, methods=["get"], filterset_class=None, pagination_class=None)
    def timeline(self, request, pk=None):
        profile = profile_get(profile_id=pk)
        if profile is None:
            raise Http404
        params = request.query_params
        kinds = {k.strip() for k in params.get("kind", "").split(",") if k.strip()}
        if unknown := sorted(kinds - set(KINDS)):
            return field_error("kind", f"unknown kind {unknown[0]!r}; one of {', '.join(KINDS)}")
        bounds = {}
        for name in ("since", "until"):
            if params.get(name):
                try:
                    bounds[name] = parse_datetime(params[name])
                except ValueError:
                    bounds[name] = None
                if bounds[name] is None or bounds[name].tzinfo is None:
                    return field_error(
                        name, "an ISO 8601 date-time with a time zone, e.g. 2025-01-01T00:00:00Z"
                    )
        try:
            cursor = Cursor.decode(params["cursor"]) if params.get("cursor") else None
        except InvalidCursor as exc:
            return field_error("cursor", str(exc))
        try:
            page_size = int(params.get("page_size", 50))
        except ValueError:
            page_size = 0
        if not 1 <= page_size <= MAX_TIMELINE_PAGE:
            return field_error("page_size", f"an integer from 1 to {MAX_TIMELINE_PAGE}")
        if refusal := profile_read(request=request, profile=profile, view="api:profile-timeline"):
            return field_error("profile", refusal, 403)
        entries, next_cursor = profile_timeline(
            profile=profile,
            kinds=kinds or None,
            source=params.get("source") or None,
            cursor=cursor,
            limit=page_size,
            **bounds,
        )
        entries = mask_timeline_entries(entries, masking_rules_for(request.user))
        next_url = None
        if next_cursor is not None:
            query = params.copy()
            query["cursor"] = next_cursor.encode()
            next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        return Response(
            TimelinePageSerializer({"profile": profile.pk, "next": next_url, "results": entries}).data
        )
