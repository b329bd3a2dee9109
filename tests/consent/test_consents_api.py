"""Recording statements: POST /api/v1/consents, the append-only ledger and what a privacy officer can prove."""

import json

import pytest
from django.db import DatabaseError, connection, transaction
from rest_framework.test import APIClient

from consent.models import ConsentEntry, ConsentRejection, LedgerImmutable, NoticeVersion, text_hash
from tests.consent.conftest import statement
from tests.consent.tcf_strings import tc_string


def test_a_statement_is_recorded_with_its_proof_and_a_normalised_identifier(record_consents):
    notice = NoticeVersion.objects.create(
        notice="newsletter",
        version="3",
        language="en",
        text="Yes, send me news.",
        text_sha256=text_hash("Yes, send me news."),
    )

    answer = record_consents(
        statement(
            ("email", "  Ann.Smith@Example.ORG "),
            effective_at="2026-03-01T10:00:00Z",
            expires_at="2028-03-01T10:00:00Z",
            notice_version={"notice": "newsletter", "version": "3", "language": "en"},
            capture_method="double_opt_in",
            ip="203.0.113.9",
            user_agent="Mozilla/5.0",
            idempotency_key="form-77",
        )
    )

    assert answer["rejected"] == []
    entry = ConsentEntry.objects.get(pk=answer["recorded"][0]["id"])
    assert (entry.identifier_type, entry.identifier_value) == ("email", "ann.smith@example.org")
    assert (entry.decision, entry.legal_basis, entry.capture_method) == (
        "granted",
        "consent",
        "double_opt_in",
    )
    assert entry.notice_version == notice and entry.ip == "203.0.113.9" and entry.source.slug == "shop"
    assert entry.recorded_by == "source:shop"


def test_the_same_statement_sent_twice_is_stored_once(record_consents):
    given = statement(("phone", "+1 (415) 555-0132"), effective_at="2026-03-01T10:00:00Z")

    first = record_consents(given)
    second = record_consents(given, dict(given, identifier={"type": "phone", "value": "415.555.0132"}))

    assert ConsentEntry.objects.count() == 1
    assert first["recorded"][0]["status"] == "created"
    assert [r["status"] for r in second["recorded"]] == ["duplicate", "duplicate"]
    assert {r["id"] for r in second["recorded"]} == {first["recorded"][0]["id"]}


def test_an_idempotency_key_reused_for_another_statement_is_refused(record_consents):
    record_consents(statement(("email", "a@example.org"), idempotency_key="k1"))

    answer = record_consents(statement(("email", "a@example.org"), decision="denied", idempotency_key="k1"))

    assert answer["recorded"] == []
    assert answer["rejected"][0]["field"] == "idempotency_key"
    assert ConsentEntry.objects.count() == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"identifier": {"type": "email", "value": "not-an-email"}}, "identifier.value"),
        ({"identifier": {"type": "fax", "value": "1"}}, "identifier.type"),
        ({"purpose": "astrology"}, "purpose"),
        ({"channel": "pigeon"}, "channel"),
        ({"decision": "maybe"}, "decision"),
        ({"effective_at": "2999-01-01T00:00:00Z"}, "effective_at"),
        ({"effective_at": "yesterday"}, "effective_at"),
        ({"expires_at": "2020-01-01T00:00:00Z", "effective_at": "2021-01-01T00:00:00Z"}, "expires_at"),
        ({"ip": "999.1.1.1"}, "ip"),
        ({"capture_method": "telepathy"}, "capture_method"),
        ({"profile": "00000000-0000-4000-8000-000000000000"}, "identifier"),
        ({"notice_version": {"notice": "none", "version": "1"}}, "notice_version"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_an_invalid_statement_is_rejected_with_the_field_and_kept(record_consents, change, field):
    valid = statement(("email", "ok@example.org"), effective_at="2026-01-01T00:00:00Z")

    answer = record_consents(valid, dict(valid, **change, idempotency_key="other"))

    assert len(answer["recorded"]) == 1
    assert answer["rejected"][0]["index"] == 1 and answer["rejected"][0]["field"] == field
    kept = ConsentRejection.objects.get()
    assert kept.field == field and kept.payload["idempotency_key"] == "other"


def test_a_valid_tcf_string_is_decoded_and_stored_as_evidence(record_consents):
    string = tc_string(purposes_consent=(1, 3, 4))

    answer = record_consents(statement(("email", "t@example.org"), tcf_string=string, capture_method=None))

    entry = ConsentEntry.objects.get(pk=answer["recorded"][0]["id"])
    assert entry.capture_method == "tcf"
    assert entry.evidence["tcf"]["string"] == string
    assert entry.evidence["tcf"]["purposes_consent"] == [1, 3, 4]
    assert entry.evidence["tcf"]["policy_version"] == 4


@pytest.mark.parametrize(
    ("string", "reason"),
    [
        (tc_string(policy_version=2), "policy version 2"),
        (tc_string(cmp_id=0), "CMP id 0"),
        (tc_string(purposes_li=(2, 4)), "purpose(s) 4"),
        (tc_string(version=1), "version 1"),
        ("not a tc string!", "base64url"),
    ],
)
def test_an_invalid_tcf_string_is_rejected_with_the_reason_and_kept(record_consents, string, reason):
    answer = record_consents(statement(("email", "t@example.org"), tcf_string=string))

    assert answer["recorded"] == []
    assert answer["rejected"][0]["field"] == "tcf_string"
    assert reason in answer["rejected"][0]["reason"]
    assert ConsentRejection.objects.get().payload["tcf_string"] == string


def test_a_tcf_string_from_the_future_is_rejected(record_consents):
    from datetime import UTC, datetime

    answer = record_consents(
        statement(("email", "t@example.org"), tcf_string=tc_string(created=datetime(2100, 1, 1, tzinfo=UTC)))
    )

    assert "in the future" in answer["rejected"][0]["reason"]


@pytest.mark.parametrize(
    ("body", "status"),
    [({"consents": []}, 400), ({"records": []}, 400), ([], 400), ({"consents": [{}] * 1001}, 413)],
)
def test_a_malformed_envelope_is_refused(consent_client, body, status):
    response = consent_client.post("/api/v1/consents", data=json.dumps(body), content_type="application/json")

    assert response.status_code == status
    assert response.json()["errors"][0]["field"]


def test_a_key_without_the_consent_scope_cannot_record(vocabulary, make_source, source_client):
    shop = make_source("shop2", "web")  # default scopes: records and events only

    response = source_client(shop).post(
        "/api/v1/consents",
        data=json.dumps({"consents": [statement(("email", "a@example.org"))]}),
        content_type="application/json",
    )

    assert response.status_code == 403
    assert not ConsentEntry.objects.exists()


def test_staff_record_only_with_the_permission(vocabulary, staff_user, django_user_model):
    from django.contrib.auth.models import Permission

    client = APIClient()
    client.force_login(staff_user)
    body = json.dumps({"consents": [statement(("email", "a@example.org"), capture_method="agent")]})

    refused = client.post("/api/v1/consents", data=body, content_type="application/json")
    staff_user.user_permissions.add(Permission.objects.get(codename="add_consententry"))
    staff_user = django_user_model.objects.get(pk=staff_user.pk)
    client.force_login(staff_user)
    accepted = client.post("/api/v1/consents", data=body, content_type="application/json")

    assert refused.status_code == 403
    assert accepted.status_code == 200
    assert ConsentEntry.objects.get().recorded_by == "staff:staff"


def test_the_ledger_refuses_changes_and_deletions_in_the_application(record_consents):
    record_consents(statement(("email", "a@example.org")))
    entry = ConsentEntry.objects.get()

    entry.decision = "denied"
    with pytest.raises(LedgerImmutable):
        entry.save()
    with pytest.raises(LedgerImmutable):
        entry.delete()
    with pytest.raises(LedgerImmutable):
        ConsentEntry.objects.filter(pk=entry.pk).update(decision="denied")
    with pytest.raises(LedgerImmutable):
        ConsentEntry.objects.all().delete()
    assert ConsentEntry.objects.get().decision == "granted"


@pytest.mark.postgres
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE consent_consententry SET decision = 'denied'",
        "DELETE FROM consent_consententry",
    ],
)
def test_the_database_refuses_changes_and_deletions_of_ledger_rows(record_consents, sql):
    record_consents(statement(("email", "a@example.org")))

    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)

    assert ConsentEntry.objects.get().decision == "granted"


def test_the_admin_shows_the_ledger_read_only(record_consents, admin_client):
    record_consents(statement(("email", "a@example.org")))
    entry = ConsentEntry.objects.get()

    page = admin_client.get(f"/admin/consent/consententry/{entry.pk}/change/")
    changed = admin_client.post(f"/admin/consent/consententry/{entry.pk}/change/", {"decision": "denied"})
    deleted = admin_client.post(f"/admin/consent/consententry/{entry.pk}/delete/", {"post": "yes"})

    assert page.status_code == 200 and b"a@example.org" in page.content
    assert changed.status_code == 403 and deleted.status_code == 403
    assert ConsentEntry.objects.get().decision == "granted"


def test_a_notice_version_added_in_the_admin_gets_the_hash_of_its_text(vocabulary, admin_client):
    response = admin_client.post(
        "/admin/consent/noticeversion/add/",
        {
            "notice": "signup",
            "version": "1",
            "language": "en",
            "text": "We will email you.",
            "published_at_0": "2026-01-01",
            "published_at_1": "00:00:00",
        },
    )

    assert response.status_code == 302, response.content[:2000]
    assert NoticeVersion.objects.get().text_sha256 == text_hash("We will email you.")


@pytest.mark.parametrize("model", ["purpose", "channel", "noticeversion", "consententry", "consentrejection"])
def test_the_consent_admin_pages_open(record_consents, admin_client, model):
    record_consents(statement(("email", "a@example.org")), statement(("email", "bad"), idempotency_key="x"))

    assert admin_client.get(f"/admin/consent/{model}/").status_code == 200


def test_a_retry_with_the_same_idempotency_key_and_no_time_is_a_duplicate(record_consents):
    """Given a statement sent with an idempotency key and no effective_at (it defaults to receipt time),
    when the sender retries it a moment later, then it is recognised as the same statement."""
    statement = {
        "identifier": {"type": "email", "value": "retry@example.org"},
        "purpose": "marketing",
        "channel": "email",
        "decision": "granted",
        "capture_method": "form",
        "idempotency_key": "form-submit-42",
    }
    first = record_consents(statement)
    again = record_consents(statement)

    assert first["recorded"][0]["status"] == "created"
    assert again["recorded"][0] == {"index": 0, "id": first["recorded"][0]["id"], "status": "duplicate"}
    assert again["rejected"] == []
