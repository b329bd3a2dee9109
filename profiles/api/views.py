from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from cdp.api import ErrorSerializer, field_error
from cdp.permissions import StaffOrSourceScope
from ingestion.models import SourceKey
from profiles.filters import ProfileFilter
from profiles.selectors import (
    InvalidValue,
    UnknownIdentifierType,
    profile_detail,
    profile_get,
    profile_list,
    profile_lookup,
)

from .serializers import ProfileDetailSerializer, ProfileSummarySerializer


class ProfileCursorPagination(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class ProfileViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Unified customer profiles: golden attributes with lineage, identities and source records."""

    permission_classes = [StaffOrSourceScope]
    required_scope = SourceKey.Scope.PROFILES_READ
    serializer_class = ProfileSummarySerializer
    filterset_class = ProfileFilter
    pagination_class = ProfileCursorPagination
    lookup_value_regex = "[^/]+"  # anything else is a JSON 404 from profile_get, not an HTML one

    def get_queryset(self):
        return profile_list()

    @extend_schema(
        responses={200: ProfileDetailSerializer, 404: OpenApiResponse(ErrorSerializer)},
        description="A merged-away profile id answers with its survivor.",
    )
    def retrieve(self, request, pk=None):
        profile = profile_get(profile_id=pk)
        if profile is None:
            raise Http404
        response = Response(ProfileDetailSerializer(profile_detail(profile=profile)).data)
        if str(profile.pk) != str(pk):
            response["Content-Location"] = request.build_absolute_uri(f"/api/v1/profiles/{profile.pk}")
        return response

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "type", OpenApiTypes.STR, required=True, description="email, phone, a source slug..."
            ),
            OpenApiParameter("value", OpenApiTypes.STR, required=True, description="In any format."),
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
        return Response(ProfileDetailSerializer(profile_detail(profile=profile)).data)
