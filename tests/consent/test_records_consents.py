"""Consents inside records of the records API, and erased people's identifiers refused at every door: the
consents API and records rejected at intake."""

import pytest

from consent.models import ConsentEntry, ConsentRejection, SuppressionEntry
from consent.suppression import suppression_hash
from ingestion.models import InboundRecord
from profiles.models import Profile, SourceRecord

pytestmark = pytest.mark.django_db

UPDATED = "2026-03-01T09:30:00Z"


def record(external_id="S-1", consents=None, updated_at=UPDATED, **extra):
    body = {
        "external_id": external_id,
        "attributes": {"first_name": "Ada", "email": "Ada@Example.com"},
        **extra,
    }
    if updated_at:
        body["updated_at"] = updated_at
    if consents is not None:
        body["consents"] = consents
    return body


def ledger():
    return list(
        ConsentEntry.objects.order_by("id").values_list(
            "identifier_type", "identifier_value", "purpose_id", "channel_id", "decision"
        )
    )


@pytest.fixture
def send(consent_source, send_records):
    def post(*records):
        return send_records(consent_source, list(records)).json()

    return post


def test_a_records_consent_is_given_for_its_own_id_at_its_change_time(send, consent_source, check):
    # when the shop sends a customer record that says they opted in to email marketing
    answer = send(record(consents=[{"purpose": "marketing", "channel": "email", "decision": "granted"}]))
    # then the record is accepted and the statement is in the ledger for the record's id in the shop
    assert answer["accepted"] == 1 and answer["rejected"] == []
    assert ledger() == [("shop", "S-1", "marketing", "email", "granted")]
    entry = ConsentEntry.objects.get()
    assert entry.effective_at.isoformat() == "2026-03-01T09:30:00+00:00"
    assert (entry.capture_method, entry.legal_basis, entry.source) == ("import", "consent", consent_source)
    assert entry.evidence == {"source_record": "S-1"}
    # and it reaches the person the record resolved to
    profile = SourceRecord.objects.get(external_id="S-1").profile
    assert entry.recorded_for_profile_id == profile.pk
    assert check(profile.pk, purpose="marketing", channel="email")["allowed"] is True


def test_a_consent_may_name_one_of_the_records_identifiers(send, check):
    send(
        record(
            consents=[
                {
                    "identifier": {"type": "email", "value": " ADA@example.com"},
                    "purpose": "marketing",
                    "channel": "email",
                    "decision": "withdrawn",
                    "effective_at": "2026-02-01T00:00:00Z",
                    "capture_method": "form",
                    "ip": "198.51.100.4",
                }
            ]
        )
    )
    assert ledger() == [("email", "ada@example.com", "marketing", "email", "withdrawn")]
    assert check({"type": "email", "value": "ada@example.com"})["allowed"] is False


def test_the_consents_are_stored_with_the_raw_payload(send):
    consents = [{"purpose": "analytics", "channel": "web", "decision": "denied"}]
    send(record(consents=consents))
    assert InboundRecord.objects.get().payload["consents"] == consents
    assert (
        InboundRecord.objects.get(pk=SourceRecord.objects.get().inbound_seq).payload["consents"] == consents
    )


def test_a_record_sent_again_records_nothing_twice(send):
    body = record(consents=[{"purpose": "marketing", "channel": "sms", "decision": "denied"}])
    send(body)
    send(body)
    # also when the record changed but its statement did not
    send({**body, "attributes": {"first_name": "Ada", "city": "London"}, "updated_at": UPDATED})
    assert ledger() == [("shop", "S-1", "marketing", "sms", "denied")]


BAD = [
    (
        {"purpose": "newsletter", "channel": "email", "decision": "granted"},
        "consents[0].purpose",
        "unknown purpose",
    ),
    (
        {"purpose": "marketing", "channel": "fax", "decision": "granted"},
        "consents[0].channel",
        "unknown channel",
    ),
    ({"purpose": "marketing", "channel": "email", "decision": "maybe"}, "consents[0].decision", "one of"),
    ({"purpose": "marketing", "decision": "granted", "colour": "red"}, "consents[0].colour", "unknown field"),
    (
        {"purpose": "marketing", "decision": "granted", "profile": "0e8c3e8c-0000-0000-0000-000000000000"},
        "consents[0].profile",
        "given for its identifiers",
    ),
    (
        {
            "purpose": "marketing",
            "decision": "granted",
            "identifier": {"type": "email", "value": "eve@example.com"},
        },
        "consents[0].identifier",
        "not one of this record's identifiers",
    ),
    (
        {
            "purpose": "marketing",
            "decision": "granted",
            "identifier": {"type": "email", "value": "not-an-email"},
        },
        "consents[0].identifier.value",
        "not a valid email",
    ),
    (
        {"purpose": "marketing", "decision": "granted", "effective_at": "2999-01-01T00:00:00Z"},
        "consents[0].effective_at",
        "in the future",
    ),
    ("granted", "consents[0]", "JSON object"),
]


@pytest.mark.parametrize(("consent", "field", "reason"), BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_a_bad_consent_rejects_its_record_with_index_field_and_reason(send, consent, field, reason):
    # when a request holds a good record and one whose consent is wrong
    answer = send(record("GOOD"), record("BAD", consents=[consent]))
    # then the good one is accepted, the bad one reported at its index with the field and the reason
    assert answer["accepted"] == 1
    [rejection] = answer["rejected"]
    assert (rejection["index"], rejection["external_id"], rejection["field"]) == (1, "BAD", field)
    assert reason in rejection["reason"]
    # and it waits in the quarantine, nothing of it in the ledger
    bad = InboundRecord.objects.get(external_id="BAD")
    assert (bad.status, bad.error_stage, bad.error_field) == ("quarantined", "validation", field)
    assert ledger() == []


def test_a_consent_without_a_time_needs_the_records_updated_at(send):
    answer = send(
        record("NO-TIME", updated_at=None, consents=[{"purpose": "marketing", "decision": "granted"}]),
        record("SECOND", consents=[{"purpose": "marketing", "decision": "granted"}, {"purpose": "x"}]),
    )
    fields = [(r["index"], r["field"]) for r in answer["rejected"]]
    assert fields == [(0, "consents[0].effective_at"), (1, "consents[1].purpose")]


@pytest.mark.parametrize("consents", [{"purpose": "marketing"}, "yes", [{}] * 51])
def test_consents_must_be_a_short_list(send, consents):
    answer = send(record(consents=consents))
    assert answer["rejected"][0]["field"] == "consents"


def test_a_quarantined_record_replayed_after_the_fix_records_its_consent(
    send, vocabulary, django_capture_on_commit_callbacks
):
    from consent.models import Purpose
    from ingestion.services import quarantine_replay

    # given a record rejected because its purpose is not defined yet
    send(record(consents=[{"purpose": "loyalty", "channel": "email", "decision": "granted"}]))
    assert ledger() == []
    # when the privacy officer adds the purpose and operations replay the quarantine
    Purpose.objects.create(slug="loyalty", name="Loyalty programme", requires_consent=True)
    with django_capture_on_commit_callbacks(execute=True):
        quarantine_replay()
    # then the statement is recorded
    assert ledger() == [("shop", "S-1", "loyalty", "email", "granted")]


# --- Erased people's identifiers ---------------------------------------------------------------------------


@pytest.fixture
def erased(vocabulary):
    """Eve was erased: her email and her shop id are on the suppression list."""
    for kind, value in (("email", "eve@example.com"), ("shop", "S-EVE")):
        SuppressionEntry.objects.create(identifier_type=kind, key_hash=suppression_hash(kind, value))


def hits() -> int:
    return sum(SuppressionEntry.objects.values_list("hits", flat=True))


def test_the_consents_api_refuses_statements_for_an_erased_identifier(
    erased, record_consents, consent_source
):
    # when a statement names Eve's email in another spelling, next to one for someone else
    answer = record_consents(
        {
            "identifier": {"type": "email", "value": " EVE@Example.COM"},
            "purpose": "marketing",
            "decision": "granted",
            "capture_method": "form",
        },
        {
            "identifier": {"type": "email", "value": "fay@example.com"},
            "purpose": "marketing",
            "decision": "granted",
            "capture_method": "form",
        },
    )
    # then hers is refused with a clear reason, the other recorded
    [refused] = answer["rejected"]
    assert (refused["index"], refused["field"]) == (0, "identifier")
    assert "erased" in refused["reason"] and "suppression list" in refused["reason"]
    assert [r["index"] for r in answer["recorded"]] == [1]
    assert ledger() == [("email", "fay@example.com", "marketing", None, "granted")]
    # and the refused statement is not kept (it names her), but counted as a suppression hit
    rejection = ConsentRejection.objects.get()
    assert rejection.payload is None and "eve" not in rejection.reason.casefold()
    assert hits() == 1


def test_a_record_rejected_at_intake_that_names_an_erased_person_keeps_no_payload(erased, send):
    # when the shop sends an invalid record carrying Eve's email, and an invalid record of someone else
    answer = send(
        {"external_id": "S-9", "attributes": {"email": "Eve@Example.com"}, "identifiers": {"nonsense": "x"}},
        {"external_id": "S-10", "attributes": {"email": "gil@example.com"}, "identifiers": {"nonsense": "x"}},
    )
    # then both are reported invalid to the sender
    assert [r["index"] for r in answer["rejected"]] == [0, 1]
    # but Eve's raw payload is not kept, even in the quarantine, and the hit is counted
    eve = InboundRecord.objects.get(index=0)
    assert (eve.payload, eve.external_id, eve.status, eve.outcome) == (None, "", "processed", "suppressed")
    assert (eve.error, eve.error_field) == ("", "")
    assert hits() == 1
    # while the other one waits in the quarantine as received
    other = InboundRecord.objects.get(index=1)
    assert other.status == "quarantined" and other.payload["external_id"] == "S-10"


def test_a_record_with_bad_consents_for_an_erased_id_keeps_no_payload(erased, send):
    send(record("S-EVE", consents=[{"purpose": "nope"}]))
    assert InboundRecord.objects.get().payload is None
    assert hits() == 1 and not ConsentEntry.objects.exists()


def test_a_tracking_message_rejected_at_intake_that_names_an_erased_person_keeps_no_payload(
    erased, consent_source, track
):
    from ingestion.models import IdentifierType

    IdentifierType.objects.get_or_create(name="anonymous_id", defaults={"normaliser": "text"})
    # a track without an event name (invalid), from Eve's user id at the shop
    receipt = track(consent_source, {"type": "track", "userId": "S-EVE", "messageId": "m-1"})
    assert receipt.rejections[0].field == "event"
    row = InboundRecord.objects.get(batch=receipt.batch)
    assert (row.payload, row.outcome) == (None, "suppressed") and hits() == 1


def test_a_valid_record_of_an_erased_person_records_none_of_its_consents(erased, send):
    send(record("S-EVE", consents=[{"purpose": "marketing", "channel": "email", "decision": "granted"}]))
    assert InboundRecord.objects.get().outcome == "suppressed"
    assert not ConsentEntry.objects.exists() and not Profile.objects.exists()
