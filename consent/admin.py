"""Staff view of consent: purposes, channels and notice versions are configuration; the ledger is evidence,
shown read-only."""

from django import forms
from django.contrib import admin
from django.contrib.admin.helpers import ActionForm
from django.utils import timezone
from django.utils.html import format_html

from cdp.admin import ReadOnlyAdmin, admin_link, pretty_json
from profiles.models import Profile

from .dsr import DsrError, dsr_execute, dsr_extend, dsr_reject, dsr_verify
from .models import (
    Channel,
    ConsentEntry,
    ConsentRejection,
    DataSubjectRequest,
    DsrEvent,
    NoticeVersion,
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
        return False

    def has_delete_permission(self, request, obj=None):
        return False

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
