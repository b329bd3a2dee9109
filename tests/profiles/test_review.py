"""The review queue: data stewards accept or reject suggested matches, over the API and in the admin."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from cdp import roles
from profiles.models import MatchSuggestion, MergeEvent, NeverLink, ResolutionConflict, SourceRecord
from profiles.services.merge import MergeRefused, profiles_merge
from profiles.services.review import (
    SuggestionClosed,
    SuggestionNotFound,
    SuggestionRefused,
    suggestion_accept,
    suggestion_reject,
)

EXPLANATION = {
    "outcome": "review",
    "reason": "probability 0.8123 between the thresholds",
    "probability": 0.8123,
    "total_weight": 2.1,
    "prior_weight": -8.5,
    "fields": [
        {"field": "first_name", "level": "nickname", "weight": 3.2},
        {"field": "last_name", "level": "exact", "weight": 6.1},
        {"field": "address_line1", "level": "fuzzy", "weight": 2.4},
        {"field": "birth_date", "level": "missing", "weight": 0.0},
    ],
}


@pytest.fixture(autouse=True)
def _rules(seeded_identifier_rules):
    """The seeded email and phone rules."""


def record(source, external_id) -> SourceRecord:
    return SourceRecord.objects.get(source=source, external_id=external_id)


@pytest.fixture
def jon_and_jonathan(crm, erp, ingest):
    """Jon Smith (CRM) and Jonathan Smith (ERP): no shared identifier, two profiles, one suggestion."""
    ingest(
        crm,
        [
            {
                "external_id": "C1",
                "attributes": {"first_name": "Jon", "last_name": "Smith", "email": "jon@example.org"},
            }
        ],
    )
    ingest(
        erp,
        [
            {
                "external_id": "E1",
                "attributes": {"first_name": "Jonathan", "last_name": "Smith", "phone": "(202) 555-0143"},
            }
        ],
    )
    return suggest(record(erp, "E1"), record(crm, "C1"), 0.8123)


def suggest(new, existing, probability) -> MatchSuggestion:
    return MatchSuggestion.objects.create(
        record=new,
        candidate_record=existing,
        profile_id=new.profile_id,
        candidate_profile_id=existing.profile_id,
        probability=probability,
        explanation={**EXPLANATION, "probability": probability},
    )


def staff(django_user_model, name, *, role=None, permissions=()):
    user = django_user_model.objects.create_user(name, is_staff=True)
    if role:
        user.groups.add(Group.objects.get(name=role))
    for permission in permissions:
        app_label, codename = permission.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


# --- Services ------------------------------------------------------------------------------------------


def test_accepting_merges_the_two_profiles_with_the_explanation_as_evidence(jon_and_jonathan, crm, erp):
    jon = record(crm, "C1").profile

    decided = suggestion_accept(suggestion_id=jon_and_jonathan.pk, actor="staff:steward")

    assert record(erp, "E1").profile == jon == record(crm, "C1").profile
    merge = MergeEvent.objects.get()
    assert (merge.survivor, merge.rule, merge.actor) == (jon, "review:accepted", "staff:steward")
    assert merge.evidence["fields"] == EXPLANATION["fields"]
    assert merge.evidence["suggestion"] == jon_and_jonathan.pk
    assert (decided.status, decided.decided_by) == ("accepted", "staff:steward")
    assert decided.decided_at is not None
    jon.refresh_from_db()
    assert jon.golden["phone"] == "+12025550143" and jon.golden["email"] == "jon@example.org"


def test_rejecting_records_a_never_link_pair_the_resolver_respects(jon_and_jonathan, crm, erp, ingest):
    decided = suggestion_reject(suggestion_id=jon_and_jonathan.pk, actor="staff:steward")

    c1, e1 = record(crm, "C1"), record(erp, "E1")
    assert decided.status == "rejected"
    pair = NeverLink.objects.get()
    assert (pair.record_a_id, pair.record_b_id, pair.reason, pair.actor) == (
        min(c1.pk, e1.pk),
        max(c1.pk, e1.pk),
        "review:rejected",
        "staff:steward",
    )
    # Later the ERP sends Jon's email too: the steward's decision holds.
    ingest(erp, [{"external_id": "E1", "attributes": {"first_name": "Jonathan", "email": "jon@example.org"}}])

    assert record(erp, "E1").profile != record(crm, "C1").profile
    assert "never link, review:rejected" in ResolutionConflict.objects.get(record=e1).reason
    with pytest.raises(MergeRefused, match="never link"):
        profiles_merge(profile_ids=[c1.profile_id, e1.profile_id], rule="test", evidence={})


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (suggestion_accept, suggestion_accept),
        (suggestion_accept, suggestion_reject),
        (suggestion_reject, suggestion_reject),
        (suggestion_reject, suggestion_accept),
    ],
)
def test_a_suggestion_is_decided_once(jon_and_jonathan, first, second):
    first(suggestion_id=jon_and_jonathan.pk, actor="staff:a")

    with pytest.raises(SuggestionClosed, match="already decided by staff:a"):
        second(suggestion_id=jon_and_jonathan.pk, actor="staff:b")

    jon_and_jonathan.refresh_from_db()
    assert jon_and_jonathan.decided_by == "staff:a"


def test_an_unknown_suggestion_is_an_error(db):
    with pytest.raises(SuggestionNotFound):
        suggestion_accept(suggestion_id=12345, actor="t")


def test_a_suggestion_whose_records_became_one_profile_is_obsolete(jon_and_jonathan, crm, erp, ingest):
    ingest(erp, [{"external_id": "E1", "attributes": {"first_name": "Jonathan", "email": "jon@example.org"}}])
    assert record(erp, "E1").profile == record(crm, "C1").profile

    with pytest.raises(SuggestionClosed, match="obsolete: its records are on one profile already"):
        suggestion_accept(suggestion_id=jon_and_jonathan.pk, actor="staff:a")

    jon_and_jonathan.refresh_from_db()
    assert jon_and_jonathan.status == "obsolete"
    with pytest.raises(SuggestionClosed, match="already decided"):
        suggestion_reject(suggestion_id=jon_and_jonathan.pk, actor="staff:a")


def test_a_suggestion_whose_record_was_deleted_is_obsolete(
    jon_and_jonathan, erp, django_capture_on_commit_callbacks
):
    from ingestion.services import record_delete_receive

    with django_capture_on_commit_callbacks(execute=True):
        record_delete_receive(source=erp, external_id="E1")

    with pytest.raises(SuggestionClosed, match="deleted"):
        suggestion_reject(suggestion_id=jon_and_jonathan.pk, actor="staff:a")
    assert not NeverLink.objects.exists()


def test_accepting_is_refused_when_a_never_link_pair_stands_in_the_way(
    jon_and_jonathan, crm, erp, web, ingest
):
    # The web record of the ERP person's profile was split from Jon's CRM record before.
    ingest(web, [{"external_id": "W1", "attributes": {"phone": "202 555 0143"}}])
    c1, w1 = record(crm, "C1"), record(web, "W1")
    assert w1.profile == record(erp, "E1").profile
    NeverLink.objects.create(record_a_id=min(c1.pk, w1.pk), record_b_id=max(c1.pk, w1.pk), reason="unmerge")

    with pytest.raises(SuggestionRefused, match="never link"):
        suggestion_accept(suggestion_id=jon_and_jonathan.pk, actor="staff:a")

    jon_and_jonathan.refresh_from_db()
    assert jon_and_jonathan.status == "open"
    assert not MergeEvent.objects.exists()


def test_deciding_settles_the_other_suggestions_between_the_same_profiles(
    jon_and_jonathan, crm, erp, web, ingest
):
    ingest(web, [{"external_id": "W1", "attributes": {"phone": "202 555 0143"}}])
    twin = suggest(record(web, "W1"), record(crm, "C1"), 0.7)

    suggestion_reject(suggestion_id=jon_and_jonathan.pk, actor="staff:a")

    twin.refresh_from_db()
    assert (twin.status, twin.decided_by) == ("obsolete", "staff:a")


# --- API -----------------------------------------------------------------------------------------------


def test_the_queue_lists_open_suggestions_most_probable_first(
    jon_and_jonathan, crm, erp, web, ingest, staff_client
):
    ingest(web, [{"external_id": "W1", "attributes": {"first_name": "J.", "last_name": "Smith"}}])
    weaker = suggest(record(web, "W1"), record(crm, "C1"), 0.61)
    decided = suggest(record(web, "W1"), record(erp, "E1"), 0.95)
    suggestion_reject(suggestion_id=decided.pk, actor="t")

    response = staff_client.get("/api/v1/match-suggestions", {"status": "open"})

    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["id"] for r in results] == [jon_and_jonathan.pk, weaker.pk]
    first = results[0]
    assert first["explanation"]["fields"][0] == {"field": "first_name", "level": "nickname", "weight": 3.2}
    assert first["record"]["source"] == "erp" and first["record"]["external_id"] == "E1"
    assert first["record"]["profile_name"] == "Jonathan Smith"
    assert first["candidate_record"]["profile_name"] == "Jon Smith"


def test_the_queue_filters_by_status_and_by_profile_and_pages_with_a_cursor(
    jon_and_jonathan, crm, erp, web, ingest, staff_client
):
    ingest(web, [{"external_id": "W1", "attributes": {"first_name": "Ann", "last_name": "Other"}}])
    other = suggest(record(web, "W1"), record(erp, "E1"), 0.51)
    jon = record(crm, "C1").profile_id

    mine = staff_client.get("/api/v1/match-suggestions", {"profile": str(jon)}).json()["results"]
    assert [r["id"] for r in mine] == [jon_and_jonathan.pk]

    suggestion_reject(suggestion_id=jon_and_jonathan.pk, actor="t")
    open_ones = staff_client.get("/api/v1/match-suggestions", {"status": "open"}).json()["results"]
    assert [r["id"] for r in open_ones] == [other.pk]

    page = staff_client.get("/api/v1/match-suggestions", {"page_size": 1}).json()
    assert len(page["results"]) == 1 and page["next"]
    rest = staff_client.get(page["next"]).json()
    assert [r["id"] for r in rest["results"]] == [other.pk]


@pytest.mark.parametrize(
    ("params", "field"), [({"status": "maybe"}, "status"), ({"profile": "x"}, "profile")]
)
def test_bad_filters_are_a_400_naming_the_field(jon_and_jonathan, staff_client, params, field):
    response = staff_client.get("/api/v1/match-suggestions", params)

    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["field"] == field


def test_names_are_masked_as_the_user_sees_profiles(jon_and_jonathan, crm, ingest, django_user_model):
    ingest(crm, [{"external_id": "C2", "attributes": {"email": "someone@example.org"}}])
    nameless = suggest(record(crm, "C2"), record(crm, "C1"), 0.9)
    # Staff without a role but with the permission: masking fails closed to the support agent's rules.
    reader = staff(django_user_model, "reader", permissions=["profiles.view_matchsuggestion"])

    response = api_as(reader).get(f"/api/v1/match-suggestions/{nameless.pk}")

    assert response.status_code == 200, response.content
    assert response.json()["record"]["profile_name"] == "s•••@example.org"
    assert response.json()["candidate_record"]["profile_name"] == "Jon Smith"


def test_accept_and_reject_over_the_api(jon_and_jonathan, crm, erp, web, ingest, staff_client):
    response = staff_client.post(f"/api/v1/match-suggestions/{jon_and_jonathan.pk}/accept")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "accepted"
    assert (
        response.json()["profile"] == str(record(crm, "C1").profile_id) == str(record(erp, "E1").profile_id)
    )

    again = staff_client.post(f"/api/v1/match-suggestions/{jon_and_jonathan.pk}/reject")
    assert again.status_code == 409
    assert again.json()["errors"][0] == {"field": "status", "reason": again.json()["detail"]}

    ingest(web, [{"external_id": "W1", "attributes": {"first_name": "Jo", "last_name": "Smyth"}}])
    other = suggest(record(web, "W1"), record(crm, "C1"), 0.6)
    rejected = staff_client.post(f"/api/v1/match-suggestions/{other.pk}/reject")
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    assert rejected.json()["profile"] is None
    assert NeverLink.objects.filter(reason="review:rejected").count() == 1


def test_a_refused_accept_is_a_409_that_says_why(jon_and_jonathan, crm, erp, web, ingest, staff_client):
    ingest(web, [{"external_id": "W1", "attributes": {"phone": "202 555 0143"}}])
    c1, w1 = record(crm, "C1"), record(web, "W1")
    NeverLink.objects.create(record_a_id=min(c1.pk, w1.pk), record_b_id=max(c1.pk, w1.pk), reason="unmerge")

    response = staff_client.post(f"/api/v1/match-suggestions/{jon_and_jonathan.pk}/accept")

    assert response.status_code == 409
    assert "marked as different people" in response.json()["detail"]


@pytest.mark.parametrize("path", ["/api/v1/match-suggestions/999", "/api/v1/match-suggestions/abc"])
def test_unknown_suggestions_are_a_404(db, staff_client, path):
    assert staff_client.get(path).status_code == 404
    assert staff_client.post(path + "/accept").status_code == 404


def test_reading_and_deciding_need_their_permissions(jon_and_jonathan, django_user_model, erp, source_client):
    agent = api_as(staff(django_user_model, "agent", role=roles.SUPPORT_AGENT))
    reader = api_as(staff(django_user_model, "reader", permissions=["profiles.view_matchsuggestion"]))
    url = f"/api/v1/match-suggestions/{jon_and_jonathan.pk}"

    assert agent.get("/api/v1/match-suggestions").status_code == 403
    assert reader.get(url).status_code == 200
    assert reader.post(url + "/accept").status_code == 403
    assert source_client(erp).get("/api/v1/match-suggestions").status_code == 403
    assert APIClient().get("/api/v1/match-suggestions").status_code in (401, 403)
    jon_and_jonathan.refresh_from_db()
    assert jon_and_jonathan.status == "open"


def test_the_schema_documents_review_and_unmerge(db, staff_client):
    schema = staff_client.get("/api/schema/", {"format": "json"}).json()
    paths = {path.rstrip("/") for path in schema["paths"]}

    assert "/api/v1/match-suggestions" in paths
    assert "/api/v1/match-suggestions/{id}/accept" in paths
    assert "/api/v1/match-suggestions/{id}/reject" in paths
    assert "/api/v1/profiles/{profile_id}/unmerge" in paths


# --- Admin ---------------------------------------------------------------------------------------------


@pytest.fixture
def admin_as(django_user_model):
    def make(role):
        client = Client()
        client.force_login(staff(django_user_model, role.replace(" ", "_"), role=role))
        return client

    return make


def test_the_queue_in_the_admin_shows_the_explanation_as_a_table(jon_and_jonathan, admin_as):
    client = admin_as(roles.DATA_STEWARD)

    listing = client.get(reverse("admin:profiles_matchsuggestion_changelist")).content.decode()
    page = client.get(reverse("admin:profiles_matchsuggestion_change", args=[jon_and_jonathan.pk]))

    assert "0.812" in listing and "erp:E1" in listing and "Jon Smith" in listing
    html = page.content.decode()
    assert '<table class="match-explanation">' in html
    assert "<td>first_name</td><td>nickname</td>" in html and "+3.20" in html
    assert 'name="_accept"' in html and 'name="_reject"' in html
    # The page shows both people's records: both reads are in the access log.
    from consent.models import ProfileAccess

    logged = set(ProfileAccess.objects.filter(view="admin:match-review").values_list("profile_id", flat=True))
    assert logged == {jon_and_jonathan.record.profile_id, jon_and_jonathan.candidate_record.profile_id}


def test_a_steward_accepts_with_the_button_and_rejects_with_the_action(
    jon_and_jonathan, crm, erp, web, ingest, admin_as
):
    client = admin_as(roles.DATA_STEWARD)
    ingest(web, [{"external_id": "W1", "attributes": {"first_name": "Jo", "last_name": "Smyth"}}])
    other = suggest(record(web, "W1"), record(crm, "C1"), 0.6)
    change = reverse("admin:profiles_matchsuggestion_change", args=[jon_and_jonathan.pk])

    response = client.post(change, {"_accept": "1"})

    assert response.status_code == 302
    assert record(erp, "E1").profile == record(crm, "C1").profile
    response = client.post(
        reverse("admin:profiles_matchsuggestion_changelist"),
        {"action": "reject_selected", "_selected_action": [other.pk]},
    )
    assert response.status_code == 302
    other.refresh_from_db()
    assert (other.status, other.decided_by) == ("rejected", "staff:data_steward")


def test_only_stewards_see_or_decide_the_queue(jon_and_jonathan, admin_as):
    agent = admin_as(roles.SUPPORT_AGENT)
    change = reverse("admin:profiles_matchsuggestion_change", args=[jon_and_jonathan.pk])

    assert agent.get(reverse("admin:profiles_matchsuggestion_changelist")).status_code == 403
    assert agent.post(change, {"_accept": "1"}).status_code == 403
    jon_and_jonathan.refresh_from_db()
    assert jon_and_jonathan.status == "open"


def test_the_never_link_and_split_audits_are_read_only_pages(jon_and_jonathan, admin_as):
    suggestion_reject(suggestion_id=jon_and_jonathan.pk, actor="staff:a")
    client = admin_as(roles.DATA_STEWARD)

    listing = client.get(reverse("admin:profiles_neverlink_changelist"))
    assert listing.status_code == 200 and "review:rejected" in listing.content.decode()
    assert client.get(reverse("admin:profiles_profilesplit_changelist")).status_code == 200
    assert client.get(reverse("admin:profiles_neverlink_add")).status_code == 403


def test_the_customer_360_page_offers_the_actions_the_role_allows(
    jon_and_jonathan, crm, erp, web, ingest, admin_as
):
    ingest(web, [{"external_id": "W1", "attributes": {"email": "jon@example.org"}}])
    jon = record(crm, "C1").profile
    url = reverse("admin:profiles_profile_change", args=[jon.pk])
    unmerge = reverse("admin:profiles_profile_unmerge", args=[jon.pk])

    steward = admin_as(roles.DATA_STEWARD).get(url).content.decode()
    agent = admin_as(roles.SUPPORT_AGENT).get(url).content.decode()
    officer = admin_as(roles.PRIVACY_OFFICER).get(url).content.decode()

    assert unmerge in steward and "Review suggestions (1)" in steward
    assert "Open a data-subject request" not in steward
    assert unmerge not in agent and "Review suggestions" not in agent and "data-subject request" not in agent
    assert "Open a data-subject request" in officer and unmerge not in officer


def test_the_data_subject_request_link_opens_a_prefilled_request(jon_and_jonathan, crm, admin_as):
    from consent.models import DataSubjectRequest

    jon = record(crm, "C1").profile
    officer = admin_as(roles.PRIVACY_OFFICER)
    url = f"{reverse('admin:consent_datasubjectrequest_add')}?profile={jon.pk}"

    page = officer.get(url)
    assert page.status_code == 200
    assert "email: jon@example.org" in page.content.decode()

    response = officer.post(
        url, {"type": "access", "regime": "gdpr", "identifiers": "email: jon@example.org"}
    )

    request = DataSubjectRequest.objects.get()
    assert response.status_code == 302
    assert (request.type, request.profile_id, request.created_by) == (
        "access",
        jon.pk,
        "staff:privacy_officer",
    )
    bad = officer.post(url, {"type": "access", "regime": "gdpr", "identifiers": "fax: 1"})
    assert bad.status_code == 200 and "fax" in bad.content.decode()
    assert admin_as(roles.SUPPORT_AGENT).get(url).status_code == 403
