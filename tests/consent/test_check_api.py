"""Answers: POST /api/v1/consent/check and GET /api/v1/profiles/{id}/consents, across a person's identifiers,
merges and splits."""

import json

import pytest

from consent.models import ConsentEntry
from consent.services import consent_profile_split
from profiles.models import Identity, Profile
from tests.consent.conftest import statement

ANN_EMAIL = ("email", "ann@example.org")
ANN_PHONE = ("phone", "+14155550132")


@pytest.fixture
def ann(consent_source, ingest):
    """Ann: one CRM-like record of the shop with her email and phone."""
    ingest(
        consent_source,
        [{"external_id": "A1", "attributes": {"email": "Ann@Example.org", "phone": "415 555 0132"}}],
    )
    return Profile.objects.get(records__external_id="A1")


def test_a_grant_through_the_email_allows_marketing_by_email_asked_by_phone(ann, record_consents, check):
    record_consents(statement(ANN_EMAIL, effective_at="2026-01-01T00:00:00Z"))

    answer = check({"type": "phone", "value": "(415) 555-0132"})

    assert answer["allowed"] is True
    assert answer["profile"] == str(ann.pk)
    assert answer["reasons"][0]["identifier"] == {"type": "email", "value": "ann@example.org"}
    assert answer["reasons"][0]["decision"] == "granted"


def test_without_any_grant_marketing_is_not_allowed(ann, check):
    answer = check(str(ann.pk))

    assert answer == {
        "allowed": False,
        "rule": "no_consent",
        "explanation": answer["explanation"],
        "reasons": [],
        "profile": str(ann.pk),
    }


def test_an_opt_out_through_the_phone_wins_over_an_older_grant_through_the_email(ann, record_consents, check):
    record_consents(statement(ANN_EMAIL, effective_at="2026-01-01T00:00:00Z"))
    withdrawn = record_consents(
        statement(ANN_PHONE, channel=None, decision="withdrawn", effective_at="2026-02-01T00:00:00Z")
    )

    answer = check({"type": "email", "value": "ANN@example.org"})

    assert answer["allowed"] is False
    assert [(r["entry"], r["decision"]) for r in answer["reasons"]] == [
        (withdrawn["recorded"][0]["id"], "withdrawn")
    ]


def test_an_objection_to_direct_marketing_blocks_every_channel(ann, record_consents, check):
    record_consents(statement(ANN_PHONE, channel="sms", effective_at="2026-01-01T00:00:00Z"))
    record_consents(
        statement(
            ANN_EMAIL,
            channel="email",
            decision="objection_direct_marketing",
            effective_at="2026-02-01T00:00:00Z",
        )
    )

    assert check(str(ann.pk), channel="sms")["allowed"] is False
    assert check(str(ann.pk), purpose="analytics", channel="web")["allowed"] is True


def test_consent_given_before_the_person_arrives_applies_once_they_do(
    consent_source, record_consents, check, ingest
):
    record_consents(
        statement(("email", "new@example.org"), decision="denied", purpose="analytics", channel=None)
    )
    assert (
        check({"type": "email", "value": "new@example.org"}, purpose="analytics", channel="web")["profile"]
        is None
    )

    ingest(
        consent_source,
        [{"external_id": "N1", "attributes": {"email": "new@example.org", "phone": "+44 7700 900456"}}],
    )

    answer = check({"type": "phone", "value": "+447700900456"}, purpose="analytics", channel="web")
    assert answer["allowed"] is False and answer["profile"] is not None


def test_a_denial_follows_a_merge(consent_source, make_source, record_consents, check, ingest):
    crm = make_source("crm", "crm")
    ingest(consent_source, [{"external_id": "W1", "attributes": {"email": "bo@example.org"}}])
    ingest(crm, [{"external_id": "C1", "attributes": {"phone": "+1 617 555 0165"}}])
    record_consents(statement(("email", "bo@example.org"), effective_at="2026-01-01T00:00:00Z"))
    record_consents(
        statement(("phone", "+16175550165"), decision="denied", effective_at="2026-02-01T00:00:00Z")
    )
    before = check({"type": "email", "value": "bo@example.org"})

    # A record carrying both identifiers merges the two profiles.
    ingest(
        crm, [{"external_id": "C2", "attributes": {"phone": "+1 617 555 0165", "email": "bo@example.org"}}]
    )

    after = check({"type": "email", "value": "bo@example.org"})
    assert (before["allowed"], after["allowed"]) == (True, False)


def test_a_denial_recorded_on_a_merged_away_profile_id_still_applies(
    consent_source, make_source, record_consents, check, ingest
):
    crm = make_source("crm", "crm")
    ingest(consent_source, [{"external_id": "W1", "attributes": {"email": "cy@example.org"}}])
    first = Profile.objects.get(records__external_id="W1")
    ingest(crm, [{"external_id": "C1", "attributes": {"phone": "+1 617 555 0199"}}])
    second = Profile.objects.get(records__external_id="C1")
    record_consents(
        statement(
            profile=first.pk, purpose="analytics", channel=None, decision="denied", capture_method="agent"
        )
    )
    record_consents(
        statement(
            profile=second.pk, purpose="analytics", channel=None, decision="granted", capture_method="agent"
        )
    )

    ingest(
        crm, [{"external_id": "C2", "attributes": {"phone": "+1 617 555 0199", "email": "cy@example.org"}}]
    )

    survivors = Profile.objects.filter(status="active")
    assert survivors.count() == 1
    assert check(str(first.pk), purpose="analytics", channel="web")["allowed"] is False
    assert check(str(second.pk), purpose="analytics", channel="web")["allowed"] is False


def test_an_opt_out_stays_after_the_source_drops_the_identifier_it_came_through(
    consent_source, record_consents, check, ingest
):
    ingest(
        consent_source,
        [
            {
                "external_id": "D1",
                "updated_at": "2026-01-01T00:00:00Z",
                "attributes": {"email": "old@example.org", "phone": "+1 415 555 0100"},
            }
        ],
    )
    record_consents(
        statement(
            ("email", "old@example.org"),
            purpose="sale_sharing",
            channel=None,
            decision="opt_out_sale_sharing",
        )
    )

    # The shop changes her email address: the old one is no longer an identity of the profile.
    ingest(
        consent_source,
        [
            {
                "external_id": "D1",
                "updated_at": "2026-06-01T00:00:00Z",
                "attributes": {"email": "new@example.org", "phone": "+1 415 555 0100"},
            }
        ],
    )

    assert not Identity.objects.filter(value="old@example.org").exists()
    assert (
        check({"type": "email", "value": "new@example.org"}, purpose="sale_sharing", channel="web")["allowed"]
        is False
    )


def test_after_a_split_a_denial_recorded_on_the_profile_stays_with_both_halves(
    consent_source, record_consents, check, ingest
):
    ingest(consent_source, [{"external_id": "S1", "attributes": {"email": "dee@example.org"}}])
    original = Profile.objects.get(records__external_id="S1")
    record_consents(
        statement(
            profile=original.pk, channel=None, decision="objection_direct_marketing", capture_method="agent"
        )
    )
    # An unmerge (not built yet) would move some identifiers to a new profile: simulate its outcome.
    other_half = Profile.objects.create()
    Identity.objects.create(type="email", value="dan@example.org", profile=other_half)
    record_consents(statement(("email", "dan@example.org"), effective_at="2020-01-01T00:00:00Z"))
    assert check(str(other_half.pk))["allowed"] is True

    copied = consent_profile_split(profile_ids=[original.pk, other_half.pk])
    again = consent_profile_split(profile_ids=[original.pk, other_half.pk])

    assert (copied, again) == (1, 0)
    answer = check(str(other_half.pk))
    assert answer["allowed"] is False
    assert answer["reasons"][0]["identifier"] == {"profile": str(other_half.pk)}
    assert ConsentEntry.objects.get(subject_profile_id=other_half.pk).evidence["reason"] == "profile split"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"purpose": "marketing", "channel": "email"}, "identifier"),
        (
            {"identifier": {"type": "email", "value": "x"}, "purpose": "marketing", "channel": "email"},
            "identifier.value",
        ),
        (
            {"identifier": {"type": "fax", "value": "1"}, "purpose": "marketing", "channel": "email"},
            "identifier.type",
        ),
        (
            {"identifier": {"type": "email", "value": "a@b.org"}, "purpose": "astrology", "channel": "email"},
            "purpose",
        ),
        (
            {
                "identifier": {"type": "email", "value": "a@b.org"},
                "purpose": "marketing",
                "channel": "pigeon",
            },
            "channel",
        ),
        ({"identifier": {"type": "email", "value": "a@b.org"}, "purpose": "marketing"}, "channel"),
        (
            {
                "identifier": {"type": "email", "value": "a@b.org"},
                "purpose": "marketing",
                "channel": "email",
                "at": "soon",
            },
            "at",
        ),
    ],
)
def test_a_bad_question_is_answered_400_with_the_field(vocabulary, consent_client, body, field):
    response = consent_client.post(
        "/api/v1/consent/check", data=json.dumps(body), content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field


def test_an_unknown_profile_is_404(check, vocabulary):
    check("00000000-0000-4000-8000-000000000000", expect=404)


def test_the_check_needs_the_consents_read_scope(vocabulary, make_source, source_client):
    shop = make_source("shop3", "web")

    response = source_client(shop).post(
        "/api/v1/consent/check",
        data=json.dumps(
            {"identifier": {"type": "email", "value": "a@b.org"}, "purpose": "marketing", "channel": "email"}
        ),
        content_type="application/json",
    )

    assert response.status_code == 403


def test_the_check_runs_a_fixed_number_of_queries(
    ann, record_consents, consent_client, django_assert_max_num_queries
):
    record_consents(
        *[
            statement(ANN_EMAIL, channel=c, effective_at=f"2026-01-0{i + 1}T00:00:00Z")
            for i, c in enumerate(["email", "sms", "post"])
        ]
    )
    body = json.dumps(
        {"identifier": {"type": "phone", "value": "4155550132"}, "purpose": "marketing", "channel": "email"}
    )

    with django_assert_max_num_queries(10):
        response = consent_client.post("/api/v1/consent/check", data=body, content_type="application/json")

    assert response.json()["allowed"] is True


def test_profile_consents_show_state_history_and_a_past_moment(ann, record_consents, consent_client):
    granted = record_consents(statement(ANN_EMAIL, effective_at="2026-01-01T00:00:00Z"))["recorded"][0]
    ConsentEntry.objects.filter(pk=granted["id"])  # recorded now; ?at before now sees nothing recorded yet

    now_answer = consent_client.get(f"/api/v1/profiles/{ann.pk}/consents").json()
    past_answer = consent_client.get(f"/api/v1/profiles/{ann.pk}/consents?at=2025-06-01T00:00:00Z").json()

    state = {(s["purpose"], s["channel"]): s for s in now_answer["state"]}
    assert state[("marketing", "email")]["allowed"] is True
    assert state[("marketing", "sms")]["allowed"] is False
    assert state[("analytics", "web")]["allowed"] is True
    assert [h["id"] for h in now_answer["history"]] == [granted["id"]]
    assert now_answer["history"][0]["capture_method"] == "form"
    assert past_answer["history"] == []
    assert {(s["purpose"], s["channel"]): s["allowed"] for s in past_answer["state"]}[
        ("marketing", "email")
    ] is False


def test_profile_consents_of_an_unknown_profile_is_404(vocabulary, consent_client):
    assert consent_client.get("/api/v1/profiles/nope/consents").status_code == 404
