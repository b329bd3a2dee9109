"""Data-subject requests: the workflow, deadlines, the queue, who may act, access exports and restriction."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from rest_framework.test import APIClient

from consent.dsr import add_months, due_date, extended_due_date
from consent.models import DataSubjectRequest, DsrEvent
from profiles.models import Profile

from .conftest import ANN, BOB

pytestmark = pytest.mark.django_db


def email(value=ANN["email"]):
    return {"type": "email", "value": value}


@pytest.mark.parametrize(
    ("regime", "received", "due", "extended"),
    [
        (
            "gdpr",
            datetime(2026, 1, 31, 9, tzinfo=UTC),
            datetime(2026, 2, 28, 9, tzinfo=UTC),
            datetime(2026, 4, 28, 9, tzinfo=UTC),
        ),
        (
            "gdpr",
            datetime(2026, 11, 15, tzinfo=UTC),
            datetime(2026, 12, 15, tzinfo=UTC),
            datetime(2027, 2, 15, tzinfo=UTC),
        ),
        (
            "ccpa",
            datetime(2026, 1, 1, tzinfo=UTC),
            datetime(2026, 2, 15, tzinfo=UTC),
            datetime(2026, 4, 1, tzinfo=UTC),
        ),
    ],
)
def test_deadlines_follow_the_regime(regime, received, due, extended):
    assert due_date(regime=regime, received_at=received) == due
    assert extended_due_date(regime=regime, original_due_at=due) == extended


def test_add_months_clamps_to_the_end_of_the_month():
    assert add_months(datetime(2024, 1, 31, tzinfo=UTC), 1) == datetime(2024, 2, 29, tzinfo=UTC)


def test_request_goes_received_verified_completed_with_every_step_audited(ann_everywhere, dsr):
    opened = dsr("post", "", {"type": "erasure", "identifier": email(" " + ANN["email"].upper())}, expect=201)
    assert opened["status"] == "received"
    assert opened["identifiers"] == [{"type": "email", "value": ANN["email"].lower()}]
    assert opened["profile"] is not None

    dsr("post", f"/{opened['id']}/execute", expect=409)  # not verified yet
    verified = dsr("post", f"/{opened['id']}/verify", {"method": "reply to email link"})
    assert verified["status"] == "verified"
    assert verified["verification"]["by"] == "staff:officer"
    done = dsr("post", f"/{opened['id']}/execute")

    assert done["status"] == "completed"
    assert [(e["action"], e["to_status"]) for e in done["events"]] == [
        ("opened", "received"),
        ("verified", "verified"),
        ("started", "in_progress"),
        ("executed", "completed"),
    ]
    dsr("post", f"/{opened['id']}/execute", expect=409)  # once only


def test_verify_needs_a_method_and_extend_a_reason(ann_everywhere, dsr):
    opened = dsr("post", "", {"type": "access", "identifier": email()}, expect=201)
    assert dsr("post", f"/{opened['id']}/verify", {}, expect=400)["errors"][0]["field"] == "method"
    assert (
        dsr("post", f"/{opened['id']}/extend", {"reason": " "}, expect=400)["errors"][0]["field"] == "reason"
    )


def test_extension_moves_the_deadline_once(ann_everywhere, dsr):
    received = "2026-03-10T12:00:00Z"
    opened = dsr("post", "", {"type": "access", "identifier": email(), "received_at": received}, expect=201)
    assert opened["due_at"].startswith("2026-04-10")
    extended = dsr("post", f"/{opened['id']}/extend", {"reason": "complex: 14 source systems"})
    assert extended["due_at"].startswith("2026-06-10")
    assert extended["extension_reason"] == "complex: 14 source systems"
    dsr("post", f"/{opened['id']}/extend", {"reason": "again"}, expect=409)


def test_ccpa_request_is_due_in_45_days(ann_everywhere, dsr):
    opened = dsr(
        "post",
        "",
        {"type": "access", "regime": "ccpa", "identifier": email(), "received_at": "2026-01-01T00:00:00Z"},
        expect=201,
    )
    assert opened["due_at"].startswith("2026-02-15")


def test_queue_lists_requests_soonest_deadline_first(vocabulary, dsr):
    late = dsr(
        "post",
        "",
        {"type": "access", "identifier": email("a@example.com"), "received_at": "2026-05-01T00:00:00Z"},
        expect=201,
    )
    soon = dsr(
        "post",
        "",
        {
            "type": "erasure",
            "regime": "ccpa",
            "identifier": email("b@example.com"),
            "received_at": "2026-03-01T00:00:00Z",
        },
        expect=201,
    )
    middle = dsr(
        "post",
        "",
        {"type": "restriction", "identifier": email("c@example.com"), "received_at": "2026-03-20T00:00:00Z"},
        expect=201,
    )
    dsr("post", f"/{middle['id']}/reject", {"reason": "could not verify"})

    assert [r["id"] for r in dsr("get")["results"]] == [soon["id"], middle["id"], late["id"]]
    assert [r["id"] for r in dsr("get", "?status=open")["results"]] == [soon["id"], late["id"]]


def test_bad_input_is_a_400_naming_the_field(vocabulary, dsr):
    assert (
        dsr("post", "", {"type": "forget-me", "identifier": email()}, expect=400)["errors"][0]["field"]
        == "type"
    )
    assert dsr("post", "", {"type": "access"}, expect=400)["errors"][0]["field"] == "identifier"
    bad = dsr(
        "post", "", {"type": "access", "identifier": {"type": "email", "value": "not-an-email"}}, expect=400
    )
    assert bad["errors"][0]["field"] == "identifier.value"
    assert dsr("post", "", {"type": "access", "identifier": {"type": "shoe", "value": "x"}}, expect=400)


@pytest.mark.parametrize(
    "received_at", ["9999-12-15T00:00:00Z", "0001-01-01T00:00:00Z", "2999-01-01T00:00:00Z"]
)
def test_a_request_received_in_the_future_or_before_1900_is_a_400(vocabulary, dsr, received_at):
    # (9999-12-15 used to overflow the deadline's arithmetic: a 500)
    body = {"type": "access", "regime": "ccpa", "identifier": email(), "received_at": received_at}

    errors = dsr("post", "", body, expect=400)["errors"]

    assert [error["field"] for error in errors] == ["received_at"]


@pytest.mark.parametrize("who", ["anonymous", "staff_without_permission", "source_key"])
def test_only_privacy_officers_reach_requests(who, vocabulary, staff_client, consent_client):
    client = {
        "anonymous": APIClient(),
        "staff_without_permission": staff_client,
        "source_key": consent_client,
    }[who]
    body = json.dumps({"type": "access", "identifier": email()})
    assert client.post("/api/v1/dsr", data=body, content_type="application/json").status_code in (401, 403)
    assert client.get("/api/v1/dsr").status_code in (401, 403)


def test_access_export_holds_everything_about_the_person_and_downloads(ann_everywhere, dsr, officer_client):
    opened = dsr("post", "", {"type": "access", "identifier": email()}, expect=201)
    dsr("post", f"/{opened['id']}/verify", {"method": "signed-in account"})
    dsr("post", f"/{opened['id']}/execute")

    export = dsr("get", f"/{opened['id']}")["export"]
    assert len(export["profiles"]) == 2  # the survivor and the tombstone merged into it
    assert {(i["type"], i["value"]) for i in export["identities"]} >= {
        ("email", ANN["email"].lower()),
        ("phone", "+442079460958"),
        ("crm", ANN["crm_id"]),
        ("anonymous_id", ANN["anonymous_id"]),
    }
    assert {r["source"] for r in export["source_records"]} >= {"crm", "erp", "shop", "web"}
    assert any(r["raw"] and r["raw"].get("external_id") == ANN["crm_id"] for r in export["source_records"])
    assert any(p["status"] == "quarantined" for p in export["inbound_payloads"])  # read from the raw payload
    assert {e["type"] for e in export["events"]} == {"identify", "track"}
    assert len(export["merges"]) == 1
    assert export["record_changes"]
    assert {e["decision"] for e in export["consent"]["history"]} == {"granted", "denied"}
    assert export["consent"]["rejected_statements"]
    assert BOB["email"] not in json.dumps(export)

    response = officer_client.get(f"/api/v1/dsr/{opened['id']}/export")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment; filename=")
    assert json.loads(response.content)["format"] == "cdp.subject-export/1"


def test_export_only_for_completed_access_requests(ann_everywhere, dsr, officer_client):
    opened = dsr("post", "", {"type": "access", "identifier": email()}, expect=201)
    assert "export" not in dsr("get", f"/{opened['id']}")
    assert officer_client.get(f"/api/v1/dsr/{opened['id']}/export").status_code == 409


def test_restriction_blocks_consent_until_lifted(ann_everywhere, dsr, check):
    assert check({"type": "email", "value": ANN["email"]})["allowed"] is True
    opened = dsr("post", "", {"type": "restriction", "identifier": email()}, expect=201)
    dsr("post", f"/{opened['id']}/verify", {"method": "phone call"})
    dsr("post", f"/{opened['id']}/execute")

    answer = check({"type": "phone", "value": ANN["phone"]})  # any of her identifiers
    # Its own rule code (a denial in the ledger answers "restricted"), naming the request.
    assert (answer["allowed"], answer["rule"]) == (False, "processing_restricted")
    assert answer["restriction"] == {"request": opened["id"]}
    assert answer["reasons"] == []
    assert Profile.objects.filter(pk=opened["profile"]).exists()  # kept

    lifted = dsr("post", f"/{opened['id']}/lift")
    assert lifted["lifted_at"] is not None
    assert check({"type": "email", "value": ANN["email"]})["allowed"] is True
    dsr("post", f"/{opened['id']}/lift", expect=409)


def test_objection_records_an_objection_to_direct_marketing(ann_everywhere, dsr, check):
    opened = dsr("post", "", {"type": "objection", "identifier": email()}, expect=201)
    dsr("post", f"/{opened['id']}/verify", {"method": "email"})
    dsr("post", f"/{opened['id']}/execute")
    assert check({"type": "email", "value": ANN["email"]})["allowed"] is False


def test_request_steps_are_an_append_only_trail(ann_everywhere, dsr):
    opened = dsr("post", "", {"type": "access", "identifier": email()}, expect=201)
    step = DsrEvent.objects.get(request_id=opened["id"])
    step.note = "changed"
    with pytest.raises(ValueError):
        step.save()


def test_admin_queue_and_actions(ann_everywhere, dsr, admin_client):
    opened = dsr("post", "", {"type": "access", "identifier": email()}, expect=201)
    url = "/admin/consent/datasubjectrequest/"
    assert admin_client.get(url).status_code == 200
    admin_client.post(url, {"action": "verify", "_selected_action": [opened["id"]], "reason": "id card"})
    assert DataSubjectRequest.objects.get(pk=opened["id"]).status == "verified"
    admin_client.post(url, {"action": "extend", "_selected_action": [opened["id"]], "reason": "complex"})
    admin_client.post(url, {"action": "execute", "_selected_action": [opened["id"]], "reason": ""})
    request = DataSubjectRequest.objects.get(pk=opened["id"])
    assert (request.status, request.extension_reason) == ("completed", "complex")
    assert request.due_at - request.original_due_at > timedelta(days=55)
    assert admin_client.get(f"{url}{opened['id']}/change/").status_code == 200
