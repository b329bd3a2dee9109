"""Staff view of consent: purposes, channels and notice versions are configuration; the ledger is evidence,
shown read-only."""

import uuid

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from cdp.admin import ReadOnlyAdmin, admin_link, pretty_json
from ingestion.normalise import InvalidValue
from profiles.models import Identity, Profile
from profiles.selectors import UnknownIdentifierType, profile_get

from .dsr import (
    DsrError,
    dsr_execute,
    dsr_extend,
    dsr_open,
    dsr_reject,
    dsr_verify,
    profile_accesses,
    profile_family_ids,
)
from .models import (
    Channel,
    ConsentEntry,
    ConsentRejection,
    DataSubjectRequest,
    DsrEvent,
    NoticeVersion,
    ProfileAccess,
    Purpose,
    RestrictedProfile,
    SuppressionEntry,
)


class SlugFixedOnceUsedAdmin(admin.ModelAdmin):
    """The slug is what ledger entries and API callers refer to: set once, never renamed."""

    def get_readonly_fields(self, request, obj=None):
        return ("slug", "created_at") if obj else ("created_at",)

    def has_delete_permission(self, request, obj=None):
        return obj is None or not obj.entries.exists()


@admin.register(Purpose)
class PurposeAdmin(SlugFixedOnceUsedAdmin):
    list_display = ("slug", "name", "requires_consent", "direct_marketing", "sale_sharing")
    list_editable = ("requires_consent", "direct_marketing", "sale_sharing")
    fields = (
        "slug",
        "name",
        "description",
        "requires_consent",
        "direct_marketing",
        "sale_sharing",
        "created_at",
    )


@admin.register(Channel)
class ChannelAdmin(SlugFixedOnceUsedAdmin):
    list_display = ("slug", "name")
    fields = ("slug", "name", "created_at")


@admin.register(NoticeVersion)
class NoticeVersionAdmin(admin.ModelAdmin):
    """A notice version is added once; its text is evidence and never edited (a new wording is a new
    version). The SHA-256 of the text is computed on save."""

    list_display = ("notice", "version", "language", "published_at", "text_sha256")
    list_filter = ("notice", "language")
    search_fields = ("notice", "version", "text_sha256")
    fields = ("notice", "version", "language", "text", "published_at", "text_sha256", "created_at")

    def get_readonly_fields(self, request, obj=None):
        return self.fields if obj else ("text_sha256", "created_at")

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ConsentEntry)
class ConsentEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "subject",
        "purpose",
        "channel",
        "decision",
        "effective_at",
        "recorded_by",
        "expires_at",
    )
    list_filter = ("decision", "purpose", "channel", "capture_method")
    search_fields = ("identifier_value", "=subject_profile_id", "=recorded_for_profile_id", "idempotency_key")
    date_hierarchy = "effective_at"
    fields = (
        "id",
        "identifier_type",
        "identifier_value",
        "profile_link",
        "recorded_for_link",
        "purpose",
        "channel",
        "decision",
        "legal_basis",
        "notice_version",
        "capture_method",
        "ip",
        "user_agent",
        "source",
        "recorded_by",
        "effective_at",
        "recorded_at",
        "expires_at",
        "idempotency_key",
        "evidence_json",
    )
    readonly_fields = fields

    @admin.display(description="given for profile")
    def profile_link(self, obj) -> str:
        return admin_link(Profile, obj.subject_profile_id)

    @admin.display(description="identifier's profile when recorded")
    def recorded_for_link(self, obj) -> str:
        return admin_link(Profile, obj.recorded_for_profile_id)

    @admin.display(description="evidence")
    def evidence_json(self, obj) -> str:
        return pretty_json(obj.evidence)


@admin.register(ConsentRejection)
class ConsentRejectionAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "recorded_by", "index", "field", "reason")
    list_filter = ("field",)
    fields = ("received_at", "source", "recorded_by", "index", "field", "reason", "payload_json")
    readonly_fields = fields

    @admin.display(description="as received")
    def payload_json(self, obj) -> str:
        return format_html("{}", pretty_json(obj.payload))


# --- Data-subject requests -------------------------------------------------------------------------------


class DsrActionForm(ActionForm):
    reason = forms.CharField(
        required=False,
        label="Method / reason",
        help_text="verify: how identity was checked; extend and reject: the reason.",
    )


class DsrOpenForm(forms.Form):
    type = forms.ChoiceField(choices=DataSubjectRequest.Type.choices)
    regime = forms.ChoiceField(
        choices=DataSubjectRequest.Regime.choices, initial=DataSubjectRequest.Regime.GDPR
    )
    identifiers = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
        help_text="How the person is known, one per line as type: value (email: ann@example.org, phone: +1 202 "
        "555 0143, or a source's slug and its id). The request is resolved to the profile holding them.",
    )

    def clean_identifiers(self) -> list[dict]:
        identifiers = []
        for number, line in enumerate(self.cleaned_data["identifiers"].splitlines(), start=1):
            if not line.strip():
                continue
            kind, colon, value = line.partition(":")
            if not colon or not kind.strip() or not value.strip():
                raise forms.ValidationError(f"line {number}: write it as type: value")
            identifiers.append({"type": kind.strip(), "value": value.strip()})
        if not identifiers:
            raise forms.ValidationError("at least one identifier")
        return identifiers


def _dsr_initial(profile_id: str | None) -> dict:
    profile = profile_get(profile_id=profile_id) if profile_id else None
    if profile is None:
        return {}
    known = Identity.objects.filter(profile=profile, type__in=("email", "phone")).order_by("type", "value")
    return {
        "identifiers": "\n".join(f"{kind}: {value}" for kind, value in known.values_list("type", "value"))
    }


class DsrEventInline(admin.TabularInline):
    model = DsrEvent
    fields = ("at", "action", "from_status", "to_status", "actor", "note", "details")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(DataSubjectRequest)
class DataSubjectRequestAdmin(admin.ModelAdmin):
    """The privacy officers' queue, soonest deadline first. Requests are opened through the API; the actions
    call the same services (``consent.dsr``). The trail of steps is read-only."""

    list_display = ("id", "type", "regime", "status", "due_at", "overdue", "received_at", "verified_at")
    list_filter = ("status", "type", "regime")
    ordering = ("due_at", "received_at")
    action_form = DsrActionForm
    actions = ("verify", "execute", "extend", "reject")
    inlines = (DsrEventInline,)
    fields = (
        "id",
        "type",
        "regime",
        "status",
        "identifiers",
        "profile_id",
        "received_at",
        "due_at",
        "original_due_at",
        "extended_at",
        "extension_reason",
        "verified_at",
        "verified_by",
        "verification_method",
        "completed_at",
        "lifted_at",
        "outcome",
        "created_by",
    )
    readonly_fields = fields

    def has_add_permission(self, request):
        return request.user.has_perm("consent.add_datasubjectrequest")

    def has_delete_permission(self, request, obj=None):
        return False

    def add_view(self, request, form_url="", extra_context=None):
        """Open a request (``dsr_open``, as the API does), prefilled from ``?profile=<id>``: the person's emails
        and phones, as the Customer 360 page links here."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = DsrOpenForm(request.POST or None, initial=_dsr_initial(request.GET.get("profile")))
        if request.method == "POST" and form.is_valid():
            try:
                dsr = dsr_open(
                    type=form.cleaned_data["type"],
                    identifiers=form.cleaned_data["identifiers"],
                    regime=form.cleaned_data["regime"],
                    actor=f"staff:{request.user.get_username()}",
                )
            except (UnknownIdentifierType, InvalidValue, ValueError, DsrError) as exc:
                form.add_error("identifiers", str(exc))
            else:
                self.message_user(request, f"Request opened; due {dsr.due_at:%Y-%m-%d}.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:consent_datasubjectrequest_change", args=[dsr.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Open a data-subject request",
            "form": form,
        }
        return TemplateResponse(request, "admin/consent/datasubjectrequest/open.html", context)

    @admin.display(boolean=True)
    def overdue(self, obj) -> bool:
        return obj.is_open and obj.due_at < timezone.now()

    def _run(self, request, queryset, step, field: str | None) -> None:
        """Call ``step`` on each selected request, soonest deadline first; ``field`` names the argument the
        text next to the action goes to (method or reason)."""
        text = request.POST.get("reason", "").strip()
        if field and not text:
            self.message_user(request, "Give the method or reason in the field next to the action.", "error")
            return
        extra = {field: text} if field else {}
        done = 0
        for dsr in queryset.order_by("due_at"):
            try:
                step(request=dsr, actor=f"staff:{request.user.get_username()}", **extra)
                done += 1
            except (DsrError, ValueError) as exc:
                self.message_user(request, f"{dsr}: {exc}", "error")
        if done:
            self.message_user(request, f"{done} request(s) updated.")

    @admin.action(description="Verify identity (method in the field)", permissions=["change"])
    def verify(self, request, queryset):
        self._run(request, queryset, dsr_verify, "method")

    @admin.action(description="Execute (erase, export, restrict, object)", permissions=["execute"])
    def execute(self, request, queryset):
        self._run(request, queryset, dsr_execute, None)

    @admin.action(description="Extend the deadline (reason in the field)", permissions=["change"])
    def extend(self, request, queryset):
        self._run(request, queryset, dsr_extend, "reason")

    @admin.action(description="Reject (reason in the field)", permissions=["change"])
    def reject(self, request, queryset):
        self._run(request, queryset, dsr_reject, "reason")

    def has_execute_permission(self, request) -> bool:
        return request.user.has_perm("consent.execute_datasubjectrequest")


@admin.register(SuppressionEntry)
class SuppressionEntryAdmin(ReadOnlyAdmin):
    list_display = ("identifier_type", "key_hash", "hits", "last_hit_at", "created_at", "request")
    list_filter = ("identifier_type",)
    fields = list_display


@admin.register(RestrictedProfile)
class RestrictedProfileAdmin(ReadOnlyAdmin):
    list_display = ("profile_id", "request", "created_at")
    fields = list_display


@admin.register(ProfileAccess)
class ProfileAccessAdmin(ReadOnlyAdmin):
    """Who read whom: every read of a profile by staff (API and admin). Searching a profile id lists the reads
    of the person, the profiles merged into it included."""

    list_display = ("accessed_at", "username", "profile_link", "view")
    list_filter = ("view", "accessed_at", "username")
    date_hierarchy = "accessed_at"
    search_fields = ("username",)  # matched by get_search_results
    search_help_text = (
        "A profile id (the reads of the person, merged profiles included) or a staff user name."
    )
    fields = ("accessed_at", "username", "user", "profile_link", "view")
    readonly_fields = fields

    @admin.display(description="profile", ordering="profile_id")
    def profile_link(self, obj) -> str:
        return admin_link(Profile, obj.profile_id)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            profile_id = uuid.UUID(term)
        except ValueError:
            return queryset.filter(username__icontains=term), False
        profile = profile_get(profile_id=profile_id)
        ids = profile_family_ids(profile.pk) if profile else [profile_id]
        return queryset.filter(profile_id__in=ids), False


ACCESS_PANEL_ROWS = 10


def profile_access_panel(*, request, profile) -> dict | None:
    """Customer 360 section (``CDP_PROFILE_PANELS``) for privacy officers: the latest reads of this person by
    staff, this one included. The full list is in the access log admin and the API."""
    if not request.user.has_perm("consent.view_profileaccess"):
        return None
    accesses = profile_accesses(profile=profile)
    latest = list(accesses.values_list("accessed_at", "username", "view")[:ACCESS_PANEL_ROWS])
    return {
        "id": "access-log",
        "title": f"Access log (the latest {len(latest)} of {accesses.count()} reads by staff)",
        "columns": ["When (UTC)", "Who", "Through"],
        "rows": [
            {"cells": [accessed_at.strftime("%Y-%m-%d %H:%M:%S"), username, view], "css_class": ""}
            for accessed_at, username, view in latest
        ],
        "empty": "Nobody has read this profile yet.",
    }
