"""The access log: every read of a profile by staff, through the API or the admin, and who may list it; and
the restriction of processing keeping restricted people out of what source systems receive."""

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from consent.models import ProfileAccess
from profiles.models import Profile

pytestmark = pytest.mark.django_db


@pytest.fixture
def officer(django_user_model, vocabulary):
    user = django_user_model.objects.create_user("olivia", password="officer-pass-1", is_staff=True)
    user.groups.add(Group.objects.get(name="privacy officer"))
    return user


@pytest.fixture
def officer_api(officer):
    client = APIClient()
    client.force_login(officer)
    return client


@pytest.fixture
def ada(vocabulary, crm, ingest):
    ingest(crm, [{"external_id": "C-1", "attributes": {"first_name": "Ada", "email": "ada@example.com"}}])
    return Profile.objects.get()


def reads(profile=None):
    rows = ProfileAccess.objects.order_by("id")
    if profile is not None:
        rows = rows.filter(profile_id=profile.pk)
    return list(rows.values_list("username", "view"))


@pytest.mark.parametrize(
    ("path", "view"),
    [
        ("/api/v1/profiles/{id}", "api:profile-detail"),
        ("/api/v1/profiles/{id}/timeline", "api:profile-timeline"),
        ("/api/v1/profiles/{id}/consents", "api:profile-consents"),
        ("/api/v1/profiles/lookup?type=email&value=ADA@example.com", "api:profile-lookup"),
    ],
)
def test_each_read_of_a_profile_through_the_api_is_logged_with_one_insert(ada, staff_client, path, view):
    # when a data steward reads Ada's profile
    with CaptureQueriesContext(connection) as queries:
        response = staff_client.get(path.format(id=ada.pk))
    assert response.status_code == 200, response.content
    # then the read is in the log: who, which profile, which view, when
    assert reads(ada) == [("staff", view)]
    assert ProfileAccess.objects.get().user.username == "staff"
    # with one insert
    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("INSERT")]
    assert len(inserts) == 1 and "profileaccess" in inserts[0].casefold()


def test_lists_and_failed_reads_are_not_reads_of_a_profile(ada, staff_client):
    assert staff_client.get("/api/v1/profiles").status_code == 200
    assert (
        staff_client.get("/api/v1/profiles/lookup", {"type": "email", "value": "nobody@x.org"}).status_code
        == 404
    )
    assert staff_client.get(f"/api/v1/profiles/{ada.pk}/timeline", {"kind": "nonsense"}).status_code == 400
    assert reads() == []


def test_reads_by_source_systems_are_not_staff_reads(ada, consent_client):
    assert consent_client.get(f"/api/v1/profiles/{ada.pk}").status_code == 200
    assert reads() == []


def test_the_customer_360_page_in_the_admin_is_logged(ada, officer, client):
    client.force_login(officer)
    response = client.get(f"/admin/profiles/profile/{ada.pk}/change/")
    assert response.status_code == 200
    assert reads(ada) == [("olivia", "admin:customer-360")]
    # the list of profiles is not a read of one
    client.get("/admin/profiles/profile/")
    assert len(reads()) == 1


def test_the_customer_360_page_shows_privacy_officers_the_latest_reads(ada, officer, staff_user, client):
    # a data steward's page has no access log section
    client.force_login(staff_user)
    assert b"Access log" not in client.get(f"/admin/profiles/profile/{ada.pk}/change/").content
    # the privacy officer's shows both reads: the steward's and this one
    client.force_login(officer)
    page = client.get(f"/admin/profiles/profile/{ada.pk}/change/").content.decode()
    assert "Access log (the latest 2 of 2 reads by staff)" in page
    assert page.count("admin:customer-360") == 2 and "olivia" in page


def test_a_privacy_officer_lists_who_looked_at_a_person(ada, staff_client, officer_api):
    # given two reads by a data steward
    staff_client.get(f"/api/v1/profiles/{ada.pk}")
    staff_client.get(f"/api/v1/profiles/{ada.pk}/timeline")
    # when the privacy officer asks
    answer = officer_api.get(f"/api/v1/profiles/{ada.pk}/access-log")
    # then both are listed, newest first (asking is not itself a read of the profile)
    assert answer.status_code == 200, answer.content
    results = answer.json()["results"]
    assert [(r["user"], r["view"]) for r in results] == [
        ("staff", "api:profile-timeline"),
        ("staff", "api:profile-detail"),
    ]
    assert results[0]["profile"] == str(ada.pk) and results[0]["accessed_at"]
    assert len(reads()) == 2


def test_the_access_log_is_for_privacy_officers_only(ada, staff_client, consent_client, officer_api):
    assert staff_client.get(f"/api/v1/profiles/{ada.pk}/access-log").status_code == 403  # a data steward
    assert consent_client.get(f"/api/v1/profiles/{ada.pk}/access-log").status_code == 403  # a source key
    assert APIClient().get(f"/api/v1/profiles/{ada.pk}/access-log").status_code in (401, 403)
    missing = officer_api.get("/api/v1/profiles/00000000-0000-0000-0000-000000000000/access-log")
    assert missing.status_code == 404


def test_the_log_of_a_merged_profile_includes_the_reads_of_the_merged_away_ids(
    vocabulary, crm, erp, ingest, staff_client, officer_api
):
    # given two profiles, each read once
    ingest(crm, [{"external_id": "C-7", "attributes": {"email": "kit@example.com"}}])
    ingest(erp, [{"external_id": "E-7", "attributes": {"phone": "+442079460001"}}])
    first, second = Profile.objects.order_by("created_at")
    staff_client.get(f"/api/v1/profiles/{first.pk}")
    staff_client.get(f"/api/v1/profiles/{second.pk}/timeline")
    # when a record holding both identifiers merges them
    ingest(
        crm, [{"external_id": "C-8", "attributes": {"email": "kit@example.com", "phone": "+442079460001"}}]
    )
    survivor = Profile.objects.get(status="active")
    assert Profile.objects.filter(merged_into=survivor).exists()
    # then the survivor's log holds both reads, and the merged-away id answers the same
    for asked in (first.pk, second.pk):
        views = {r["view"] for r in officer_api.get(f"/api/v1/profiles/{asked}/access-log").json()["results"]}
        assert views == {"api:profile-detail", "api:profile-timeline"}


def test_the_access_log_admin_is_read_only_and_finds_a_person_by_profile_id(
    ada, staff_client, officer, client
):
    staff_client.get(f"/api/v1/profiles/{ada.pk}")
    client.force_login(officer)
    listing = client.get("/admin/consent/profileaccess/", {"q": str(ada.pk)})
    assert listing.status_code == 200 and b"api:profile-detail" in listing.content
    assert (
        client.get("/admin/consent/profileaccess/", {"view__exact": "admin:customer-360"}).status_code == 200
    )
    assert client.get("/admin/consent/profileaccess/add/").status_code == 403
    entry = ProfileAccess.objects.get()
    assert client.post(f"/admin/consent/profileaccess/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert ProfileAccess.objects.count() == 1


def test_the_access_export_includes_the_access_log(ada, staff_client, dsr):
    staff_client.get(f"/api/v1/profiles/{ada.pk}")
    opened = dsr(
        "post",
        "",
        {"type": "access", "identifier": {"type": "email", "value": "ada@example.com"}},
        expect=201,
    )
    dsr("post", f"/{opened['id']}/verify", {"method": "email link"})
    dsr("post", f"/{opened['id']}/execute")
    export = dsr("get", f"/{opened['id']}/export")
    views = [(row["user"], row["view"]) for row in export["access_log"]]
    # the steward's read, and the officer's read of the export itself
    assert views[0] == ("staff", "api:profile-detail")
    assert ("officer", "api:dsr-export") in views
    assert all(row["profile"] == str(ada.pk) for row in export["access_log"])


# --- Restriction of processing ------------------------------------------------------------------------------


@pytest.fixture
def restricted(ada, crm, ingest, dsr):
    """Ada restricted processing; Ben, someone else, did not."""
    ingest(crm, [{"external_id": "C-2", "attributes": {"first_name": "Ben", "email": "ben@example.com"}}])
    opened = dsr(
        "post",
        "",
        {"type": "restriction", "identifier": {"type": "email", "value": "ada@example.com"}},
        expect=201,
    )
    dsr("post", f"/{opened['id']}/verify", {"method": "email link"})
    dsr("post", f"/{opened['id']}/execute")
    return opened


def test_source_systems_do_not_receive_a_restricted_profile(restricted, ada, consent_client):
    # the list a source system pulls leaves Ada out
    listed = consent_client.get("/api/v1/profiles").json()["results"]
    assert [p["display_name"] for p in listed] == ["Ben"]
    # and reading her one by one is refused with the reason
    for path in (
        f"/api/v1/profiles/{ada.pk}",
        f"/api/v1/profiles/{ada.pk}/timeline",
        f"/api/v1/profiles/{ada.pk}/consents",
        "/api/v1/profiles/lookup?type=email&value=ada@example.com",
    ):
        response = consent_client.get(path)
        assert response.status_code == 403, path
        assert "restricted" in response.json()["errors"][0]["reason"]


def test_staff_still_read_a_restricted_profile_and_lifting_restores_it(
    restricted, ada, staff_client, consent_client, dsr
):
    assert staff_client.get(f"/api/v1/profiles/{ada.pk}").status_code == 200
    assert len(staff_client.get("/api/v1/profiles").json()["results"]) == 2
    dsr("post", f"/{restricted['id']}/lift", {"note": "dispute settled"})
    assert consent_client.get(f"/api/v1/profiles/{ada.pk}").status_code == 200
    assert len(consent_client.get("/api/v1/profiles").json()["results"]) == 2


def test_the_persons_own_export_is_not_blocked_by_the_restriction(restricted, dsr):
    opened = dsr(
        "post",
        "",
        {"type": "access", "identifier": {"type": "email", "value": "ada@example.com"}},
        expect=201,
    )
    dsr("post", f"/{opened['id']}/verify", {"method": "email link"})
    dsr("post", f"/{opened['id']}/execute")
    export = dsr("get", f"/{opened['id']}/export")
    assert export["profiles"] and export["identities"] == [
        {"type": "crm", "value": "C-1", "profile": export["profiles"][0]["id"]},
        {"type": "email", "value": "ada@example.com", "profile": export["profiles"][0]["id"]},
    ]


def test_a_restriction_follows_the_person_into_a_merge(restricted, ada, crm, erp, ingest, consent_client):
    # when Ada's profile is merged into another (she becomes the tombstone or the survivor)
    ingest(erp, [{"external_id": "E-1", "attributes": {"phone": "+442079460002"}}])
    ingest(
        crm, [{"external_id": "C-3", "attributes": {"email": "ada@example.com", "phone": "+442079460002"}}]
    )
    survivor = Profile.objects.get(pk=ada.pk)
    survivor = survivor.merged_into or survivor
    # then source systems still do not receive her
    assert consent_client.get(f"/api/v1/profiles/{survivor.pk}").status_code == 403
    names = [p["display_name"] for p in consent_client.get("/api/v1/profiles").json()["results"]]
    assert "Ada" not in names and "Ben" in names
