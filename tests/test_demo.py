"""The demo a newcomer sees first (``./dev.sh demo``) shows what the product promises."""

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from ingestion.models import Source
from profiles.models import Identity, MergeEvent, Profile, SourceRecord

pytestmark = pytest.mark.django_db


def demo_load(**options) -> str:
    out = StringIO()
    call_command("demo_load", stdout=out, **options)
    return out.getvalue()


def lookup(client, **params) -> dict:
    response = client.get("/api/v1/profiles/lookup", params)
    assert response.status_code == 200, response.content
    return response.json()


def test_demo_creates_four_sources_and_fewer_profiles_than_records():
    demo_load(admin_password="demo-pass-1")

    assert set(Source.objects.values_list("slug", "kind")) == {
        ("crm", "crm"),
        ("erp", "erp"),
        ("web", "web"),
        ("social", "social"),
    }
    records = SourceRecord.objects.filter(deleted_at__isnull=True).count()
    profiles = Profile.objects.filter(status=Profile.Status.ACTIVE).count()
    assert 40 <= profiles < records
    assert any(
        len({lineage["source"] for lineage in profile.lineage.values()}) >= 3
        for profile in Profile.objects.filter(status=Profile.Status.ACTIVE)
    ), "no golden record takes values from three or more sources"


def test_demo_people_resolve_across_spellings(staff_client):
    demo_load(admin_password="demo-pass-1")

    by_phone = lookup(staff_client, type="phone", value="+1 (415) 555-0132")
    assert lookup(staff_client, type="phone", value="415.555.0132")["id"] == by_phone["id"]
    assert {r["source"] for r in by_phone["records"]} == {"crm", "erp", "web", "social"}
    assert by_phone["attributes"]["first_name"]["value"] == "Jonathan"  # the CRM outranks the others

    uk = lookup(staff_client, type="phone", value="07700 900456", region="GB")
    assert lookup(staff_client, type="phone", value="+44 7700 900456")["id"] == uk["id"]

    # Oliver's web sign-up carries his CRM email and the phone of his social account as "Olly": one person.
    oliver = lookup(staff_client, type="email", value="oliver.bennett@example.net")
    assert {(r["source"], r["external_id"]) for r in oliver["records"]} == {
        ("crm", "C-1010"),
        ("social", "S-7003"),
        ("web", "W-9004"),
    }

    # The ERP account's billing email is a shared mailbox; its reference to the CRM contact links it.
    priya = lookup(staff_client, type="crm", value="C-1007")
    assert {(r["source"], r["external_id"]) for r in priya["records"]} >= {
        ("crm", "C-1007"),
        ("erp", "E-50005"),
    }


def test_demo_person_with_a_changed_email_is_one_profile_with_both(staff_client):
    demo_load(admin_password="demo-pass-1")

    new = lookup(staff_client, type="email", value="maria.rossi@example.com")
    old = lookup(staff_client, type="email", value="M.Rossi@example.org")

    assert new["id"] == old["id"]
    emails = {i["value"] for i in new["identities"] if i["type"] == "email"}
    assert emails == {"maria.rossi@example.com", "m.rossi@example.org"}
    assert new["attributes"]["email"]["value"] == "maria.rossi@example.com"
    assert new["attributes"]["email"]["source"] == "crm"


def test_demo_rerun_adds_nothing():
    demo_load(admin_password="demo-pass-1")
    counts = [model.objects.count() for model in (Source, SourceRecord, Profile, Identity, MergeEvent)]

    output = demo_load(admin_password="demo-pass-1")

    assert [
        model.objects.count() for model in (Source, SourceRecord, Profile, Identity, MergeEvent)
    ] == counts
    assert "created" not in output.split("This run:")[1].splitlines()[0]


def test_demo_prints_a_working_admin_login_and_web_shop_key():
    output = demo_load()  # a generated password
    password = re.search(r"user admin, password (\S+)", output).group(1)
    key = re.search(r"Bearer (sk_\S+?)'", output).group(1)

    browser = Client()
    response = browser.post("/admin/login/?next=/admin/", {"username": "admin", "password": password})
    assert response.status_code == 302 and response.url == "/admin/"
    assert browser.get("/admin/").status_code == 200

    api = Client(headers={"Authorization": f"Bearer {key}"})
    response = api.get("/api/v1/profiles/lookup", {"type": "phone", "value": "415.555.0132"})
    assert response.status_code == 200
    assert response.json()["display_name"] == "Jonathan Smith"
