"""The data steward's review in the admin: suggested matches to accept or reject, the never-link pairs and the
splits they left, and the unmerge page of a profile. Every decision goes through the same services as the
API (``profiles.services.review``, ``profiles.services.unmerge``)."""

from __future__ import annotations

import uuid
from contextvars import ContextVar

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from cdp.admin import ReadOnlyAdmin, admin_change_url, admin_changelist_url, admin_link
from profiles.golden import display_name

from .access import profile_read
from .masking import mask_attributes, masking_rules_for
from .models import MatchSuggestion, NeverLink, Profile, ProfileSplit, SourceRecord
from .review_selectors import suggestions_open_count
from .selectors import profile_get
from .services.review import ReviewError, suggestion_accept, suggestion_reject
from .services.unmerge import UnmergeInvalid, profile_unmerge

UNMERGE_PERMISSION = "profiles.add_profilesplit"
DSR_ADD_PERMISSION = "consent.add_datasubjectrequest"

# The user a suggestion page is rendered for: its display methods mask names as that user sees profiles.
# (A ModelAdmin is shared by every request; a context variable is not.)
_viewer: ContextVar = ContextVar("suggestion_viewer", default=None)


def _viewer_rules() -> dict:
    request = _viewer.get()
    return masking_rules_for(request.user) if request is not None else {}


def _actor(request) -> str:
    return f"staff:{request.user.get_username()}"


def _record_label(record: SourceRecord) -> str:
    return f"{record.source.slug}:{record.external_id}"


def _masked_name(profile: Profile | None, rules: dict) -> str:
    if profile is None:
        return "-"
    name = display_name(mask_attributes(profile.golden, rules)) if rules else profile.display_name
    return name or f"(no name) {profile.pk}"


def _search_uuid(term: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(term.strip())
    except ValueError:
        return None


def explanation_table(explanation: dict) -> str:
    """The scoring of a pair as a steward reads it: one row per field (how well it agrees, the weight it
    added), then the prior, the total and the probability, and why it came to review."""
    fields = explanation.get("fields") or []
    rows = format_html_join(
        "",
        '<tr class="{}"><td>{}</td><td>{}</td><td style="text-align:right">{}</td></tr>',
        (
            (
                "agree"
                if (item.get("weight") or 0) > 0
                else "disagree"
                if (item.get("weight") or 0) < 0
                else "",
                item.get("field", ""),
                item.get("level", ""),
                f"{item['weight']:+.2f}" if isinstance(item.get("weight"), int | float) else "",
            )
            for item in fields
        ),
    )
    summary = [
        (label, explanation[key])
        for key, label in (
            ("prior_weight", "prior weight"),
            ("total_weight", "total weight"),
            ("probability", "probability"),
            ("outcome", "outcome"),
            ("reason", "why"),
        )
        if key in explanation
    ]
    known = {"fields", "prior_weight", "total_weight", "probability", "outcome", "reason"}
    summary += [(key, value) for key, value in explanation.items() if key not in known]
    footer = format_html_join(
        "", '<tr><th colspan="2">{}</th><td style="text-align:right">{}</td></tr>', summary
    )
    return format_html(
        '<table class="match-explanation"><thead><tr><th>Field</th><th>Agreement</th>'
        '<th style="text-align:right">Weight (bits)</th></tr></thead><tbody>{}</tbody><tfoot>{}</tfoot></table>',
        rows or format_html('<tr><td colspan="3">No field comparisons stored.</td></tr>'),
        footer,
    )


# --- Suggested matches ---------------------------------------------------------------------------------


@admin.register(MatchSuggestion)
class MatchSuggestionAdmin(admin.ModelAdmin):
    """The review queue, most probable first. Nothing is edited here: a suggestion is accepted (merge) or
    rejected (never link), with the actions or the buttons of its page."""

    list_display = (
        "probability_display",
        "status",
        "record_link",
        "record_profile",
        "candidate_link",
        "candidate_profile_link",
        "created_at",
        "decided_by",
    )
    list_filter = ("status",)
    list_select_related = (
        "record__source",
        "record__profile",
        "candidate_record__source",
        "candidate_record__profile",
    )
    ordering = ("-probability", "-id")
    search_fields = ("=record__external_id",)  # matched by get_search_results
    search_help_text = "A profile id (suggestions touching it), or a record's external id."
    actions = ["accept_selected", "reject_selected"]
    show_full_result_count = False
    fields = (
        "status",
        "probability_display",
        "record_link",
        "record_profile",
        "candidate_link",
        "candidate_profile_link",
        "explanation_display",
        "records_side_by_side",
        "decision",
        "created_at",
        "decided_by",
        "decided_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="probability", ordering="probability")
    def probability_display(self, obj) -> str:
        return f"{obj.probability:.3f}"

    @admin.display(description="record", ordering="record")
    def record_link(self, obj) -> str:
        return admin_link(SourceRecord, obj.record_id, _record_label(obj.record))

    @admin.display(description="candidate record", ordering="candidate_record")
    def candidate_link(self, obj) -> str:
        return admin_link(SourceRecord, obj.candidate_record_id, _record_label(obj.candidate_record))

    def _profile(self, record) -> str:
        return admin_link(Profile, record.profile_id, _masked_name(record.profile, _viewer_rules()))

    @admin.display(description="its profile")
    def record_profile(self, obj) -> str:
        return self._profile(obj.record)

    @admin.display(description="candidate's profile")
    def candidate_profile_link(self, obj) -> str:
        return self._profile(obj.candidate_record)

    @admin.display(description="explanation")
    def explanation_display(self, obj) -> str:
        return explanation_table(obj.explanation or {})

    @admin.display(description="the two records")
    def records_side_by_side(self, obj) -> str:
        rules = _viewer_rules()
        left, right = obj.record, obj.candidate_record
        a, b = mask_attributes(left.attributes, rules), mask_attributes(right.attributes, rules)
        names = list(dict.fromkeys([*a, *b]))
        rows = format_html_join(
            "",
            "<tr{}><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    format_html(' class="{}"', "differs") if a.get(n) != b.get(n) else "",
                    n,
                    a.get(n, "-"),
                    b.get(n, "-"),
                )
                for n in names
            ),
        )
        return format_html(
            "<table><thead><tr><th>Attribute</th><th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table>",
            _record_label(left),
            _record_label(right),
            rows,
        )

    @admin.display(description="decide")
    def decision(self, obj) -> str:
        if obj.status != MatchSuggestion.Status.OPEN:
            return f"{obj.get_status_display()}{f' by {obj.decided_by}' if obj.decided_by else ''}"
        request = _viewer.get()
        if request is None or not self.has_change_permission(request, obj):
            return "Open (you may not decide it)"
        return mark_safe(
            '<button type="submit" name="_accept" class="button default">Accept: same person (merge)</button> '
            '<button type="submit" name="_reject" class="button">Reject: different people (never link)</button>'
        )

    def changelist_view(self, request, extra_context=None):
        token = _viewer.set(request)
        try:
            response = super().changelist_view(request, extra_context)
            return response.render() if hasattr(response, "render") else response
        finally:
            _viewer.reset(token)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        profile_id = _search_uuid(term)
        if profile_id is not None:
            profile = profile_get(profile_id=profile_id)
            if profile is None:
                return queryset.none(), False
            return queryset.filter(
                Q(record__profile_id=profile.pk) | Q(candidate_record__profile_id=profile.pk)
            ), False
        return queryset.filter(Q(record__external_id=term) | Q(candidate_record__external_id=term)), False

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method == "POST" and object_id and ({"_accept", "_reject"} & set(request.POST)):
            suggestion = self.get_object(request, object_id)
            if suggestion is None:
                raise Http404
            if not self.has_change_permission(request, suggestion):
                raise PermissionDenied
            self._decide(request, [suggestion], accept="_accept" in request.POST)
            return HttpResponseRedirect(request.path)
        suggestion = self.get_object(request, object_id) if object_id else None
        if suggestion is not None and self.has_view_or_change_permission(request, suggestion):
            # The page shows both records' attributes: a read of both people.
            for record in (suggestion.record, suggestion.candidate_record):
                if record.profile is not None and (
                    refusal := profile_read(
                        request=request, profile=record.profile, view="admin:match-review"
                    )
                ):
                    raise PermissionDenied(refusal)
        token = _viewer.set(request)
        try:
            response = super().changeform_view(request, object_id, form_url, extra_context)
            return response.render() if hasattr(response, "render") else response
        finally:
            _viewer.reset(token)

    def _decide(self, request, suggestions, *, accept: bool) -> None:
        decide = suggestion_accept if accept else suggestion_reject
        done = 0
        for suggestion in suggestions:
            try:
                decide(suggestion_id=suggestion.pk, actor=_actor(request))
                done += 1
            except ReviewError as exc:
                self.message_user(request, str(exc), messages.ERROR)
        if done:
            what = (
                "accepted: the profiles were merged"
                if accept
                else "rejected: the records will never be linked"
            )
            self.message_user(request, f"{done} suggestion(s) {what}.", messages.SUCCESS)

    @admin.action(description="Accept selected: same person (merge the profiles)", permissions=["change"])
    def accept_selected(self, request, queryset):
        self._decide(request, list(queryset.order_by("-probability", "pk")), accept=True)

    @admin.action(description="Reject selected: different people (never link)", permissions=["change"])
    def reject_selected(self, request, queryset):
        self._decide(request, list(queryset.order_by("-probability", "pk")), accept=False)


# --- Never-link pairs and splits (audit) ---------------------------------------------------------------


@admin.register(NeverLink)
class NeverLinkAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "record_a_link", "record_b_link", "reason", "actor")
    list_filter = ("reason",)
    list_select_related = ("record_a__source", "record_b__source")
    search_fields = ("=record_a__external_id", "=record_b__external_id")
    search_help_text = "A record's external id, exactly."
    fields = list_display
    readonly_fields = fields

    @admin.display(description="record", ordering="record_a")
    def record_a_link(self, obj) -> str:
        return admin_link(SourceRecord, obj.record_a_id, _record_label(obj.record_a))

    @admin.display(description="is never linked with", ordering="record_b")
    def record_b_link(self, obj) -> str:
        return admin_link(SourceRecord, obj.record_b_id, _record_label(obj.record_b))


@admin.register(ProfileSplit)
class ProfileSplitAdmin(ReadOnlyAdmin):
    """The unmerge audit: immutable, like the merge audit."""

    list_display = ("created_at", "profile_link", "new_profile_link", "moved", "actor", "reason")
    search_fields = ("profile__id", "new_profile__id")  # matched by get_search_results
    search_help_text = "A profile id: every split it took part in."
    fields = ("created_at", "profile_link", "new_profile_link", "actor", "reason", "moved_records")
    readonly_fields = fields

    @admin.display(description="split profile", ordering="profile")
    def profile_link(self, obj) -> str:
        return admin_link(Profile, obj.profile_id)

    @admin.display(description="new profile", ordering="new_profile")
    def new_profile_link(self, obj) -> str:
        return admin_link(Profile, obj.new_profile_id)

    @admin.display(description="records moved")
    def moved(self, obj) -> str:
        return ", ".join(f"{r['source']}:{r['external_id']}" for r in obj.records)

    @admin.display(description="records moved")
    def moved_records(self, obj) -> str:
        return format_html(
            "<table><thead><tr><th>Record</th><th>Identifiers both halves carry (kept on the split profile)"
            "</th></tr></thead><tbody>{}</tbody></table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td></tr>",
                (
                    (
                        admin_link(SourceRecord, r["id"], f"{r['source']}:{r['external_id']}"),
                        ", ".join(f"{k}:{v}" for k, v in r.get("identifiers_kept_on_original", [])) or "-",
                    )
                    for r in obj.records
                ),
            ),
        )

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        profile_id = _search_uuid(search_term)
        if profile_id is None:
            return queryset.none(), False
        return queryset.filter(Q(profile_id=profile_id) | Q(new_profile_id=profile_id)), False


# --- Unmerge page and the Customer 360 actions ---------------------------------------------------------


class UnmergeForm(forms.Form):
    records = forms.TypedMultipleChoiceField(
        coerce=int,
        widget=forms.CheckboxSelectMultiple,
        label="Records to move to a new profile",
        help_text="They take the identifiers only they carry, their history and their events. At least one "
        "record stays.",
    )
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        max_length=2000,
        help_text="Why: kept in the audit entry.",
    )

    def __init__(self, *args, records, rules, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["records"].choices = [
            (
                record.pk,
                format_html(
                    "<strong>{}</strong> {}",
                    _record_label(record),
                    ", ".join(f"{k}: {v}" for k, v in mask_attributes(record.attributes, rules).items()),
                ),
            )
            for record in records
        ]


def profile_unmerge_view(model_admin, request, object_id: str):
    """Choose records of a profile to move to a new one; POST splits it (``profile_unmerge``)."""
    if not request.user.has_perm(UNMERGE_PERMISSION):
        raise PermissionDenied
    profile = profile_get(profile_id=object_id)
    if profile is None:
        raise Http404("No such profile.")
    if str(profile.pk) != str(object_id):
        return HttpResponseRedirect(reverse("admin:profiles_profile_unmerge", args=[profile.pk]))
    if refusal := profile_read(request=request, profile=profile, view="admin:unmerge"):
        raise PermissionDenied(refusal)
    rules = masking_rules_for(request.user)
    records = list(
        SourceRecord.objects.filter(profile=profile, deleted_at__isnull=True)
        .select_related("source")
        .order_by("-source__trust_rank", "source__slug", "external_id")
    )
    form = UnmergeForm(request.POST or None, records=records, rules=rules)
    if request.method == "POST" and form.is_valid():
        try:
            new = profile_unmerge(
                profile_id=profile.pk,
                record_ids=form.cleaned_data["records"],
                actor=_actor(request),
                reason=form.cleaned_data["reason"].strip(),
            )
        except UnmergeInvalid as exc:
            form.add_error("records" if exc.field == "records" else None, exc.reason)
        else:
            model_admin.message_user(
                request,
                f"Split: {len(form.cleaned_data['records'])} record(s) moved to this new profile; they will "
                "not be linked with the records that stayed.",
                messages.SUCCESS,
            )
            return HttpResponseRedirect(admin_change_url(Profile, new.pk))
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": Profile._meta,
        "title": f"Unmerge {_masked_name(profile, rules)}",
        "original": profile,
        "profile_name": _masked_name(profile, rules),
        "form": form,
        "record_count": len(records),
    }
    return TemplateResponse(request, "admin/profiles/profile/unmerge.html", context)


def profile_actions(*, request, profile: Profile, record_count: int) -> list[dict]:
    """What this user may do with the profile from its page; actions the role does not allow are left out."""
    if profile.merged_into_id is not None:
        return []
    user, actions = request.user, []
    if user.has_perm(UNMERGE_PERMISSION) and record_count > 1:
        actions.append(
            {
                "id": "unmerge",
                "label": "Unmerge…",
                "url": reverse("admin:profiles_profile_unmerge", args=[profile.pk]),
            }
        )
    if user.has_perm("profiles.view_matchsuggestion"):
        count = suggestions_open_count(profile_id=profile.pk)
        actions.append(
            {
                "id": "review",
                "label": f"Review suggestions ({count})",
                "url": admin_changelist_url(MatchSuggestion, status__exact="open", q=profile.pk),
            }
        )
    if user.has_perm(DSR_ADD_PERMISSION):
        try:
            url = reverse("admin:consent_datasubjectrequest_add")
        except NoReverseMatch:  # consent not installed
            url = ""
        if url:
            actions.append(
                {"id": "dsr", "label": "Open a data-subject request", "url": f"{url}?profile={profile.pk}"}
            )
    return actions
