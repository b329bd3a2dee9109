"""Staff view of intake: sources and their keys, identifier rules, and every payload as received (the
quarantine included). Actions call the same services as the API and the management commands."""

import phonenumbers
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from cdp.admin import (
    HashedKeyAdmin,
    KeyStateFilter,
    ReadOnlyAdmin,
    admin_changelist_url,
    admin_link,
    pretty_json,
)
from profiles.masking import mask_payload, masking_rules_fail_closed, masking_rules_for

from .models import Batch, IdentifierType, InboundRecord, Source, SourceKey
from .selectors import batch_status
from .services import DEFAULT_TRUST_RANK, inbound_process, source_create, source_key_create, source_slug_taken

# --- Sources -------------------------------------------------------------------------------------------


class SourceForm(forms.ModelForm):
    class Meta:
        model = Source
        fields = ("slug", "name", "kind", "trust_rank", "default_region", "field_mapping")

    def clean_default_region(self) -> str:
        region = (self.cleaned_data.get("default_region") or "").upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValidationError(f"{region!r} is not a country code phone numbers know, e.g. US, GB, DE.")
        return region

    def clean_field_mapping(self) -> dict:
        mapping = self.cleaned_data.get("field_mapping")
        if mapping in (None, ""):
            return {}
        if not isinstance(mapping, dict) or not all(
            isinstance(name, str) and isinstance(attribute, str) and attribute
            for name, attribute in mapping.items()
        ):
            raise ValidationError(
                'A JSON object from source field names to attribute names, e.g. {"FirstName": "first_name"}.'
            )
        return mapping


class SourceAddForm(SourceForm):
    """Name and trust rank may be left empty: ``source_create`` then derives them from slug and kind."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        defaults = ", ".join(f"{Source.Kind(kind).label} {rank}" for kind, rank in DEFAULT_TRUST_RANK.items())
        for name in ("name", "trust_rank"):
            self.fields[name].required = False
            self.fields[name].initial = None
            self.initial.pop(name, None)
        self.fields["name"].help_text = "Empty: made from the slug."
        self.fields["trust_rank"].help_text = f"Empty: the default of the kind ({defaults})."

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"]
        # source_create refuses this too; saying it here lets staff pick another slug in the form.
        taken = source_slug_taken(slug)
        if taken:
            raise ValidationError(f"{taken}.")
        return slug


class SourceKeyInline(admin.TabularInline):
    model = SourceKey
    fields = ("prefix", "name", "scopes", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name = "API key"
    verbose_name_plural = "API keys (issue one with the action on the source list)"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = (
        "slug",
        "name",
        "kind",
        "trust_rank",
        "default_region",
        "active_keys",
        "data_links",
    )
    list_display_links = ("slug", "name")
    list_editable = ("trust_rank",)
    list_filter = ("kind",)
    search_fields = ("slug", "name")
    actions = ["issue_key"]
    form = SourceForm
    inlines = [SourceKeyInline]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(active_key_count=Count("keys", filter=Q(keys__revoked_at__isnull=True)))
        )

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = SourceAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        # The slug names the source's identifier rule and every identity of its ids: it cannot change.
        return ("slug", "identifier_rule", "created_at") if obj else ()

    def get_fields(self, request, obj=None):
        fields = ["slug", "name", "kind", "trust_rank", "default_region", "field_mapping"]
        return [*fields, "identifier_rule", "created_at"] if obj else fields

    def get_inlines(self, request, obj):
        return self.inlines if obj else []

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        data = form.cleaned_data
        source = source_create(
            slug=data["slug"],
            kind=data["kind"],
            name=data.get("name") or "",
            trust_rank=data.get("trust_rank"),
            default_region=data["default_region"],
            field_mapping=data.get("field_mapping") or {},
        )
        obj.pk = source.pk
        obj.refresh_from_db()
        obj._state.adding = False

    @admin.display(description="active keys", ordering="active_key_count")
    def active_keys(self, obj) -> int:
        return obj.active_key_count

    @admin.display(description="data")
    def data_links(self, obj) -> str:
        return format_html(
            '<a href="{}">batches</a> · <a href="{}">quarantine</a>',
            admin_changelist_url(Batch, source__id__exact=obj.pk),
            admin_changelist_url(
                InboundRecord, source__id__exact=obj.pk, status__exact=InboundRecord.Status.QUARANTINED
            ),
        )

    @admin.display(description="identifier rule of its ids")
    def identifier_rule(self, obj) -> str:
        rule = IdentifierType.objects.filter(source=obj).values_list("pk", "name").first()
        return admin_link(IdentifierType, rule[0], rule[1]) if rule else "-"

    @admin.action(description="Issue a new API key", permissions=["issue_key"])
    def issue_key(self, request, queryset):
        for source in queryset.order_by("slug"):
            key, secret = source_key_create(
                source=source, name=f"issued in the admin by {request.user.get_username()}"[:100]
            )
            self.log_addition(request, key, "Issued in the admin.")
            self.message_user(
                request,
                format_html(
                    "New API key for {}: <code>{}</code> (prefix {}). Copy it now: it is stored only "
                    "hashed and will not be shown again.",
                    source.slug,
                    secret,
                    key.prefix,
                ),
                messages.SUCCESS,
            )

    def has_issue_key_permission(self, request) -> bool:
        return request.user.has_perm("ingestion.add_sourcekey")


class SourceKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=SourceKey.Scope.choices, widget=forms.CheckboxSelectMultiple, required=False
    )

    class Meta:
        model = SourceKey
        fields = ("name", "scopes")


@admin.register(SourceKey)
class SourceKeyAdmin(HashedKeyAdmin):
    form = SourceKeyForm
    list_display = (
        "prefix",
        "source",
        "name",
        "scope_list",
        "created_at",
        "last_used_at",
        "revoked_at",
        "active",
    )
    list_filter = (KeyStateFilter, "source")
    list_select_related = ("source",)
    search_fields = ("prefix", "name", "source__slug")
    fields = ("prefix", "source", "name", "scopes", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("source", *HashedKeyAdmin.common_readonly_fields)

    @admin.display(description="scopes")
    def scope_list(self, obj) -> str:
        return ", ".join(obj.scopes or ()) or "-"


# --- Identifier rules ----------------------------------------------------------------------------------


class IdentifierTypeForm(forms.ModelForm):
    class Meta:
        model = IdentifierType
        fields = ("name", "normaliser", "max_per_profile", "blocked_values")

    def clean_blocked_values(self) -> list:
        values = self.cleaned_data.get("blocked_values")
        if values in (None, ""):
            return []
        if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
            raise ValidationError('A JSON list of values, e.g. ["test@example.com", "0000000000"].')
        return values


@admin.register(IdentifierType)
class IdentifierTypeAdmin(admin.ModelAdmin):
    form = IdentifierTypeForm
    list_display = ("name", "normaliser", "max_per_profile", "blocked", "source")
    list_editable = ("normaliser", "max_per_profile")
    list_filter = ("normaliser",)
    list_select_related = ("source",)
    search_fields = ("name",)

    def get_fields(self, request, obj=None):
        return ("name", "normaliser", "max_per_profile", "blocked_values", "source", "created_at")

    def get_readonly_fields(self, request, obj=None):
        # Identities are stored under the rule's name, and a source's rule is named after the source.
        return ("name", "source", "created_at") if obj else ("source", "created_at")

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.source_id is not None:
            return False  # goes with its source
        return super().has_delete_permission(request, obj)

    @admin.display(description="blocked values")
    def blocked(self, obj) -> str:
        return Truncator(", ".join(obj.blocked_values or ())).chars(80) or "-"


# --- What came in --------------------------------------------------------------------------------------


class EvidenceAdmin(ReadOnlyAdmin):
    """Read-only: what a source sent is evidence, and is changed only by processing it."""


@admin.register(Batch)
class BatchAdmin(EvidenceAdmin):
    list_display = ("received_at", "source", "kind", "received_count", "rejected_count", "records_link")
    list_filter = ("kind", "source")
    list_select_related = ("source",)
    fields = (
        "id",
        "source",
        "kind",
        "received_at",
        "received_count",
        "rejected_count",
        "progress",
        "records_link",
    )
    readonly_fields = fields

    @admin.display(description="records")
    def records_link(self, obj) -> str:
        return format_html(
            '<a href="{}">records of this batch</a>',
            admin_changelist_url(InboundRecord, batch__id__exact=obj.pk),
        )

    @admin.display(description="progress")
    def progress(self, obj) -> str:
        status = batch_status(obj)
        rows = [
            *status["counts"].items(),
            *((f"outcome: {k or '-'}", v) for k, v in status["outcomes"].items()),
        ]
        return format_html("<table>{}</table>", format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows))


@admin.register(InboundRecord)
class InboundRecordAdmin(EvidenceAdmin):
    list_display = (
        "id",
        "received_at",
        "source",
        "external_id",
        "operation",
        "status",
        "outcome",
        "error_stage",
        "error_field",
        "short_error",
        "attempts",
        "batch_link",
    )
    list_filter = ("status", "error_stage", "source")
    list_select_related = ("source",)
    search_fields = ("external_id", "error")
    ordering = ("-id",)
    actions = ["reprocess"]
    fields = (
        "id",
        "batch",
        "source",
        "index",
        "operation",
        "external_id",
        "status",
        "outcome",
        "error_stage",
        "error_field",
        "error",
        "attempts",
        "received_at",
        "processed_at",
        "payload_json",
    )
    readonly_fields = fields

    @admin.display(description="error")
    def short_error(self, obj) -> str:
        return Truncator(obj.error).chars(100)

    @admin.display(description="batch")
    def batch_link(self, obj) -> str:
        return admin_link(Batch, obj.batch_id, str(obj.batch_id)[:8])

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:  # the viewer's PII masking, applied as the API applies it
            obj.pii_rules = masking_rules_for(request.user)
        return obj

    @admin.display(description="payload (as received)")
    def payload_json(self, obj) -> str:
        rules = getattr(obj, "pii_rules", None)
        rules = masking_rules_fail_closed() if rules is None else rules
        return pretty_json(mask_payload(obj.payload, rules, obj.source.field_mapping))

    @admin.action(description="Reprocess selected", permissions=["reprocess"])
    def reprocess(self, request, queryset):
        ids = list(
            queryset.exclude(status=InboundRecord.Status.PROCESSED)
            .order_by("id")
            .values_list("id", flat=True)
        )
        skipped = queryset.filter(status=InboundRecord.Status.PROCESSED).count()
        result = inbound_process(inbound_ids=ids)
        message = f"Reprocessed {len(ids)} record(s): {result.processed} processed, {result.quarantined} quarantined."
        if skipped:
            message += f" {skipped} already processed record(s) skipped."
        self.message_user(request, message, messages.WARNING if result.quarantined else messages.SUCCESS)

    def has_reprocess_permission(self, request) -> bool:
        # The records stay read-only; replaying them is what the change permission grants here.
        return request.user.has_perm("ingestion.change_inboundrecord")
