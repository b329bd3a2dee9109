"""Staff view of the unified people: profiles with every candidate value and its lineage, the source records
behind them, the merge audit and the links the resolver refused. Profiles and the audit are read-only here:
they change only through resolution."""

import json
import uuid
from functools import partial

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.views.main import ORDER_VAR, PAGE_VAR, SEARCH_VAR, ChangeList
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q
from django.urls import path as url_pattern
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html, format_html_join
from django.utils.module_loading import import_string

from cdp.admin import ReadOnlyAdmin, admin_changelist_url, admin_link, pretty_json
from ingestion.models import InboundRecord
from ingestion.normalise import CANONICAL_ATTRIBUTES

from .access import profile_read
from .admin_review import profile_actions, profile_unmerge_view
from .masking import (
    mask_identifier_pairs,
    mask_payload,
    mask_profile_detail,
    mask_timeline_entries,
    masking_rules_fail_closed,
    masking_rules_for,
)
from .models import MergeEvent, Profile, ResolutionConflict, SourceRecord, SurvivorshipRule
from .selectors import SearchPaginator, profile_detail, profile_search
from .services import conflict_merge, conflicts_close
from .services.merge import MergeRefused
from .timeline import profile_timeline

TIMELINE_ENTRIES = 50


def _profile_link(pk, name: str = "") -> str:
    return admin_link(Profile, pk, name or pk)


def _search_uuid(term: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(term.strip())
    except ValueError:
        return None


# --- Profiles ------------------------------------------------------------------------------------------


class SearchChangeList(ChangeList):
    def get_results(self, request):
        super().get_results(request)
        # All results on one page: the admin would run the search again for them; the paginator has them.
        if not self.multi_page and getattr(self.paginator, "counted_page", None) is not None:
            self.result_list = self.paginator.counted_page


@admin.register(Profile)
class ProfileAdmin(ReadOnlyAdmin):
    list_display = ("name", "status", "created_at", "updated_at")
    list_filter = ("status",)
    # Shows the search box; get_search_results below does the matching (names, identifiers, external ids).
    search_fields = ("display_name", "search_name", "identities__value", "records__external_id")
    search_help_text = (
        "A name (accents and case ignored), any identifier as written anywhere (email, phone in any "
        "format, a source's id, also with its source: crm:C-1001), a source record's external id, or a "
        "profile id."
    )
    fields = ("id", "status", "survivor", "display_name", "created_at", "updated_at", "merge_audit")
    readonly_fields = fields

    @admin.display(description="name", ordering="display_name")
    def name(self, obj) -> str:
        return obj.display_name or f"(no name) {obj.pk}"

    @admin.display(description="merged into")
    def survivor(self, obj) -> str:
        return _profile_link(obj.merged_into_id) if obj.merged_into_id else "-"

    @admin.display(description="merge audit")
    def merge_audit(self, obj) -> str:
        return format_html(
            '<a href="{}">merges involving this profile</a>', admin_changelist_url(MergeEvent, q=obj.pk)
        )

    def get_search_results(self, request, queryset, search_term):
        """The Customer 360 search box: identifiers in any spelling, external ids, profile ids and names
        (typo-tolerant on PostgreSQL), ranked by ``profile_search``."""
        if not search_term.strip():
            return queryset, False
        results = profile_search(term=search_term, queryset=queryset)
        if ORDER_VAR not in request.GET:  # best first, unless staff sort by a column
            results = results.order_by("-search_rank", "display_name", "-pk")
        return results, False

    def get_changelist(self, request, **kwargs):
        return SearchChangeList

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        if not request.GET.get(SEARCH_VAR, "").strip():
            return super().get_paginator(request, queryset, per_page, orphans, allow_empty_first_page)
        # A search's page and its count in one query: the search runs once, not once more for the count.
        return SearchPaginator(
            queryset, per_page, orphans, allow_empty_first_page, page_number=request.GET.get(PAGE_VAR, 1)
        )

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            if refusal := profile_read(request=request, profile=obj, view="admin:customer-360"):
                raise PermissionDenied(refusal)
            rules = masking_rules_for(request.user)
            detail = profile_detail(profile=obj)
            context["profile_page"] = _profile_page(
                mask_profile_detail(detail, rules), conflicts=_conflicts(detail)
            )
            context["masked_attributes"] = sorted(rules)
            context["timeline"] = mask_timeline_entries(
                profile_timeline(profile=obj, limit=TIMELINE_ENTRIES)[0], rules
            )
            context["panels"] = [
                panel
                for path in getattr(settings, "CDP_PROFILE_PANELS", ())
                if (panel := import_string(path)(request=request, profile=obj)) is not None
            ]
            context["profile_actions"] = profile_actions(
                request=request, profile=obj, record_count=len(detail["records"])
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_urls(self):
        unmerge = self.admin_site.admin_view(partial(profile_unmerge_view, self))
        # Before the admin's own patterns: "<path:object_id>/" would swallow "<id>/unmerge/".
        return [
            url_pattern("<path:object_id>/unmerge/", unmerge, name="profiles_profile_unmerge"),
            *super().get_urls(),
        ]


def _conflicts(detail: dict) -> set[tuple[int, str]]:
    """(record id, attribute) of every source value that disagrees with the golden value. Computed before
    masking: two different emails may look alike once masked."""

    def comparable(value):  # "smith" and "Smith " say the same thing
        return " ".join(value.casefold().split()) if isinstance(value, str) else value

    golden = {name: comparable(attribute["value"]) for name, attribute in detail["attributes"].items()}
    return {
        (record["id"], name)
        for record in detail["records"]
        for name, value in record["attributes"].items()
        if name in golden and comparable(value) != golden[name]
    }


def _profile_page(detail: dict, conflicts: set[tuple[int, str]] = frozenset()) -> dict:
    """Shape ``profile_detail`` for the template: one row per attribute, the winning candidate marked, and the
    source records side by side (one column per record, one row per attribute, disagreements marked)."""
    conflicting_attributes = {name for _, name in conflicts}
    attributes = []
    for name, golden in detail["attributes"].items():
        observed_at = golden.get("observed_at")
        attributes.append(
            {
                "name": name,
                "value": golden["value"],
                "source": golden.get("source", ""),
                "record": golden.get("record"),
                "external_id": golden.get("external_id", ""),
                "observed_at": parse_datetime(observed_at) if isinstance(observed_at, str) else observed_at,
                "rule": dict(SurvivorshipRule.Rule.choices).get(golden.get("rule"), golden.get("rule", "")),
                "candidates": [
                    {**candidate, "chosen": candidate["record"] == golden.get("record")}
                    for candidate in golden["candidates"]
                ],
                "conflict": name in conflicting_attributes,
            }
        )
    records = detail["records"]
    names = list(detail["attributes"])
    names += sorted({name for record in records for name in record["attributes"]} - set(names))
    side_by_side = [
        {
            "name": name,
            "golden": detail["attributes"].get(name, {}).get("value", ""),
            "cells": [
                {
                    "present": name in record["attributes"],
                    "value": record["attributes"].get(name, ""),
                    "conflict": (record["id"], name) in conflicts,
                }
                for record in records
            ],
        }
        for name in names
    ]
    return {
        "attributes": attributes,
        "identities": detail["identities"],
        "records": records,
        "side_by_side": side_by_side,
        "sources": sorted({record["source"] for record in records}),
        "merges": [
            {
                **merge,
                "evidence_json": json.dumps(
                    merge["evidence"], indent=2, ensure_ascii=False, cls=DjangoJSONEncoder
                ),
            }
            for merge in detail["merges"]
        ],
    }


# --- Source records ------------------------------------------------------------------------------------


def _pii_rules(obj) -> dict[str, str]:
    """The masking ``get_object`` found for the viewer; masked as for an unknown role if it did not run."""
    rules = getattr(obj, "pii_rules", None)
    return masking_rules_fail_closed() if rules is None else rules


@admin.register(SourceRecord)
class SourceRecordAdmin(ReadOnlyAdmin):
    list_display = ("external_id", "source", "profile_link", "version_at", "deleted_at", "updated_at")
    list_filter = ("source", ("deleted_at", admin.EmptyFieldListFilter))
    list_select_related = ("source",)
    search_fields = ("=external_id",)
    search_help_text = "The record's id in its source system, exactly."
    ordering = ("-id",)
    fields = (
        "id",
        "source",
        "external_id",
        "profile_link",
        "version_at",
        "source_updated_at",
        "deleted_at",
        "created_at",
        "updated_at",
        "content_hash",
        "attributes_json",
        "identifiers_json",
        "raw_json",
    )
    readonly_fields = fields

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:  # the viewer's PII masking, applied as the API applies it
            obj.pii_rules = masking_rules_for(request.user)
        return obj

    @admin.display(description="profile", ordering="profile")
    def profile_link(self, obj) -> str:
        return _profile_link(obj.profile_id)

    @admin.display(description="attributes (normalised)")
    def attributes_json(self, obj) -> str:
        return pretty_json(mask_payload(obj.attributes, _pii_rules(obj)))

    @admin.display(description="identifiers (normalised)")
    def identifiers_json(self, obj) -> str:
        return pretty_json(mask_identifier_pairs(obj.identifiers, _pii_rules(obj)))

    @admin.display(description="payload of the version applied")
    def raw_json(self, obj) -> str:
        applied = InboundRecord.objects.filter(pk=obj.inbound_seq) if obj.deleted_at is None else None
        payload = applied.values_list("payload", flat=True).first() if applied is not None else None
        return pretty_json(mask_payload(payload, _pii_rules(obj), obj.source.field_mapping))


# --- Merge audit ---------------------------------------------------------------------------------------


@admin.register(MergeEvent)
class MergeEventAdmin(ReadOnlyAdmin):
    """The audit log is immutable: nobody adds, changes or deletes an entry here."""

    list_display = ("created_at", "survivor_link", "merged_link", "rule", "actor")
    list_filter = ("rule", "actor")
    list_select_related = ("survivor", "merged")
    search_fields = ("survivor__id", "merged__id")  # matched by get_search_results
    search_help_text = "A profile id: every merge it took part in."
    fields = ("created_at", "survivor_link", "merged_link", "rule", "actor", "evidence_json")
    readonly_fields = fields

    @admin.display(description="survivor", ordering="survivor")
    def survivor_link(self, obj) -> str:
        return _profile_link(obj.survivor_id, obj.survivor.display_name)

    @admin.display(description="merged", ordering="merged")
    def merged_link(self, obj) -> str:
        return _profile_link(obj.merged_id, obj.merged.display_name)

    @admin.display(description="evidence")
    def evidence_json(self, obj) -> str:
        return pretty_json(obj.evidence)

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        profile_id = _search_uuid(search_term)
        if profile_id is None:
            return queryset.none(), False
        return queryset.filter(Q(survivor_id=profile_id) | Q(merged_id=profile_id)), False


# --- Resolution conflicts ------------------------------------------------------------------------------


@admin.register(ResolutionConflict)
class ResolutionConflictAdmin(admin.ModelAdmin):
    list_display = ("created_at", "record_link", "profile_link", "identifier_type", "reason", "status")
    list_filter = ("status", "identifier_type")
    list_select_related = ("record__source",)
    search_fields = ("=record__external_id",)
    search_help_text = "The external id of the record the link was refused for."
    actions = ["merge_profiles", "mark_resolved", "mark_dismissed"]
    show_full_result_count = False
    fields = (
        "created_at",
        "record_link",
        "profile_link",
        "other_profile_links",
        "identifier_type",
        "reason",
        "status",
    )
    readonly_fields = (
        "created_at",
        "record_link",
        "profile_link",
        "other_profile_links",
        "identifier_type",
        "reason",
    )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="record", ordering="record")
    def record_link(self, obj) -> str:
        return admin_link(SourceRecord, obj.record_id, f"{obj.record.source.slug}:{obj.record.external_id}")

    @admin.display(description="profile (where the record went)", ordering="profile")
    def profile_link(self, obj) -> str:
        return _profile_link(obj.profile_id)

    @admin.display(description="profiles it would have linked")
    def other_profile_links(self, obj) -> str:
        return format_html_join(", ", "{}", ((_profile_link(pk),) for pk in obj.other_profiles)) or "-"

    def _mark(self, request, queryset, status) -> None:
        changed = conflicts_close(conflict_ids=queryset.values_list("pk", flat=True), status=status)
        self.message_user(
            request,
            f"Marked {changed} conflict(s) {ResolutionConflict.Status(status).label.lower()}.",
            messages.SUCCESS,
        )

    @admin.action(description="Merge the profiles anyway (they are one person)", permissions=["change"])
    def merge_profiles(self, request, queryset):
        merged = 0
        for conflict_id in queryset.filter(status=ResolutionConflict.Status.OPEN).values_list(
            "pk", flat=True
        ):
            try:
                conflict_merge(conflict_id=conflict_id, actor=request.user.get_username())
                merged += 1
            except (MergeRefused, ValueError) as exc:
                self.message_user(request, f"Conflict {conflict_id} not merged: {exc}", messages.ERROR)
        if merged:
            self.message_user(request, f"Merged the profiles of {merged} conflict(s).", messages.SUCCESS)

    @admin.action(description="Mark selected as resolved", permissions=["change"])
    def mark_resolved(self, request, queryset):
        self._mark(request, queryset, ResolutionConflict.Status.RESOLVED)

    @admin.action(description="Mark selected as dismissed", permissions=["change"])
    def mark_dismissed(self, request, queryset):
        self._mark(request, queryset, ResolutionConflict.Status.DISMISSED)


# --- Survivorship rules --------------------------------------------------------------------------------


class AttributeInput(forms.TextInput):
    """A text box that suggests the canonical attributes; a custom attribute may be typed as sources send it."""

    def render(self, name, value, attrs=None, renderer=None):
        box = super().render(name, value, {**(attrs or {}), "list": "canonical-attributes"}, renderer)
        options = format_html_join("", '<option value="{}">', ((name,) for name in CANONICAL_ATTRIBUTES))
        return format_html('{}<datalist id="canonical-attributes">{}</datalist>', box, options)


class SurvivorshipRuleForm(forms.ModelForm):
    class Meta:
        model = SurvivorshipRule
        fields = ("attribute", "rule")
        widgets = {"attribute": AttributeInput}
        help_texts = {
            "attribute": f"A canonical attribute ({', '.join(CANONICAL_ATTRIBUTES)}) or a custom one, named as "
            "the sources send it. Attributes without a rule follow the trust rank.",
            "rule": "Most recent compares the sources' own change times (updated_at, or a tracking message's "
            "time); a record sent without one ranks after those that have one.",
        }

    def clean_attribute(self) -> str:
        return self.cleaned_data["attribute"].strip()


GOLDEN_REFRESH_NOTE = (
    "Profiles that change from now on follow the new rules. To recompute the others now, use the action "
    "“Recompute golden records” on the rule list or run `python manage.py golden_refresh`."
)


@admin.register(SurvivorshipRule)
class SurvivorshipRuleAdmin(admin.ModelAdmin):
    form = SurvivorshipRuleForm
    list_display = ("attribute", "rule", "updated_at")
    list_editable = ("rule",)
    list_filter = ("rule",)
    search_fields = ("attribute",)
    actions = ["recompute_golden_records"]

    def get_readonly_fields(self, request, obj=None):
        return ("attribute", "updated_at") if obj else ("updated_at",)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not getattr(request, "_golden_refresh_noted", False):  # once per request, not per edited row
            request._golden_refresh_noted = True
            self.message_user(request, GOLDEN_REFRESH_NOTE, messages.INFO)

    def delete_queryset(self, request, queryset):
        super().delete_queryset(request, queryset)
        self.message_user(
            request,
            "The attributes now follow the trust rank. Run `python manage.py golden_refresh --all` to recompute "
            "every golden record.",
            messages.INFO,
        )

    @admin.action(description="Recompute golden records (in the background)", permissions=["change"])
    def recompute_golden_records(self, request, queryset):
        from .tasks import golden_records_refresh_task

        transaction.on_commit(golden_records_refresh_task.delay)
        self.message_user(
            request,
            "Recomputing the golden records computed before the latest rule change, in the background.",
            messages.SUCCESS,
        )
