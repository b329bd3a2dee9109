"""The review queue and unmerge over the API, for data stewards: suggested matches to accept or reject, and
splitting a profile that holds two people."""

from __future__ import annotations

import django_filters
from django.db.models import Q
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp.api import CursorPagination, ErrorSerializer, field_error
from cdp.permissions import IsStaffUser
from profiles.golden import display_name
from profiles.masking import mask_attributes, masking_rules_for
from profiles.models import MatchSuggestion, Profile, ProfileSplit
from profiles.review_selectors import RecordRef, record_refs_resolve, suggestion_list
from profiles.selectors import profile_get
from profiles.services.resolution import ResolutionRetry
from profiles.services.review import (
    ReviewError,
    SuggestionClosed,
    SuggestionNotFound,
    suggestion_accept,
    suggestion_reject,
)
from profiles.services.unmerge import UnmergeInvalid, profile_unmerge

MAX_UNMERGE_RECORDS = 1000
BUSY = "the profiles changed while being locked (busy resolution); try again"


class StaffWithPermission(IsStaffUser):
    """Staff holding the Django permission the view names for the current action (their role gives it);
    source keys are refused whatever their scopes."""

    message = "This user lacks the permission this endpoint needs."

    def has_permission(self, request, view) -> bool:
        return super().has_permission(request, view) and request.user.has_perm(view.required_permission)


def masked_display_name(profile: Profile | None, rules: dict) -> str:
    """The name as the user may see it: built from the golden values after masking (a profile without a name
    is called by its email or phone, which a role may see masked only)."""
    if profile is None:
        return ""
    return display_name(mask_attributes(profile.golden, rules)) if rules else profile.display_name


def actor_of(request) -> str:
    return f"staff:{request.user.get_username()}"


# --- Suggestions ---------------------------------------------------------------------------------------


class SuggestionRecordSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    source = serializers.CharField()
    external_id = serializers.CharField()
    profile = serializers.UUIDField(allow_null=True, help_text="The profile the record is on now.")
    profile_name = serializers.CharField(help_text="Its display name, masked as the user sees profiles.")


class MatchSuggestionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    probability = serializers.FloatField()
    explanation = serializers.JSONField(
        help_text="Per field: comparison level and weight (bits); prior and total weight; why review."
    )
    record = SuggestionRecordSerializer(help_text="The new record.")
    candidate_record = SuggestionRecordSerializer(help_text="The existing record it resembles.")
    created_at = serializers.DateTimeField()
    decided_by = serializers.CharField()
    decided_at = serializers.DateTimeField(allow_null=True)


def suggestion_data(suggestion: MatchSuggestion, rules: dict) -> dict:
    def side(record) -> dict:
        return {
            "id": record.pk,
            "source": record.source.slug,
            "external_id": record.external_id,
            "profile": record.profile_id,
            "profile_name": masked_display_name(record.profile, rules),
        }

    return {
        "id": suggestion.pk,
        "status": suggestion.status,
        "probability": suggestion.probability,
        "explanation": suggestion.explanation,
        "record": side(suggestion.record),
        "candidate_record": side(suggestion.candidate_record),
        "created_at": suggestion.created_at,
        "decided_by": suggestion.decided_by,
        "decided_at": suggestion.decided_at,
    }


class SuggestionFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(
        choices=MatchSuggestion.Status.choices, help_text="open (the queue), accepted, rejected or obsolete."
    )
    profile = django_filters.UUIDFilter(
        method="filter_profile",
        help_text="Suggestions whose record or candidate record is on this profile now (a merged-away id "
        "stands for its survivor).",
    )

    class Meta:
        model = MatchSuggestion
        fields = []

    def filter_profile(self, queryset, name, value):
        profile = profile_get(profile_id=value)
        if profile is None:
            return queryset.none()
        return queryset.filter(Q(record__profile_id=profile.pk) | Q(candidate_record__profile_id=profile.pk))


class SuggestionCursorPagination(CursorPagination):
    ordering = ("-probability", "-id")
    page_size = 50
    max_page_size = 500


class DecisionSerializer(MatchSuggestionSerializer):
    profile = serializers.UUIDField(
        allow_null=True, help_text="Accepted: the merged profile. Rejected: null (the records stay apart)."
    )


class MatchSuggestionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Suggested matches waiting for a data steward, most probable first, each with its explanation."""

    permission_classes = [StaffWithPermission]
    filterset_class = SuggestionFilter
    pagination_class = SuggestionCursorPagination
    serializer_class = MatchSuggestionSerializer
    lookup_value_regex = "[^/]+"

    @property
    def required_permission(self) -> str:
        if self.action in ("accept", "reject"):
            return "profiles.change_matchsuggestion"
        return "profiles.view_matchsuggestion"

    def get_queryset(self):
        return suggestion_list()

    def _data(self, suggestion) -> dict:
        return MatchSuggestionSerializer(
            suggestion_data(suggestion, masking_rules_for(self.request.user))
        ).data

    def list(self, request, *args, **kwargs):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response([self._data(s) for s in page])

    @extend_schema(responses={200: MatchSuggestionSerializer, 404: OpenApiResponse(ErrorSerializer)})
    def retrieve(self, request, pk=None):
        suggestion = self._get(pk)
        if suggestion is None:
            return field_error("id", f"no match suggestion {pk}", status.HTTP_404_NOT_FOUND)
        return Response(self._data(suggestion))

    def _get(self, pk) -> MatchSuggestion | None:
        if not str(pk).isdigit():
            return None
        return self.get_queryset().filter(pk=int(pk)).first()

    def _decide(self, request, pk, decide):
        if not str(pk).isdigit():
            return field_error("id", f"no match suggestion {pk}", status.HTTP_404_NOT_FOUND)
        try:
            decide(suggestion_id=int(pk), actor=actor_of(request))
        except SuggestionNotFound as exc:
            return field_error("id", str(exc), status.HTTP_404_NOT_FOUND)
        except SuggestionClosed as exc:
            return field_error("status", str(exc), status.HTTP_409_CONFLICT)
        except ReviewError as exc:
            return field_error("id", str(exc), status.HTTP_409_CONFLICT)
        except ResolutionRetry:
            return field_error("id", BUSY, status.HTTP_409_CONFLICT)
        suggestion = self._get(pk)
        accepted = suggestion.status == MatchSuggestion.Status.ACCEPTED
        profile = suggestion.record.profile_id if accepted else None
        return Response({**self._data(suggestion), "profile": str(profile) if profile else None})

    @extend_schema(
        request=None,
        responses={
            200: DecisionSerializer,
            404: OpenApiResponse(ErrorSerializer),
            409: OpenApiResponse(ErrorSerializer, description="Already decided, obsolete, or refused."),
        },
        summary="Accept: the two records are one person; their profiles merge",
    )
    @action(detail=True, methods=["post"], filterset_class=None, pagination_class=None)
    def accept(self, request, pk=None):
        return self._decide(request, pk, suggestion_accept)

    @extend_schema(
        request=None,
        responses={
            200: DecisionSerializer,
            404: OpenApiResponse(ErrorSerializer),
            409: OpenApiResponse(ErrorSerializer, description="Already decided or obsolete."),
        },
        summary="Reject: different people; they are never linked",
    )
    @action(detail=True, methods=["post"], filterset_class=None, pagination_class=None)
    def reject(self, request, pk=None):
        return self._decide(request, pk, suggestion_reject)


# --- Unmerge -------------------------------------------------------------------------------------------


class UnmergeRequestSerializer(serializers.Serializer):
    """Documents the body; the view validates it item by item to name the item at fault."""

    records = serializers.ListField(
        child=serializers.JSONField(),
        min_length=1,
        help_text='The records to move: record ids, or {"source": slug, "external_id": id}.',
    )
    reason = serializers.CharField(help_text="Why: kept in the audit entry.")


class SplitRecordSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    source = serializers.CharField()
    external_id = serializers.CharField()
    identifiers_kept_on_original = serializers.ListField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="[type, value] pairs the remaining records carry too: they stay with the original.",
    )


class UnmergeResponseSerializer(serializers.Serializer):
    profile = serializers.UUIDField(help_text="The new profile.")
    from_profile = serializers.UUIDField(help_text="The profile split (the survivor, for a merged-away id).")
    records = SplitRecordSerializer(many=True)
    reason = serializers.CharField()
    actor = serializers.CharField()
    created_at = serializers.DateTimeField()


def _invalid(errors: list[tuple[str, str]]) -> Response:
    return Response(
        {"detail": errors[0][1], "errors": [{"field": f, "reason": r} for f, r in errors]},
        status=status.HTTP_400_BAD_REQUEST,
    )


class ProfileUnmergeView(APIView):
    permission_classes = [StaffWithPermission]
    required_permission = "profiles.add_profilesplit"

    @extend_schema(
        request=UnmergeRequestSerializer,
        responses={
            201: UnmergeResponseSerializer,
            400: OpenApiResponse(ErrorSerializer),
            403: OpenApiResponse(ErrorSerializer),
            404: OpenApiResponse(ErrorSerializer),
        },
        summary="Unmerge: move chosen source records to a new profile",
        description="The records move with the identifiers only they carry, their history and their events; "
        "both golden records are recomputed; every moved record is never linked again with every remaining "
        "one; the split is audited.",
    )
    def post(self, request, profile_id: str):
        if profile_get(profile_id=profile_id) is None:
            return field_error("profile", f"no profile {profile_id}", status.HTTP_404_NOT_FOUND)
        body = request.data if isinstance(request.data, dict) else {}
        if not isinstance(request.data, dict):
            return field_error("non_field_errors", 'a JSON object: {"records": [...], "reason": "..."}')
        errors: list[tuple[str, str]] = []
        reason = body.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            errors.append(("reason", "This field is required: say why the profile is split."))
        elif len(reason) > 2000:
            errors.append(("reason", "at most 2000 characters"))
        refs, ref_errors = self._refs(body.get("records"))
        errors += ref_errors
        if errors:
            return _invalid(errors)
        resolved, missing = record_refs_resolve(refs=refs)
        if missing:
            return _invalid(missing)
        try:
            new = profile_unmerge(
                profile_id=profile_id,
                record_ids=list(dict.fromkeys(resolved)),
                actor=actor_of(request),
                reason=reason.strip(),
            )
        except ResolutionRetry:
            return field_error("profile", BUSY, status.HTTP_409_CONFLICT)
        except UnmergeInvalid as exc:  # the profile exists (checked above): the request is at fault
            field = exc.field
            if exc.record_id is not None and exc.record_id in resolved:
                field = f"records[{resolved.index(exc.record_id)}]"
            return field_error(field, exc.reason)
        split = ProfileSplit.objects.get(new_profile=new)
        data = UnmergeResponseSerializer(
            {
                "profile": new.pk,
                "from_profile": split.profile_id,
                "records": split.records,
                "reason": split.reason,
                "actor": split.actor,
                "created_at": split.created_at,
            }
        ).data
        response = Response(data, status=status.HTTP_201_CREATED)
        response["Location"] = request.build_absolute_uri(f"/api/v1/profiles/{new.pk}")
        return response

    @staticmethod
    def _refs(records) -> tuple[list[RecordRef], list[tuple[str, str]]]:
        if not isinstance(records, list) or not records:
            return [], [("records", 'a non-empty list of record ids or {"source", "external_id"} objects')]
        if len(records) > MAX_UNMERGE_RECORDS:
            return [], [("records", f"at most {MAX_UNMERGE_RECORDS} records per unmerge")]
        refs, errors = [], []
        for index, item in enumerate(records):
            where = f"records[{index}]"
            if isinstance(item, int) and not isinstance(item, bool):
                refs.append(RecordRef(index, record_id=item))
            elif isinstance(item, dict):
                for name in ("source", "external_id"):
                    if not isinstance(item.get(name), str) or not item[name]:
                        errors.append((f"{where}.{name}", "This field is required (a non-empty string)."))
                if unknown := sorted(set(item) - {"source", "external_id"}):
                    errors.append((f"{where}.{unknown[0]}", "unknown field"))
                refs.append(RecordRef(index, source=item.get("source"), external_id=item.get("external_id")))
            else:
                errors.append((where, 'a record id, or {"source": slug, "external_id": id}'))
        return refs, errors
