# ruff: noqa: F811 (fixtures of the events and consent tests, imported to be used here)
"""Unmerge: a steward splits a profile by moving chosen source records to a new one; the resolver does not
join them again."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from profiles.models import (
    Event,
    Identity,
    MatchSuggestion,
    MergeEvent,
    NeverLink,
    Profile,
    ProfileSplit,
    RecordChange,
    ResolutionConflict,
    SourceRecord,
)
from profiles.services.unmerge import UnmergeInvalid, profile_unmerge
from tests.consent.conftest import (  # noqa: F401 (fixtures)
    check,
    consent_client,
    consent_source,
    record_consents,
    statement,
    vocabulary,
)
from tests.events.conftest import post_tracking, seeded_rules, send_batch, shop  # noqa: F401 (fixtures)

ANN = {
    "external_id": "C1",
    "attributes": {
        "first_name": "Ann",
        "last_name": "Lee",
        "email": "ann.lee@example.org",
        "phone": "(202) 555-0143",
        "city": "Boston",
    },
}
ANNA = {
    "external_id": "E1",
    "attributes": {
        "first_name": "Anna",
        "last_name": "Leigh",
        "phone": "(415) 555-0132",
        "birth_date": "1990-05-01",
        "city": "Paris",
    },
}


@pytest.fixture(autouse=True)
def _rules(seeded_identifier_rules):
    """Every test here relies on the seeded email and phone rules."""


def record(source, external_id) -> SourceRecord:
    return SourceRecord.objects.get(source=source, external_id=external_id)


def golden_state(profile: Profile) -> tuple:
    profile.refresh_from_db()
    return profile.golden, profile.display_name, profile.status


def unmerge_api(client, profile_id, records, reason="two people merged by a shared family email", **kw):
    return client.post(
        f"/api/v1/profiles/{profile_id}/unmerge",
        data=json.dumps({"records": records, "reason": reason, **kw}),
        content_type="application/json",
    )


@pytest.fixture
def ann_and_anna(crm, erp, send_records, profile_of):
    """Ann (CRM) and Anna (ERP) sent one family email: one profile. Returns it."""
    send_records(crm, [ANN])
    send_records(erp, [{**ANNA, "attributes": {**ANNA["attributes"], "email": "ann.lee@example.org"}}])
    profile = profile_of(crm, "C1")
    assert profile_of(erp, "E1") == profile
    return profile


# --- Merge, then unmerge -------------------------------------------------------------------------------


def test_merge_then_unmerge_through_the_api_restores_both_golden_records(
    crm, erp, send_records, profile_of, staff_client
):
    send_records(crm, [ANN])
    send_records(erp, [ANNA])
    ann, anna = profile_of(crm, "C1"), profile_of(erp, "E1")
    ann_before, anna_before = golden_state(ann), golden_state(anna)
    ann_lineage = ann.lineage
    assert ann != anna

    # The ERP learns the family email as an identifier: the two profiles merge on it.
    send_records(erp, [{**ANNA, "identifiers": {"email": "ann.lee@example.org"}}])
    merged = profile_of(crm, "C1")
    assert profile_of(erp, "E1") == merged
    assert MergeEvent.objects.filter(survivor=merged).count() == 1
    assert golden_state(merged) != ann_before

    response = unmerge_api(staff_client, merged.pk, [{"source": "erp", "external_id": "E1"}])

    assert response.status_code == 201, response.content
    body = response.json()
    new = Profile.objects.get(pk=body["profile"])
    assert body["from_profile"] == str(merged.pk)
    assert profile_of(erp, "E1") == new and profile_of(crm, "C1") == merged
    assert golden_state(merged) == ann_before
    assert merged.lineage == ann_lineage
    assert golden_state(new) == anna_before


def test_identifiers_history_and_audit_follow_the_moved_records(ann_and_anna, crm, erp, identities_of):
    anna_record = record(erp, "E1")

    new = profile_unmerge(
        profile_id=ann_and_anna.pk, record_ids=[anna_record.pk], actor="staff:steward", reason="not her"
    )

    assert identities_of(new) == {("erp", "E1"), ("phone", "+14155550132")}
    # Both halves carry the family email: it stays with the original, and the split says so.
    assert identities_of(ann_and_anna) == {
        ("crm", "C1"),
        ("email", "ann.lee@example.org"),
        ("phone", "+12025550143"),
    }
    assert set(RecordChange.objects.filter(record=anna_record).values_list("profile_id", flat=True)) == {
        new.pk
    }
    assert not RecordChange.objects.filter(profile=ann_and_anna, record=anna_record).exists()
    split = ProfileSplit.objects.get()
    assert (split.profile_id, split.new_profile_id, split.actor, split.reason) == (
        ann_and_anna.pk,
        new.pk,
        "staff:steward",
        "not her",
    )
    assert split.records == [
        {
            "id": anna_record.pk,
            "source": "erp",
            "external_id": "E1",
            "identifiers_kept_on_original": [["email", "ann.lee@example.org"]],
        }
    ]
    with pytest.raises(ValueError, match="immutable"):
        split.save()


def test_every_moved_record_is_never_linked_with_every_remaining_one(crm, erp, web, send_records, profile_of):
    email = {"email": "family@example.org"}
    # Bob's records give no given name, so nothing stops the family email from joining them to Ann.
    send_records(crm, [{"external_id": "C1", "attributes": {"first_name": "Ann", **email}}])
    send_records(erp, [{"external_id": "E1", "attributes": {"last_name": "Lee", **email}}])
    send_records(web, [{"external_id": "W1", "attributes": {"last_name": "Lee", **email}}])
    profile = profile_of(crm, "C1")
    c1, e1, w1 = record(crm, "C1"), record(erp, "E1"), record(web, "W1")

    profile_unmerge(profile_id=profile.pk, record_ids=[e1.pk, w1.pk], actor="t", reason="r")

    pairs = set(NeverLink.objects.values_list("record_a_id", "record_b_id", "reason"))
    assert pairs == {(c1.pk, e1.pk, "unmerge"), (c1.pk, w1.pk, "unmerge")}
    assert profile_of(erp, "E1") == profile_of(web, "W1") != profile


def test_a_merged_away_profile_id_stands_for_its_survivor(crm, erp, send_records, profile_of):
    send_records(crm, [ANN])
    send_records(erp, [ANNA])
    anna_id = profile_of(erp, "E1").pk
    send_records(erp, [{**ANNA, "identifiers": {"email": "ann.lee@example.org"}}])
    survivor = profile_of(crm, "C1")
    assert Profile.objects.get(pk=anna_id).merged_into == survivor

    new = profile_unmerge(profile_id=anna_id, record_ids=[record(erp, "E1").pk], actor="t", reason="r")

    assert ProfileSplit.objects.get().profile == survivor
    assert profile_of(erp, "E1") == new


@pytest.mark.parametrize(
    ("choose", "field", "reason"),
    [
        (lambda c1, e1, other: [], "records", "at least one"),
        (lambda c1, e1, other: [c1, e1], "records", "at least one must stay"),
        (lambda c1, e1, other: [other], "records", "is not a live source record of profile"),
        (lambda c1, e1, other: [999_999], "records", "is not a live source record of profile"),
    ],
    ids=["none", "all", "another-profiles", "unknown"],
)
def test_the_records_must_be_a_proper_part_of_the_profile(
    ann_and_anna, crm, erp, send_records, choose, field, reason
):
    send_records(crm, [{"external_id": "C9", "attributes": {"first_name": "Zed"}}])
    ids = (record(crm, "C1").pk, record(erp, "E1").pk, record(crm, "C9").pk)

    with pytest.raises(UnmergeInvalid, match=reason) as caught:
        profile_unmerge(profile_id=ann_and_anna.pk, record_ids=choose(*ids), actor="t", reason="r")

    assert caught.value.field == field
    assert not ProfileSplit.objects.exists() and not NeverLink.objects.exists()


def test_an_unknown_profile_is_refused(db):
    with pytest.raises(UnmergeInvalid, match="no profile") as caught:
        profile_unmerge(
            profile_id="6f1c1f0e-0000-4000-8000-000000000000", record_ids=[1], actor="t", reason="r"
        )
    assert caught.value.field == "profile"


# --- The resolver respects the split -------------------------------------------------------------------


def test_after_an_unmerge_resending_the_records_does_not_merge_them_again(
    ann_and_anna, crm, erp, web, send_records, profile_of
):
    new = profile_unmerge(
        profile_id=ann_and_anna.pk, record_ids=[record(erp, "E1").pk], actor="t", reason="r"
    )

    # Both sources send their records again, changed, still with the family email.
    send_records(crm, [{**ANN, "attributes": {**ANN["attributes"], "city": "Chicago"}}])
    send_records(
        erp,
        [{**ANNA, "attributes": {**ANNA["attributes"], "email": "ann.lee@example.org", "city": "Lyon"}}],
    )
    # A new record with the family email joins the profile that holds it, not both.
    send_records(web, [{"external_id": "W1", "attributes": {"email": "ann.lee@example.org"}}])

    assert profile_of(crm, "C1") == ann_and_anna == profile_of(web, "W1")
    assert profile_of(erp, "E1") == new
    assert new.records.get().attributes["city"] == "Lyon"
    assert Profile.objects.get(pk=new.pk).status == Profile.Status.ACTIVE
    conflict = ResolutionConflict.objects.get(record=record(erp, "E1"))
    assert conflict.profile == new
    assert conflict.other_profiles == [str(ann_and_anna.pk)]
    assert conflict.identifier_type == "email"
    assert "never link, unmerge" in conflict.reason


def test_a_new_record_linking_both_halves_goes_to_a_profile_of_its_own(
    ann_and_anna, crm, erp, web, send_records, profile_of
):
    new = profile_unmerge(
        profile_id=ann_and_anna.pk, record_ids=[record(erp, "E1").pk], actor="t", reason="r"
    )

    # The family email (the original's) and Anna's phone (the new half's) in one record.
    send_records(
        web,
        [{"external_id": "W1", "attributes": {"email": "ann.lee@example.org", "phone": "415 555 0132"}}],
    )

    web_profile = profile_of(web, "W1")
    assert web_profile not in (ann_and_anna, new)
    assert profile_of(crm, "C1") == ann_and_anna and profile_of(erp, "E1") == new
    conflict = ResolutionConflict.objects.get(record=record(web, "W1"))
    assert set(conflict.other_profiles) == {str(ann_and_anna.pk), str(new.pk)}
    assert "were marked as different people" in conflict.reason


def test_a_deleted_and_recreated_record_stays_apart(
    ann_and_anna, crm, erp, send_records, profile_of, django_capture_on_commit_callbacks
):
    from ingestion.services import record_delete_receive

    new = profile_unmerge(
        profile_id=ann_and_anna.pk, record_ids=[record(erp, "E1").pk], actor="t", reason="r"
    )
    with django_capture_on_commit_callbacks(execute=True):
        record_delete_receive(source=erp, external_id="E1")
    assert Profile.objects.get(pk=new.pk).status == Profile.Status.EMPTY

    send_records(erp, [{**ANNA, "attributes": {**ANNA["attributes"], "email": "ann.lee@example.org"}}])

    assert profile_of(erp, "E1") not in (ann_and_anna,)
    assert profile_of(crm, "C1") == ann_and_anna


def test_the_never_link_pairs_of_a_chunk_are_read_in_one_query(ann_and_anna, crm, erp, ingest):
    profile_unmerge(profile_id=ann_and_anna.pk, record_ids=[record(erp, "E1").pk], actor="t", reason="r")
    chunk = [{**ANNA, "attributes": {**ANNA["attributes"], "email": "ann.lee@example.org", "city": "Lyon"}}]
    chunk += [
        {
            "external_id": f"E{n}",
            "attributes": {"email": f"p{n}@example.org" if n % 2 else ANN["attributes"]["email"]},
        }
        for n in range(2, 40)
    ]

    with CaptureQueriesContext(connection) as queries:
        ingest(erp, chunk)

    never_queries = [q["sql"] for q in queries.captured_queries if "profiles_neverlink" in q["sql"]]
    assert len(never_queries) == 1, never_queries
    assert record(erp, "E1").profile != ann_and_anna
    assert record(erp, "E2").profile == ann_and_anna


@pytest.mark.parametrize("size", [3, 40])
def test_an_unmerge_costs_the_same_few_queries_whatever_the_size_of_the_profile(
    make_source, ingest, vocabulary, size, django_assert_max_num_queries
):
    sources = [make_source(f"s{n}", "crm") for n in range(size)]
    for source in sources:
        ingest(
            source,
            [{"external_id": "X", "attributes": {"first_name": source.slug, "email": "f@example.org"}}],
        )
    records = SourceRecord.objects.filter(source__in=sources).order_by("pk")
    moved = list(records.values_list("pk", flat=True)[: size // 2 or 1])
    profile_id = records.first().profile_id

    with django_assert_max_num_queries(40):
        profile_unmerge(profile_id=profile_id, record_ids=moved, actor="t", reason="r")

    assert NeverLink.objects.count() == len(moved) * (size - len(moved))


# --- Suggestions, events and consent follow ------------------------------------------------------------


def test_open_suggestions_follow_their_records_or_become_obsolete(ann_and_anna, crm, erp, send_records):
    send_records(crm, [{"external_id": "C9", "attributes": {"first_name": "Anna", "last_name": "Leigh"}}])
    c1, e1, c9 = record(crm, "C1"), record(erp, "E1"), record(crm, "C9")
    anna_twin = MatchSuggestion.objects.create(
        record=c9,
        candidate_record=e1,
        profile=c9.profile,
        candidate_profile=ann_and_anna,
        probability=0.8,
    )
    within = MatchSuggestion.objects.create(
        record=e1, candidate_record=c1, profile=ann_and_anna, candidate_profile=ann_and_anna, probability=0.7
    )

    new = profile_unmerge(profile_id=ann_and_anna.pk, record_ids=[e1.pk], actor="staff:s", reason="r")

    anna_twin.refresh_from_db()
    within.refresh_from_db()
    assert (anna_twin.status, anna_twin.candidate_profile_id) == ("open", new.pk)
    assert (within.status, within.decided_by) == ("obsolete", "staff:s")


def test_events_follow_the_tracking_identity_they_belong_to(shop, make_source, send_batch, profile_of):
    app = make_source("app", kind="web")  # a second tracked property: the shop's user ids are its own

    def msg(n, kind, **fields):
        return {"type": kind, "messageId": f"m{n}", "timestamp": f"2026-01-0{n}T10:00:00Z", **fields}

    family = {"email": "family@example.org"}
    send_batch(
        shop,
        [
            msg(1, "identify", userId="u1", anonymousId="anon-1", traits={"firstName": "Ann", **family}),
            msg(2, "track", userId="u1", event="Order Completed"),
            msg(6, "page", anonymousId="anon-1", name="Home"),
        ],
    )
    send_batch(
        app,
        [
            # no given name to tell u2 from Ann: the family email joins them
            msg(3, "identify", userId="u2", anonymousId="anon-2", traits=family),
            msg(4, "track", userId="u2", event="Cart Viewed"),
            msg(5, "screen", anonymousId="anon-2", name="Pricing"),
        ],
    )
    profile = profile_of(shop, "u1")
    assert profile_of(app, "u2") == profile == profile_of(app, "anonymous:anon-2")
    assert Event.objects.filter(profile=profile).count() == 6

    new = profile_unmerge(
        profile_id=profile.pk,
        record_ids=[record(app, "u2").pk, record(app, "anonymous:anon-2").pk],
        actor="t",
        reason="r",
    )

    def messages(p):
        return sorted(Event.objects.filter(profile=p).values_list("message_id", flat=True))

    assert messages(new) == ["m3", "m4", "m5"]
    assert messages(profile) == ["m1", "m2", "m6"]
    assert ("anonymous_id", "anon-2") in set(
        Identity.objects.filter(profile=new).values_list("type", "value")
    )


def test_a_denial_recorded_on_the_profile_stays_with_both_halves(
    consent_source, make_source, send_records, record_consents, check, settings
):
    erp = make_source("erp", "erp")
    send_records(consent_source, [{"external_id": "S1", "attributes": {"email": "family@example.org"}}])
    send_records(
        erp, [{"external_id": "E1", "attributes": {"email": "family@example.org", "phone": "415 555 0132"}}]
    )
    profile = Profile.objects.get(records__external_id="S1")
    # Bob (ERP) once agreed to SMS marketing through his phone; later the family objected to all marketing.
    record_consents(statement(("phone", "+14155550132"), channel="sms", effective_at="2020-01-01T00:00:00Z"))
    record_consents(
        statement(
            profile=profile.pk, channel=None, decision="objection_direct_marketing", capture_method="agent"
        )
    )
    assert check(str(profile.pk), channel="sms")["allowed"] is False

    new = profile_unmerge(profile_id=profile.pk, record_ids=[record(erp, "E1").pk], actor="t", reason="r")

    assert check(str(profile.pk), channel="sms")["allowed"] is False
    answer = check(str(new.pk), channel="sms")
    assert answer["allowed"] is False, answer
    assert check({"type": "phone", "value": "415 555 0132"}, channel="sms")["allowed"] is False


def test_without_the_consent_hook_the_new_half_would_lose_the_denial(
    consent_source, make_source, send_records, record_consents, check, settings
):
    """The hook is what keeps the denial: proof that the test above tests it."""
    settings.CDP_PROFILE_SPLIT_HOOKS = []
    erp = make_source("erp", "erp")
    send_records(consent_source, [{"external_id": "S1", "attributes": {"email": "family@example.org"}}])
    send_records(
        erp, [{"external_id": "E1", "attributes": {"email": "family@example.org", "phone": "415 555 0132"}}]
    )
    profile = Profile.objects.get(records__external_id="S1")
    record_consents(statement(("phone", "+14155550132"), channel="sms", effective_at="2020-01-01T00:00:00Z"))
    record_consents(
        statement(
            profile=profile.pk, channel=None, decision="objection_direct_marketing", capture_method="agent"
        )
    )

    new = profile_unmerge(profile_id=profile.pk, record_ids=[record(erp, "E1").pk], actor="t", reason="r")

    assert check(str(new.pk), channel="sms")["allowed"] is True


# --- API -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"records": []}, "records"),
        ({"records": "E1"}, "records"),
        ({"records": [{"source": "erp"}]}, "records[0].external_id"),
        ({"records": [{"source": "nope", "external_id": "E1"}]}, "records[0].source"),
        ({"records": [{"source": "erp", "external_id": "E404"}]}, "records[0]"),
        ({"records": [True]}, "records[0]"),
        (
            {"records": [{"source": "crm", "external_id": "C1"}, {"source": "erp", "external_id": "E1"}]},
            "records",
        ),
        ({"records": [{"source": "erp", "external_id": "E1"}], "reason": ""}, "reason"),
        ({"records": [{"source": "erp", "external_id": "E1"}], "reason": None}, "reason"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(ann_and_anna, staff_client, body, field):
    body = {"reason": "wrong merge", **body}
    response = staff_client.post(
        f"/api/v1/profiles/{ann_and_anna.pk}/unmerge", data=json.dumps(body), content_type="application/json"
    )

    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["field"] == field
    assert not ProfileSplit.objects.exists()


def test_record_ids_work_as_well_as_source_and_external_id(ann_and_anna, erp, staff_client):
    response = unmerge_api(staff_client, ann_and_anna.pk, [record(erp, "E1").pk])

    assert response.status_code == 201, response.content
    assert response.json()["records"] == [
        {
            "id": record(erp, "E1").pk,
            "source": "erp",
            "external_id": "E1",
            "identifiers_kept_on_original": [["email", "ann.lee@example.org"]],
        }
    ]


def test_an_unknown_profile_is_a_404(db, staff_client):
    response = unmerge_api(staff_client, "not-a-profile", [1])
    assert response.status_code == 404


def test_unmerging_needs_the_unmerge_permission(ann_and_anna, erp, django_user_model, source_client):
    from django.contrib.auth.models import Group
    from rest_framework.test import APIClient

    from cdp import roles

    support = django_user_model.objects.create_user("agent", is_staff=True)
    support.groups.add(Group.objects.get(name=roles.SUPPORT_AGENT))
    client = APIClient()
    client.force_login(support)

    assert unmerge_api(client, ann_and_anna.pk, [record(erp, "E1").pk]).status_code == 403
    assert unmerge_api(source_client(erp), ann_and_anna.pk, [record(erp, "E1").pk]).status_code == 403
    assert not ProfileSplit.objects.exists()


# --- Admin ---------------------------------------------------------------------------------------------


def test_the_unmerge_page_lists_the_records_and_splits_the_profile(ann_and_anna, crm, erp, staff_user):
    from django.test import Client

    client = Client()
    client.force_login(staff_user)
    url = reverse("admin:profiles_profile_unmerge", args=[ann_and_anna.pk])
    page = client.get(url).content.decode()
    assert 'name="records"' in page and "E1" in page and "C1" in page
    from consent.models import ProfileAccess

    assert ProfileAccess.objects.filter(view="admin:unmerge", profile_id=ann_and_anna.pk).exists()

    missing_reason = client.post(url, {"records": [record(erp, "E1").pk], "reason": ""})
    assert missing_reason.status_code == 200 and not ProfileSplit.objects.exists()

    response = client.post(url, {"records": [record(erp, "E1").pk], "reason": "two people"})

    split = ProfileSplit.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:profiles_profile_change", args=[split.new_profile_id])
    assert split.actor == "staff:staff"


def test_the_unmerge_page_is_only_for_those_who_may_unmerge(ann_and_anna, django_user_model):
    from django.contrib.auth.models import Group
    from django.test import Client

    from cdp import roles

    user = django_user_model.objects.create_user("agent", is_staff=True)
    user.groups.add(Group.objects.get(name=roles.SUPPORT_AGENT))
    client = Client()
    client.force_login(user)
    url = reverse("admin:profiles_profile_unmerge", args=[ann_and_anna.pk])

    assert client.get(url).status_code == 403
    page = client.get(reverse("admin:profiles_profile_change", args=[ann_and_anna.pk])).content.decode()
    assert url not in page


# --- Concurrency (PostgreSQL) --------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("attempt", range(3))
def test_an_unmerge_racing_with_the_resolver_neither_deadlocks_nor_re_merges(
    monkeypatch, make_source, ingest, attempt
):
    import ingestion.services
    from ingestion.services import records_receive
    from tests.profiles.test_concurrency import process, run_together

    crm, erp, web = make_source("crm", "crm"), make_source("erp", "erp"), make_source("web", "web")
    family = "family@example.org"
    ingest(crm, [{"external_id": "C1", "attributes": {"first_name": "Ann", "email": family}}])
    ingest(erp, [{"external_id": "E1", "attributes": {"email": family, "phone": "415 555 0132"}}])
    profile = record(crm, "C1").profile
    anna = record(erp, "E1").pk
    monkeypatch.setattr(ingestion.services, "_schedule", lambda batch: None)
    batches = [
        records_receive(
            source=crm,
            records=[
                {"external_id": "C1", "attributes": {"first_name": "Ann", "email": family, "city": "Oslo"}}
            ],
        ),
        records_receive(
            source=erp,
            records=[
                {
                    "external_id": "E1",
                    "attributes": {"email": family, "phone": "415 555 0132", "city": "Rome"},
                }
            ],
        ),
        records_receive(
            source=web,
            records=[{"external_id": "W1", "attributes": {"email": family, "phone": "415 555 0132"}}],
        ),
    ]

    def unmerge(barrier):
        barrier.wait(timeout=60)
        profile_unmerge(profile_id=profile.pk, record_ids=[anna], actor="t", reason="race")

    run_together([unmerge, *(process(batch.batch.pk) for batch in batches)])

    c1, e1, w1 = record(crm, "C1"), record(erp, "E1"), record(web, "W1")
    assert c1.profile != e1.profile
    assert {c1.attributes["city"], e1.attributes["city"]} == {"Oslo", "Rome"}
    for rec in (c1, e1, w1):
        assert rec.profile.status == Profile.Status.ACTIVE
    assert NeverLink.objects.filter(reason="unmerge").count() >= 1
    owners = Identity.objects.filter(value=family).values_list("profile_id", flat=True)
    assert list(owners) == [c1.profile_id]
