"""The staff admin: every page shows the data, actions call the services, evidence stays read-only."""

import io
import json
import re

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from cdp.models import StaffToken
from ingestion.models import Batch, IdentifierType, InboundRecord, Source, SourceKey
from ingestion.pipeline import pipeline_steps
from profiles.models import MergeEvent, Profile, ResolutionConflict, SourceRecord

KEY_PATTERN = re.compile(r"sk_[0-9a-f]{8}_[A-Za-z0-9_-]+")


def changelist(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def change(obj) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def run_action(client, model, action: str, objects, follow=True):
    return client.post(
        changelist(model),
        {"action": action, "_selected_action": [str(obj.pk) for obj in objects]},
        follow=follow,
    )


def page_messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def fail_processing(batch):
    raise RuntimeError("resolver unavailable")


@pytest.fixture
def broken_pipeline(settings):
    """Processing fails until the returned function repairs it."""
    original = list(settings.CDP_PIPELINE)
    settings.CDP_PIPELINE = ["tests.test_admin.fail_processing"]
    pipeline_steps.cache_clear()

    def repair():
        settings.CDP_PIPELINE = original
        pipeline_steps.cache_clear()

    yield repair
    pipeline_steps.cache_clear()


@pytest.fixture
def world(make_source, ingest, admin_user):
    """Jon, seen by a CRM, an ERP and a web shop (whose record merged the first two); Ada; Grace, whose
    second email broke the one-email rule; a record rejected for a bad email; a staff token."""
    crm, erp, web = make_source("crm", "crm"), make_source("erp", "erp"), make_source("web", "web")
    ingest(
        crm,
        [
            {
                "external_id": "C1",
                "attributes": {"first_name": "Jon", "last_name": "Smith", "email": "Jon@Example.org"},
            },
            {
                "external_id": "C2",
                "attributes": {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.org"},
            },
            {"external_id": "C3", "attributes": {"first_name": "Bad", "email": "not an email"}},
        ],
    )
    ingest(erp, [{"external_id": "E1", "attributes": {"first_name": "Jonathan", "phone": "+1 415 555 0100"}}])
    ingest(
        web, [{"external_id": "W1", "attributes": {"email": "jon@example.org", "phone": "(415) 555-0100"}}]
    )
    IdentifierType.objects.filter(name="email").update(max_per_profile=1)
    ingest(
        crm,
        [
            {
                "external_id": "C4",
                "attributes": {"first_name": "Grace", "email": "grace@example.org"},
                "identifiers": {"email": ["grace@navy.mil"]},
            }
        ],
    )
    IdentifierType.objects.filter(name="email").update(max_per_profile=5)
    call_command("token_create", admin_user.username, "--name", "laptop", stdout=io.StringIO())
    jon = Profile.objects.get(identities__type="email", identities__value="jon@example.org")
    return {"crm": crm, "erp": erp, "web": web, "jon": jon}


# --- Every page ----------------------------------------------------------------------------------------


PAGES = [
    (Source, lambda w: w["crm"], "crm"),
    (SourceKey, lambda w: SourceKey.objects.filter(source=w["crm"]).first(), None),
    (StaffToken, lambda w: StaffToken.objects.get(), "laptop"),
    (IdentifierType, lambda w: IdentifierType.objects.get(name="email"), "test@example.com"),
    (Batch, lambda w: Batch.objects.filter(source=w["erp"]).first(), "Erp"),
    (InboundRecord, lambda w: InboundRecord.objects.get(external_id="C3"), "not a valid email address"),
    (Profile, lambda w: w["jon"], "Jon Smith"),
    (SourceRecord, lambda w: SourceRecord.objects.get(external_id="W1"), "W1"),
    (MergeEvent, lambda w: MergeEvent.objects.get(), "deterministic:"),
    (ResolutionConflict, lambda w: ResolutionConflict.objects.get(), "grace@navy.mil"),
]


@pytest.mark.parametrize(("model", "pick", "text"), PAGES, ids=[p[0].__name__ for p in PAGES])
def test_list_and_detail_pages_show_the_data(admin_client, world, model, pick, text):
    obj = pick(world)
    text = text or obj.prefix

    listing = admin_client.get(changelist(model))
    detail = admin_client.get(change(obj))

    assert listing.status_code == 200
    assert text in listing.content.decode()
    assert detail.status_code == 200
    assert text in detail.content.decode()


def test_the_admin_is_branded(admin_client, db):
    response = admin_client.get(reverse("admin:index"))

    assert "Customer Data Platform" in response.content.decode()


def test_staff_who_may_only_look_cannot_issue_keys_or_replay_records(client, staff_user, make_source):
    staff_user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_source", "view_inboundrecord", "view_sourcekey"])
    )
    client.force_login(staff_user)

    sources = client.get(changelist(Source)).content.decode()
    quarantine = client.get(changelist(InboundRecord)).content.decode()
    keys = client.get(changelist(SourceKey)).content.decode()

    assert "crm" in sources and "Issue a new API key" not in sources
    assert "Reprocess selected" not in quarantine
    assert "Revoke selected keys" not in keys


# --- Sources and keys ----------------------------------------------------------------------------------


def test_a_source_added_in_the_admin_gets_its_identifier_rule_and_kind_defaults(admin_client, db):
    response = admin_client.post(
        reverse("admin:ingestion_source_add"),
        {
            "slug": "shop",
            "name": "",
            "kind": "web",
            "trust_rank": "",
            "default_region": "gb",
            "field_mapping": "{}",
        },
    )

    assert response.status_code == 302, response.content
    shop = Source.objects.get(slug="shop")
    assert (shop.name, shop.trust_rank, shop.default_region) == ("Shop", 40, "GB")
    assert IdentifierType.objects.get(name="shop").source == shop


def test_a_source_cannot_take_the_name_of_an_identifier_rule(admin_client, db):
    response = admin_client.post(
        reverse("admin:ingestion_source_add"),
        {
            "slug": "email",
            "name": "",
            "kind": "web",
            "trust_rank": "",
            "default_region": "US",
            "field_mapping": "{}",
        },
    )

    assert response.status_code == 200
    assert "already an identifier rule" in response.content.decode()
    assert not Source.objects.filter(slug="email").exists()


def test_trust_rank_is_edited_from_the_source_page(admin_client, make_source):
    crm = make_source("crm", "crm")

    response = admin_client.post(
        change(crm),
        {
            "name": crm.name,
            "kind": crm.kind,
            "trust_rank": "95",
            "default_region": "US",
            "field_mapping": '{"FirstName": "first_name"}',
            "keys-TOTAL_FORMS": "1",
            "keys-INITIAL_FORMS": "1",
            "keys-MIN_NUM_FORMS": "0",
            "keys-MAX_NUM_FORMS": "1000",
        },
    )

    assert response.status_code == 302, response.content
    crm.refresh_from_db()
    assert crm.trust_rank == 95
    assert crm.field_mapping == {"FirstName": "first_name"}


def test_an_issued_key_is_shown_once_and_authenticates(admin_client, make_source):
    crm = make_source("crm", "crm")

    response = run_action(admin_client, Source, "issue_key", [crm])

    [message] = page_messages(response)
    secret = KEY_PATTERN.search(message).group(0)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    sent = api.post(
        "/api/v1/sources/crm/records",
        data=json.dumps({"records": [{"external_id": "C9", "attributes": {"first_name": "Kim"}}]}),
        content_type="application/json",
    )
    assert sent.status_code == 202, sent.content
    key = SourceKey.objects.get(prefix=secret.split("_")[1])
    assert secret not in admin_client.get(change(key)).content.decode()
    assert secret not in admin_client.get(changelist(SourceKey)).content.decode()


def test_key_pages_never_show_the_digest(admin_client, world):
    key, token = SourceKey.objects.first(), StaffToken.objects.get()

    pages = [admin_client.get(url).content.decode() for url in (changelist(SourceKey), change(key))]
    pages += [admin_client.get(url).content.decode() for url in (changelist(StaffToken), change(token))]

    assert all(key.digest not in page and token.digest not in page for page in pages)
    assert admin_client.get(reverse("admin:ingestion_sourcekey_add")).status_code == 403


def test_a_revoked_key_no_longer_authenticates(admin_client, make_source):
    crm = make_source("crm", "crm")
    key = SourceKey.objects.get(source=crm)

    response = run_action(admin_client, SourceKey, "revoke", [key])

    assert "Revoked 1 key" in page_messages(response)[0]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {crm.api_key}")
    sent = api.post(
        "/api/v1/sources/crm/records",
        data=json.dumps({"records": [{"external_id": "C9"}]}),
        content_type="application/json",
    )
    assert sent.status_code == 401


# --- Identifier rules ----------------------------------------------------------------------------------


def test_an_identifier_rule_is_edited_in_the_admin(admin_client, db):
    email = IdentifierType.objects.get(name="email")

    response = admin_client.post(
        change(email),
        {"normaliser": "email", "max_per_profile": "2", "blocked_values": '["shared@example.com"]'},
    )

    assert response.status_code == 302, response.content
    email.refresh_from_db()
    assert (email.max_per_profile, email.blocked_values) == (2, ["shared@example.com"])


def test_blocked_values_must_be_a_list(admin_client, db):
    email = IdentifierType.objects.get(name="email")

    response = admin_client.post(
        change(email), {"normaliser": "email", "max_per_profile": "2", "blocked_values": '"x@example.com"'}
    )

    assert response.status_code == 200
    assert "A JSON list of values" in response.content.decode()


# --- Quarantine ----------------------------------------------------------------------------------------


def test_reprocess_moves_a_quarantined_record_to_processed(
    admin_client, make_source, ingest, broken_pipeline
):
    crm = make_source("crm", "crm")
    ingest(crm, [{"external_id": "C1", "attributes": {"first_name": "Jon", "email": "jon@example.org"}}])
    record = InboundRecord.objects.get(external_id="C1")
    quarantine = admin_client.get(
        changelist(InboundRecord), {"status__exact": "quarantined"}
    ).content.decode()
    assert "resolver unavailable" in quarantine
    broken_pipeline()

    response = run_action(admin_client, InboundRecord, "reprocess", [record])

    assert page_messages(response) == ["Reprocessed 1 record(s): 1 processed, 0 quarantined."]
    record.refresh_from_db()
    assert record.status == InboundRecord.Status.PROCESSED
    assert Profile.objects.filter(identities__value="jon@example.org").exists()


def test_a_record_still_failing_stays_in_quarantine(admin_client, make_source, ingest, broken_pipeline):
    crm = make_source("crm", "crm")
    ingest(crm, [{"external_id": "C1", "attributes": {"first_name": "Jon"}}])
    record = InboundRecord.objects.get(external_id="C1")

    response = run_action(admin_client, InboundRecord, "reprocess", [record])

    assert page_messages(response) == ["Reprocessed 1 record(s): 0 processed, 1 quarantined."]
    record.refresh_from_db()
    assert (record.status, record.attempts) == (InboundRecord.Status.QUARANTINED, 2)


def test_raw_payloads_cannot_be_edited(admin_client, world):
    record = InboundRecord.objects.get(external_id="C3")

    page = admin_client.get(change(record)).content.decode()
    posted = admin_client.post(change(record), {"external_id": "changed"})

    assert "&quot;not an email&quot;" in page  # the payload, shown as JSON
    assert 'name="_save"' not in page
    assert posted.status_code == 403
    record.refresh_from_db()
    assert record.external_id == "C3"


# --- Profiles ------------------------------------------------------------------------------------------


def test_profile_page_shows_every_candidate_value_and_its_source(admin_client, world):
    page = admin_client.get(change(world["jon"])).content.decode()

    assert "Jonathan" in page  # the ERP's first name, outranked by the CRM's
    assert "from crm" in page and "from erp" in page
    assert ">C1</a>" in page and ">E1</a>" in page and ">W1</a>" in page
    assert "+14155550100" in page  # identity
    assert "deterministic:email+phone" in page  # merge history


def test_merged_profile_page_links_to_its_survivor(admin_client, world):
    merged = Profile.objects.get(status=Profile.Status.MERGED)

    page = admin_client.get(change(merged)).content.decode()

    assert f'href="{change(world["jon"])}" class="survivor-link"' in page


def test_profile_page_cost_does_not_grow_with_its_records(admin_client, make_source, ingest):
    crm = make_source("crm", "crm")
    ingest(crm, [{"external_id": "C0", "attributes": {"first_name": "Jon", "email": "jon@example.org"}}])
    jon = Profile.objects.get()
    with CaptureQueriesContext(connection) as small:
        admin_client.get(change(jon))
    ingest(
        crm,
        [
            {
                "external_id": f"C{n}",
                "identifiers": {"email": ["jon@example.org"]},
                "attributes": {"city": f"T{n}"},
            }
            for n in range(1, 30)
        ],
    )

    with CaptureQueriesContext(connection) as large:
        response = admin_client.get(change(jon))

    assert "T29" in response.content.decode()
    assert len(large) == len(small)


@pytest.mark.parametrize("term", ["JON@example.org ", "(415) 555-0100", "E1", "jon smith"])
def test_searching_profiles_finds_the_person(admin_client, world, term):
    response = admin_client.get(changelist(Profile), {"q": term})

    page = response.content.decode()
    assert "Jon Smith" in page
    assert "Ada Lovelace" not in page


# --- Merge audit and conflicts -------------------------------------------------------------------------


def test_merge_audit_cannot_be_added_changed_or_deleted(admin_client, world):
    merge = MergeEvent.objects.get()
    delete_url = reverse("admin:profiles_mergeevent_delete", args=[merge.pk])

    page = admin_client.get(change(merge)).content.decode()

    assert "&quot;links&quot;" in page  # the evidence, shown as JSON
    assert 'name="_save"' not in page
    assert admin_client.get(reverse("admin:profiles_mergeevent_add")).status_code == 403
    assert admin_client.post(change(merge), {"rule": "manual"}).status_code == 403
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert MergeEvent.objects.get().rule == merge.rule


def test_merge_audit_is_searched_by_profile_id(admin_client, world):
    merged = Profile.objects.get(status=Profile.Status.MERGED)

    page = admin_client.get(changelist(MergeEvent), {"q": str(merged.pk)}).content.decode()
    elsewhere = admin_client.get(
        changelist(MergeEvent),
        {"q": str(Profile.objects.exclude(pk__in=[merged.pk, world["jon"].pk]).first().pk)},
    ).content.decode()

    row = '<td class="field-rule">deterministic:email+phone</td>'
    assert row in page
    assert row not in elsewhere


@pytest.mark.parametrize(
    ("action", "status"), [("mark_resolved", "resolved"), ("mark_dismissed", "dismissed")]
)
def test_a_steward_closes_a_conflict(admin_client, world, action, status):
    conflict = ResolutionConflict.objects.get()

    run_action(admin_client, ResolutionConflict, action, [conflict])

    still_open = admin_client.get(changelist(ResolutionConflict), {"status__exact": "open"}).content.decode()
    closed = admin_client.get(changelist(ResolutionConflict), {"status__exact": status}).content.decode()
    assert "grace@navy.mil" not in still_open
    assert "grace@navy.mil" in closed
