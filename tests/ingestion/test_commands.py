"""Management commands an operator runs: create sources and keys, replay the quarantine."""

import io
import json

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from ingestion.models import IdentifierType, InboundRecord, Source

JON = {"external_id": "C1", "attributes": {"first_name": "Jon", "email": "jon@example.org"}}


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def last_line(output: str) -> str:
    return output.strip().splitlines()[-1]


def client_for(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def post_records(key: str, slug: str, records=(JON,)):
    return client_for(key).post(
        f"/api/v1/sources/{slug}/records",
        data=json.dumps({"records": list(records)}),
        content_type="application/json",
    )


def lookup(staff_client, kind: str, value: str):
    return staff_client.get("/api/v1/profiles/lookup", {"type": kind, "value": value})


# --- source_create / source_key_create -----------------------------------------------------------------


def test_source_create_prints_a_working_key_as_the_last_line(db):
    key = last_line(run("source_create", "crm", "--kind", "crm", "--name", "Customer Hub"))

    assert post_records(key, "crm").status_code == 202
    assert Source.objects.get(slug="crm").name == "Customer Hub"


def test_a_new_source_key_cannot_write_other_sources(db):
    run("source_create", "erp", "--kind", "erp")
    key = last_line(run("source_create", "crm", "--kind", "crm"))

    assert post_records(key, "erp").status_code == 403


def test_a_new_sources_ids_can_be_sent_as_identifiers_by_other_sources(db):
    run("source_create", "crm", "--kind", "crm")
    erp_key = last_line(run("source_create", "erp", "--kind", "erp"))

    response = post_records(erp_key, "erp", [{"external_id": "E1", "identifiers": {"crm": "C1"}}])

    assert response.json()["rejected"] == []


def test_source_create_reads_phones_in_the_given_region(db, staff_client, django_capture_on_commit_callbacks):
    key = last_line(run("source_create", "shop", "--kind", "web", "--region", "gb"))

    with django_capture_on_commit_callbacks(execute=True):
        post_records(key, "shop", [{"external_id": "S1", "attributes": {"phone": "020 7946 0958"}}])

    assert lookup(staff_client, "phone", "+442079460958").status_code == 200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["crm", "--kind", "crm"], "already exists", id="duplicate-slug"),
        pytest.param(["email", "--kind", "other"], "identifier rule", id="slug-of-an-identifier-type"),
        pytest.param(["national_id", "--kind", "other"], "identifies people", id="slug-of-national-id"),
        pytest.param(["Not A Slug", "--kind", "crm"], "slug", id="invalid-slug"),
        pytest.param(["shop", "--kind", "shop"], "kind", id="unknown-kind"),
    ],
)
def test_source_create_refuses_bad_input_with_a_clear_message(make_source, args, message):
    make_source("crm", "crm")
    IdentifierType.objects.get_or_create(name="email", defaults={"normaliser": "email"})

    with pytest.raises(CommandError, match=message):
        run("source_create", *args)

    assert list(Source.objects.values_list("slug", flat=True)) == ["crm"]


def test_source_key_create_issues_another_working_key(make_source):
    crm = make_source("crm", "crm")

    key = last_line(run("source_key_create", "crm", "--name", "nightly export"))

    assert key != crm.api_key
    assert post_records(key, "crm").status_code == 202
    assert post_records(crm.api_key, "crm").status_code == 202  # the first key keeps working


def test_source_key_create_for_an_unknown_source_is_an_error(db):
    with pytest.raises(CommandError, match="no source 'nope'"):
        run("source_key_create", "nope")


def test_a_key_with_the_profiles_read_scope_reads_profiles_but_writes_nothing(make_source, send_records):
    crm = make_source("crm", "crm")
    send_records(crm, [JON])

    reader_key = last_line(run("source_key_create", "crm", "--scope", "profiles:read"))

    listing = client_for(reader_key).get("/api/v1/profiles", {"email": "jon@example.org"})
    assert [p["display_name"] for p in listing.json()["results"]] == ["Jon"]
    assert post_records(reader_key, "crm").status_code == 403


def test_source_key_create_refuses_an_unknown_scope(make_source):
    make_source("crm", "crm")

    with pytest.raises(CommandError, match="scope"):
        run("source_key_create", "crm", "--scope", "profiles:write")


# --- token_create --------------------------------------------------------------------------------------


def test_token_create_prints_a_working_staff_token_as_the_last_line(staff_user):
    token = last_line(run("token_create", "staff"))

    assert client_for(token).get("/api/v1/profiles").status_code == 200


def test_token_create_for_an_unknown_user_is_an_error(db):
    with pytest.raises(CommandError, match="nobody"):
        run("token_create", "nobody")


# --- reprocess -----------------------------------------------------------------------------------------


def test_reprocess_replays_the_quarantine_once_the_cause_is_removed(
    make_source, send_records, broken_pipeline, staff_client
):
    crm = make_source("crm", "crm")
    batch_id = send_records(
        crm, [JON, {"external_id": "BOOM-1", "attributes": {"first_name": "Ann"}}]
    ).json()["batch"]
    assert lookup(staff_client, "crm", "BOOM-1").status_code == 404

    broken_pipeline()  # the cause is fixed
    output = run("reprocess")

    assert "Processed 1 record(s)" in output
    assert lookup(staff_client, "crm", "BOOM-1").json()["display_name"] == "Ann"
    counts = staff_client.get(f"/api/v1/batches/{batch_id}").json()["counts"]
    assert (counts["processed"], counts["quarantined"]) == (2, 0)
    assert "Processed 0 record(s)" in run("reprocess")  # nothing is replayed twice


def test_reprocess_keeps_records_that_still_fail_in_the_quarantine(
    make_source, send_records, broken_pipeline
):
    crm = make_source("crm", "crm")
    send_records(crm, [{"external_id": "BOOM-1"}])

    output = run("reprocess")

    assert "1 still failing" in output
    record = InboundRecord.objects.get(external_id="BOOM-1")
    assert record.status == InboundRecord.Status.QUARANTINED


def test_reprocess_replays_records_rejected_for_an_identifier_type_declared_since(
    make_source, send_records, staff_client
):
    crm = make_source("crm", "crm")
    send_records(crm, [{"external_id": "C1", "identifiers": {"loyalty_id": "GOLD-42"}}])
    IdentifierType.objects.create(name="loyalty_id", normaliser=IdentifierType.Normaliser.CASEFOLD)

    run("reprocess", "--source", "crm")

    assert lookup(staff_client, "loyalty_id", "Gold-42").json()["records"][0]["external_id"] == "C1"


def test_reprocess_of_one_source_leaves_the_others_quarantine_alone(
    make_source, send_records, broken_pipeline
):
    crm, erp = make_source("crm", "crm"), make_source("erp", "erp")
    send_records(crm, [{"external_id": "BOOM-C"}])
    send_records(erp, [{"external_id": "BOOM-E"}])
    broken_pipeline()

    run("reprocess", "--source", "crm")

    assert dict(InboundRecord.objects.values_list("external_id", "status")) == {
        "BOOM-C": InboundRecord.Status.PROCESSED,
        "BOOM-E": InboundRecord.Status.QUARANTINED,
    }


def test_reprocess_of_one_batch_leaves_other_batches_alone(make_source, send_records, broken_pipeline):
    crm = make_source("crm", "crm")
    first = send_records(crm, [{"external_id": "BOOM-1"}]).json()["batch"]
    send_records(crm, [{"external_id": "BOOM-2"}])
    broken_pipeline()

    run("reprocess", "--batch", first)

    assert dict(InboundRecord.objects.values_list("external_id", "status")) == {
        "BOOM-1": InboundRecord.Status.PROCESSED,
        "BOOM-2": InboundRecord.Status.QUARANTINED,
    }


def test_reprocess_pending_processes_records_whose_task_was_lost(make_source, staff_client):
    crm = make_source("crm", "crm")
    post_records(crm.api_key, "crm")  # stored; the processing scheduled on commit never runs here
    assert lookup(staff_client, "crm", "C1").status_code == 404

    run("reprocess", "--pending")

    assert lookup(staff_client, "crm", "C1").status_code == 200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--source", "nope"], "no source 'nope'", id="unknown-source"),
        pytest.param(["--batch", "not-a-batch-id"], "not-a-batch-id", id="malformed-batch-id"),
    ],
)
def test_reprocess_refuses_bad_input_with_a_clear_message(db, args, message):
    with pytest.raises(CommandError, match=message):
        run("reprocess", *args)
