"""Staff view of consent: purposes, channels and notice versions are configuration; the ledger is evidence,
shown read-only."""

from django.contrib import admin
from django.utils.html import format_html

from cdp.admin import ReadOnlyAdmin, admin_link, pretty_json
from profiles.models import Profile

from .models import Channel, ConsentEntry, ConsentRejection, NoticeVersion, Purpose


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
