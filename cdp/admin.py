"""The admin site, and what the apps' admins share: hashed keys, links between pages, JSON shown as evidence."""

import json
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.core.serializers.json import DjangoJSONEncoder
from django.urls import reverse
from django.utils.html import format_html

from .models import StaffToken
from .services import keys_revoke

admin.site.site_header = "Customer Data Platform"
admin.site.site_title = "CDP admin"
admin.site.index_title = "Sources, records and profiles"


# --- Helpers for the apps' admins ----------------------------------------------------------------------


def admin_change_url(model, pk) -> str:
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[quote(pk)])


def admin_changelist_url(model, **params) -> str:
    opts = model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    return f"{url}?{urlencode(params)}" if params else url


def admin_link(model, pk, text=None) -> str:
    """A link to an object's admin page, built from its id alone (no query for the related row)."""
    if pk is None:
        return "-"
    return format_html('<a href="{}">{}</a>', admin_change_url(model, pk), text if text is not None else pk)


def pretty_json(value) -> str:
    """JSON as received, indented; keys keep their order because payloads are evidence."""
    text = json.dumps(value, indent=2, ensure_ascii=False, cls=DjangoJSONEncoder)
    return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', text)


# --- Hashed keys (staff tokens here, source keys in ingestion) -----------------------------------------


class ReadOnlyAdmin(admin.ModelAdmin):
    """Evidence and derived data: shown to staff, changed only through the services that own them."""

    show_full_result_count = False  # counting a large table on every page is slow

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class KeyStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


class HashedKeyAdmin(admin.ModelAdmin):
    """Keys are told apart by their prefix; the digest never reaches a page.

    Keys are issued by their own flow (the secret is shown once), so they cannot be added here, and they are
    revoked rather than deleted: the row keeps explaining past use of the key.
    """

    list_filter = (KeyStateFilter,)
    actions = ["revoke"]
    common_readonly_fields = ("prefix", "created_at", "last_used_at", "revoked_at")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(boolean=True, description="active")
    def active(self, obj) -> bool:
        return obj.is_active

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        revoked = keys_revoke(keys=queryset)
        self.message_user(
            request, f"Revoked {revoked} key(s); they no longer authenticate.", messages.SUCCESS
        )


@admin.register(StaffToken)
class StaffTokenAdmin(HashedKeyAdmin):
    list_display = ("prefix", "name", "user", "created_at", "last_used_at", "revoked_at", "active")
    list_select_related = ("user",)
    search_fields = ("prefix", "name", "user__username", "user__email")
    fields = ("prefix", "name", "user", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("user", *HashedKeyAdmin.common_readonly_fields)
