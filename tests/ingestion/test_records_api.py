"""The records API as a source system sees it: POST / DELETE records, then follow the batch."""

import json
import uuid

import pytest

from ingestion.models import Batch, IdentifierType, InboundRecord

JON = {
    "external_id": "C1",
    "attributes": {"first_name": "Jon", "last_name": "Doe", "email": "jon@example.org"},
}


def lookup(client, kind: str, value: str) -> dict | None:
    response = client.get("/api/v1/profiles/lookup", {"type": kind, "value": value})
    assert response.status_code in (200, 404), response.content
    return response.json() if response.status_code == 200 else None


def batch_of(client, response) -> dict:
    status = client.get(f"/api/v1/batches/{response.json()['batch']}")
    assert status.status_code == 200, status.content
    return status.json()


# --- Accepting records ---------------------------------------------------------------------------------


def test_accepted_records_answer_202_with_a_batch_to_follow(crm, send_records, staff_client):
    response = send_records(crm, [JON, {"external_id": "C2", "attributes": {"first_name": "Ann"}}])

    body = response.json()
    assert body["accepted"] == 2
    assert body["rejected"] == []
    assert body["status_url"].endswith(f"/api/v1/batches/{body['batch']}")
    assert staff_client.get(body["status_url"]).status_code == 200
    assert lookup(staff_client, "crm", "C1")["display_name"] == "Jon Doe"
    assert lookup(staff_client, "crm", "C2")["display_name"] == "Ann"


def test_valid_records_are_kept_when_others_of_the_request_are_rejected(crm, send_records, staff_client):
    response = send_records(
        crm,
        [
            JON,
            {"external_id": "C2", "attributes": {"email": "not-an-email"}},
            {"external_id": "C3", "attributes": {"first_name": "Ann"}},
        ],
    )

    body = response.json()
    assert body["accepted"] == 2
    assert [(r["index"], r["external_id"], r["field"]) for r in body["rejected"]] == [
        (1, "C2", "attributes.email")
    ]
    assert "email" in body["rejected"][0]["reason"]
    assert lookup(staff_client, "crm", "C1") is not None
    assert lookup(staff_client, "crm", "C2") is None
    assert lookup(staff_client, "crm", "C3") is not None


@pytest.mark.parametrize(
    ("record", "field"),
    [
        pytest.param("C2", "", id="record-a-string"),
        pytest.param(None, "", id="record-null"),
        pytest.param(42, "", id="record-a-number"),
        pytest.param([{"external_id": "C2"}], "", id="record-a-list"),
        pytest.param({}, "external_id", id="no-external-id"),
        pytest.param({"external_id": ""}, "external_id", id="blank-external-id"),
        pytest.param({"external_id": {"id": "C2"}}, "external_id", id="external-id-an-object"),
        pytest.param({"external_id": "C" * 256}, "external_id", id="external-id-too-long"),
        pytest.param({"external_id": "C2", "firstname": "Ann"}, "firstname", id="unknown-record-field"),
        pytest.param({"external_id": "C2", "attributes": ["Ann"]}, "attributes", id="attributes-a-list"),
        pytest.param({"external_id": "C2", "attributes": "Ann"}, "attributes", id="attributes-a-string"),
        pytest.param(
            {"external_id": "C2", "attributes": {"last_name": ["Doe"]}},
            "attributes.last_name",
            id="canonical-attribute-a-list",
        ),
        pytest.param(
            {"external_id": "C2", "attributes": {"email": "ann@"}}, "attributes.email", id="invalid-email"
        ),
        pytest.param(
            {"external_id": "C2", "attributes": {"phone": "555"}}, "attributes.phone", id="impossible-phone"
        ),
        pytest.param(
            {"external_id": "C2", "attributes": {"phone": "call me maybe"}},
            "attributes.phone",
            id="phone-words",
        ),
        pytest.param(
            {"external_id": "C2", "attributes": {"birth_date": "the 5th of May"}},
            "attributes.birth_date",
            id="birth-date-nonsense",
        ),
        pytest.param(
            {"external_id": "C2", "attributes": {"birth_date": "2001-02-29"}},
            "attributes.birth_date",
            id="birth-date-impossible",
        ),
        pytest.param(
            {"external_id": "C2", "updated_at": "last tuesday"}, "updated_at", id="updated-at-nonsense"
        ),
        pytest.param({"external_id": "C2", "updated_at": 1714564800}, "updated_at", id="updated-at-a-number"),
        pytest.param(
            {"external_id": "C2", "updated_at": "9999-12-31T23:59:59-14:00"},
            "updated_at",
            id="updated-at-beyond-year-9999-in-utc",
        ),
        pytest.param(
            {"external_id": "C2", "identifiers": ["ann@example.org"]}, "identifiers", id="identifiers-a-list"
        ),
        pytest.param(
            {"external_id": "C2", "identifiers": {"twitter": "@ann"}},
            "identifiers.twitter",
            id="undeclared-identifier-type",
        ),
        pytest.param(
            {"external_id": "C2", "identifiers": {"email": ["ann@example.org", "nope"]}},
            "identifiers.email[1]",
            id="one-bad-identifier-of-several",
        ),
        pytest.param(
            {"external_id": "C2", "identifiers": {"phone": {"home": "202-555-0143"}}},
            "identifiers.phone",
            id="identifier-an-object",
        ),
    ],
)
def test_an_invalid_record_is_rejected_with_its_index_field_and_reason(crm, send_records, record, field):
    response = send_records(crm, [JON, record])

    body = response.json()
    assert body["accepted"] == 1
    assert len(body["rejected"]) == 1
    rejection = body["rejected"][0]
    assert (rejection["index"], rejection["field"]) == (1, field)
    assert rejection["reason"]


def test_custom_attributes_are_kept(crm, send_records, staff_client):
    send_records(
        crm, [{"external_id": "C1", "attributes": {"first_name": "Jon", "shoe_size": 44, "tags": ["vip"]}}]
    )

    profile = lookup(staff_client, "crm", "C1")
    assert profile["attributes"]["shoe_size"]["value"] == 44
    assert profile["attributes"]["tags"]["value"] == ["vip"]


def test_a_source_maps_its_own_field_names_to_canonical_attributes(make_source, send_records, staff_client):
    shop = make_source("shop", "web", field_mapping={"FirstName": "first_name", "Mail": "email"})

    send_records(shop, [{"external_id": "S1", "attributes": {"FirstName": "Jon", "Mail": "Jon@Example.org"}}])

    profile = lookup(staff_client, "email", "jon@example.org")
    assert profile["attributes"]["first_name"]["value"] == "Jon"


def test_a_record_waiting_while_its_source_changes_its_mapping_is_processed_under_the_new_one(
    make_source, source_client, staff_client, django_capture_on_commit_callbacks
):
    shop = make_source("shop", "web", field_mapping={"Mail": "email"})
    with django_capture_on_commit_callbacks() as scheduled:  # stored, waiting for a worker
        response = source_client(shop).post(
            "/api/v1/sources/shop/records",
            data=json.dumps(
                {"records": [{"external_id": "S1", "attributes": {"Name": "Jon", "Mail": "J@x.org"}}]}
            ),
            content_type="application/json",
        )
    assert response.status_code == 202
    shop.field_mapping = {"Mail": "email", "Name": "first_name"}
    shop.save()

    for callback in scheduled:
        callback()

    profile = lookup(staff_client, "shop", "S1")
    assert profile["attributes"]["first_name"]["value"] == "Jon"
    assert "Name" not in profile["attributes"]


def test_processing_takes_the_record_as_intake_normalised_it(crm, send_records, staff_client, monkeypatch):
    import ingestion.services

    normalise_calls = []
    normalise = ingestion.services.normalise_record
    monkeypatch.setattr(
        ingestion.services,
        "normalise_record",
        lambda raw, rules: normalise_calls.append(raw) or normalise(raw, rules),
    )

    send_records(crm, [JON])

    assert len(normalise_calls) == 1  # at intake only: the worker's caches of emails and phones are cold
    assert lookup(staff_client, "crm", "C1")["display_name"] == "Jon Doe"
    assert InboundRecord.objects.get().normalised is None  # it has served


def test_processing_reads_a_raw_payload_only_where_a_step_uses_it(
    crm, source_client, django_capture_on_commit_callbacks
):
    from ingestion.services import _rows

    plain = {"external_id": "C1", "attributes": {"first_name": "Jon"}}
    consenting = {
        "external_id": "C2",
        "attributes": {"email": "ana@example.com"},
        "consents": [{"purpose": "marketing", "channel": "email", "status": "granted"}],
    }
    with django_capture_on_commit_callbacks():  # stored, waiting for a worker
        response = source_client(crm).post(
            "/api/v1/sources/crm/records",
            data=json.dumps({"records": [plain, consenting]}),
            content_type="application/json",
        )
    assert response.status_code == 202, response.json()

    raw = {
        row.external_id: row.raw for row in _rows(list(InboundRecord.objects.values_list("id", flat=True)))
    }

    assert raw == {"C1": None, "C2": consenting}  # resolution works from the normalised form
    InboundRecord.objects.filter(external_id="C1").update(normalised=None)
    assert (
        _rows(list(InboundRecord.objects.filter(external_id="C1").values_list("id", flat=True)))[0].raw
        == plain
    )


def test_extra_identifiers_link_records_of_different_sources(crm, make_source, send_records, staff_client):
    erp = make_source("erp", "erp")
    send_records(crm, [{"external_id": "C1", "attributes": {"first_name": "Jon"}}])

    send_records(
        erp, [{"external_id": "E1", "attributes": {"company": "Acme"}, "identifiers": {"crm": "C1"}}]
    )

    via_crm, via_erp = lookup(staff_client, "crm", "C1"), lookup(staff_client, "erp", "E1")
    assert via_crm["id"] == via_erp["id"]
    assert via_crm["attributes"]["company"]["value"] == "Acme"


def test_an_identifier_type_can_be_used_once_it_is_declared(crm, send_records, staff_client):
    record = {"external_id": "C1", "identifiers": {"loyalty_id": "GOLD-42"}}
    assert send_records(crm, [record]).json()["rejected"][0]["field"] == "identifiers.loyalty_id"

    IdentifierType.objects.create(name="loyalty_id", normaliser=IdentifierType.Normaliser.CASEFOLD)
    response = send_records(crm, [record])

    assert response.json()["rejected"] == []
    assert lookup(staff_client, "loyalty_id", "gold-42")["id"] == lookup(staff_client, "crm", "C1")["id"]


# --- Malformed requests --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("", id="empty-body"),
        pytest.param({}, id="no-records"),
        pytest.param({"record": [JON]}, id="misspelt-records"),
        pytest.param({"records": []}, id="no-record-in-records"),
        pytest.param({"records": None}, id="records-null"),
        pytest.param({"records": JON}, id="records-an-object"),
        pytest.param({"records": "C1"}, id="records-a-string"),
        pytest.param([JON], id="body-a-list"),
        pytest.param("null", id="body-null"),
        pytest.param('"records"', id="body-a-string"),
    ],
)
def test_a_body_without_a_list_of_records_is_a_400_naming_records(crm, post_body, body):
    response = post_body(crm, body)

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "records"
    assert not Batch.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param('{"records": [', id="truncated"),
        pytest.param("records=C1", id="not-json"),
        pytest.param('{"records": [{"external_id": "C1",}]}', id="trailing-comma"),
        pytest.param('{"records": [{"external_id": "C1", "attributes": {"score": NaN}}]}', id="nan"),
        pytest.param(b'{"records": [{"external_id": "\xff"}]}', id="not-utf8"),
    ],
)
def test_malformed_json_is_a_400(crm, post_body, body):
    response = post_body(crm, body)

    assert response.status_code == 400
    assert response.json()["detail"]
    assert not Batch.objects.exists()


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_a_body_that_is_not_json_is_a_415(crm, post_body, content_type):
    response = post_body(crm, json.dumps({"records": [JON]}), content_type=content_type)

    assert response.status_code == 415
    assert response.json()["detail"]
    assert not Batch.objects.exists()


@pytest.mark.parametrize(
    "record",
    [
        pytest.param({"external_id": "C2", "attributes": {"note": "a\u0000b"}}, id="nul-in-a-value"),
        pytest.param({"external_id": "C\u00002"}, id="nul-in-external-id"),
    ],
)
def test_text_with_nul_characters_never_causes_a_server_error(crm, post_body, record):
    response = post_body(crm, {"records": [JON, record]})

    assert response.status_code in (202, 400), response.content
    if response.status_code == 202:
        assert InboundRecord.objects.count() == 2  # whatever is accepted is stored


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            '{"records": [{"external_id": "C2", "attributes": {"score": 1e999}}]}', id="huge-number"
        ),
        pytest.param(
            '{"records": [{"external_id": "C2", "attributes": {"note": "\\ud800"}}]}', id="surrogate"
        ),
        pytest.param('{"records": [' + "[" * 100_000 + "]" * 100_000 + "]}", id="deeply-nested"),
    ],
)
def test_exotic_json_never_causes_a_server_error(crm, post_body, body):
    response = post_body(crm, body)

    assert response.status_code in (202, 400), response.content
    if response.status_code == 202:
        assert InboundRecord.objects.count() == 1


# --- Limits --------------------------------------------------------------------------------------------


def test_a_thousand_records_fit_in_one_request(crm, post_body):
    records = [{"external_id": f"C{n}"} for n in range(1000)]

    response = post_body(crm, {"records": records})

    assert response.status_code == 202
    assert response.json()["accepted"] == 1000


def test_more_than_a_thousand_records_are_a_413(crm, post_body):
    records = [{"external_id": f"C{n}"} for n in range(1001)]

    response = post_body(crm, {"records": records})

    assert response.status_code == 413
    assert response.json()["errors"][0]["field"] == "records"
    assert not Batch.objects.exists()


def test_a_body_over_5_mb_is_a_413(crm, post_body):
    record = {"external_id": "C1", "attributes": {"notes": "x" * (5 * 1024 * 1024)}}

    response = post_body(crm, {"records": [record]})

    assert response.status_code == 413
    assert response.json()["detail"]
    assert not Batch.objects.exists()


# --- Durability ----------------------------------------------------------------------------------------


def test_every_record_is_stored_exactly_as_sent_rejected_ones_too(crm, send_records):
    records = [
        {
            "external_id": " C1 ",
            "attributes": {"email": "Jon@Example.ORG", "prefs": {"news": [1, None, True]}},
        },
        {"external_id": "C2", "attributes": {"email": "nope"}},
        "a stray string",
        {"external_id": "C3", "attributes": {"first_name": "Zoë  Ünal"}, "unknown": 1},
    ]

    response = send_records(crm, records)

    assert len(response.json()["rejected"]) == 3
    stored = InboundRecord.objects.filter(batch_id=response.json()["batch"]).order_by("index")
    assert [row.payload for row in stored] == records


def test_a_record_whose_processing_fails_is_quarantined_with_the_reason(
    crm, send_records, broken_pipeline, staff_client
):
    response = send_records(crm, [JON, {"external_id": "BOOM-1", "attributes": {"first_name": "Ann"}}])

    batch = batch_of(staff_client, response)
    assert batch["complete"] is True
    assert batch["counts"]["processed"] == 1
    assert batch["counts"]["quarantined"] == 1
    (error,) = batch["errors"]
    assert (error["index"], error["external_id"], error["stage"]) == (1, "BOOM-1", "processing")
    assert "enrichment service unavailable" in error["reason"]
    assert lookup(staff_client, "crm", "C1") is not None  # the healthy record is not held back
    assert lookup(staff_client, "crm", "BOOM-1") is None
    quarantined = InboundRecord.objects.get(external_id="BOOM-1")
    assert quarantined.status == InboundRecord.Status.QUARANTINED
    assert quarantined.payload == {"external_id": "BOOM-1", "attributes": {"first_name": "Ann"}}


# --- Idempotency and ordering --------------------------------------------------------------------------


def test_sending_the_same_record_twice_changes_nothing(crm, send_records, staff_client):
    send_records(crm, [JON])
    before = lookup(staff_client, "crm", "C1")

    response = send_records(crm, [JON])

    assert batch_of(staff_client, response)["outcomes"] == {"unchanged": 1}
    after = lookup(staff_client, "crm", "C1")
    assert after["updated_at"] == before["updated_at"]
    assert after["attributes"] == before["attributes"]


def test_a_newer_version_of_a_record_updates_the_profile(crm, send_records, staff_client):
    send_records(crm, [{**JON, "updated_at": "2024-05-01T12:00:00Z"}])

    response = send_records(
        crm, [{**JON, "updated_at": "2024-05-02T12:00:00Z", "attributes": {"first_name": "Jonathan"}}]
    )

    assert batch_of(staff_client, response)["outcomes"] == {"updated": 1}
    assert lookup(staff_client, "crm", "C1")["attributes"]["first_name"]["value"] == "Jonathan"


def test_an_older_version_of_a_record_does_not_overwrite_a_newer_one(crm, send_records, staff_client):
    send_records(crm, [{**JON, "updated_at": "2024-05-02T12:00:00Z"}])
    before = lookup(staff_client, "crm", "C1")

    response = send_records(
        crm, [{**JON, "updated_at": "2024-05-01T12:00:00Z", "attributes": {"first_name": "Jonathan"}}]
    )

    assert batch_of(staff_client, response)["outcomes"] == {"stale": 1}
    after = lookup(staff_client, "crm", "C1")
    assert after["attributes"]["first_name"]["value"] == "Jon"
    assert after["updated_at"] == before["updated_at"]


def test_within_one_request_the_newest_version_of_a_record_wins(crm, send_records, staff_client):
    send_records(
        crm,
        [
            {"external_id": "C1", "updated_at": "2024-05-02T00:00:00Z", "attributes": {"first_name": "New"}},
            {"external_id": "C1", "updated_at": "2024-05-01T00:00:00Z", "attributes": {"first_name": "Old"}},
        ],
    )

    assert lookup(staff_client, "crm", "C1")["attributes"]["first_name"]["value"] == "New"


# --- Deleting records ----------------------------------------------------------------------------------


def test_deleting_a_record_removes_what_only_it_gave_the_profile(
    crm, make_source, send_records, source_client, staff_client, django_capture_on_commit_callbacks
):
    erp = make_source("erp", "erp")
    send_records(
        crm, [{"external_id": "C1", "attributes": {"first_name": "Jon", "email": "jon@example.org"}}]
    )
    send_records(
        erp,
        [
            {
                "external_id": "E1",
                "attributes": {"email": "jon@example.org", "phone": "(202) 555-0143", "company": "Acme"},
            }
        ],
    )
    assert lookup(staff_client, "erp", "E1")["attributes"]["company"]["value"] == "Acme"

    with django_capture_on_commit_callbacks(execute=True):
        response = source_client(erp).delete("/api/v1/sources/erp/records/E1")

    assert response.status_code == 202
    assert batch_of(staff_client, response)["outcomes"] == {"deleted": 1}
    profile = lookup(staff_client, "crm", "C1")
    assert set(profile["attributes"]) == {"first_name", "email"}
    assert {(i["type"], i["value"]) for i in profile["identities"]} == {
        ("crm", "C1"),
        ("email", "jon@example.org"),
    }
    assert [r["external_id"] for r in profile["records"]] == ["C1"]
    assert lookup(staff_client, "phone", "+12025550143") is None
    assert lookup(staff_client, "erp", "E1") is None


def test_a_record_sent_again_after_its_deletion_comes_back(
    crm, send_records, source_client, staff_client, django_capture_on_commit_callbacks
):
    send_records(crm, [JON])
    with django_capture_on_commit_callbacks(execute=True):
        source_client(crm).delete("/api/v1/sources/crm/records/C1")
    assert lookup(staff_client, "crm", "C1") is None

    send_records(crm, [JON])

    assert lookup(staff_client, "crm", "C1")["display_name"] == "Jon Doe"


def test_deleting_an_unknown_record_is_accepted_and_reported(
    crm, source_client, staff_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = source_client(crm).delete("/api/v1/sources/crm/records/NEVER-SENT")

    assert response.status_code == 202
    assert batch_of(staff_client, response)["outcomes"] == {"unknown": 1}


@pytest.mark.parametrize(
    "external_id",
    [
        pytest.param("x" * 300, id="too-long"),
        pytest.param("C%001", id="nul"),
    ],
)
def test_deleting_with_a_malformed_external_id_is_never_a_server_error(crm, source_client, external_id):
    response = source_client(crm).delete(f"/api/v1/sources/crm/records/{external_id}")

    assert response.status_code in (202, 400, 404), response.content


# --- Batch status --------------------------------------------------------------------------------------


def test_a_batch_reports_its_counts_and_errors(crm, send_records, source_client):
    response = send_records(
        crm, [JON, {"external_id": "C2", "attributes": {"phone": "1"}}, {"external_id": "C3"}]
    )

    batch = batch_of(source_client(crm), response)

    assert batch["id"] == response.json()["batch"]
    assert batch["source"] == "crm"
    assert batch["complete"] is True
    assert batch["counts"] == {
        "received": 3,
        "accepted": 2,
        "rejected": 1,
        "pending": 0,
        "processed": 2,
        "quarantined": 0,
    }
    assert batch["outcomes"] == {"created": 2}
    assert [(e["index"], e["external_id"], e["stage"], e["field"]) for e in batch["errors"]] == [
        (1, "C2", "validation", "attributes.phone")
    ]


def test_a_batch_not_yet_processed_is_reported_pending(crm, post_body, source_client):
    response = post_body(crm, {"records": [JON]})  # the processing scheduled on commit never runs here

    batch = batch_of(source_client(crm), response)

    assert batch["complete"] is False
    assert batch["counts"]["pending"] == 1
    assert batch["counts"]["processed"] == 0


def test_a_source_cannot_see_another_sources_batches(crm, make_source, send_records, source_client):
    erp = make_source("erp", "erp")
    batch_id = send_records(crm, [JON]).json()["batch"]

    response = source_client(erp).get(f"/api/v1/batches/{batch_id}")

    assert response.status_code == 404
    assert response.json()["detail"]


def test_an_unknown_batch_is_a_404(crm, source_client):
    response = source_client(crm).get(f"/api/v1/batches/{uuid.uuid4()}")

    assert response.status_code == 404
    assert response.json()["detail"]
