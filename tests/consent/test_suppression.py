"""Erased people stay erased: a later record or event carrying a suppressed identifier is not ingested."""

import pytest
from django.conf import settings
from django.db import connection

from consent.models import SuppressionEntry
from consent.suppression import suppression_hash
from ingestion.models import InboundRecord
from profiles.models import Event, Identity, Profile, SourceRecord

from .conftest import ANN

pytestmark = pytest.mark.django_db


@pytest.fixture
def ann_erased(ann_everywhere, dsr):
    opened = dsr(
        "post", "", {"type": "erasure", "identifier": {"type": "email", "value": ANN["email"]}}, expect=201
    )
    dsr("post", f"/{opened['id']}/verify", {"method": "email link"})
    dsr("post", f"/{opened['id']}/execute")
    return ann_everywhere


def hits() -> int:
    return sum(SuppressionEntry.objects.values_list("hits", flat=True))


def test_suppression_runs_before_anything_is_stored():
    steps = list(settings.CDP_PIPELINE)
    before = steps[: steps.index("consent.pipeline.drop_suppressed")]
    assert before == ["profiles.pipeline.claim"]  # it takes locks and stores nothing


@pytest.mark.parametrize(
    "record",
    [
        {"external_id": "NEW-1", "attributes": {"email": "  ANNABEL.Zyxwortle@EXAMPLE.com "}},
        {"external_id": "NEW-2", "attributes": {"phone": "+44 (20) 7946-0958"}},
        {"external_id": ANN["crm_id"], "attributes": {"first_name": "Annabel"}},  # the CRM syncs her back
    ],
)
def test_a_record_with_a_suppressed_identifier_is_dropped(ann_erased, ingest, record):
    receipt = ingest(ann_erased["crm"], [record])

    inbound = InboundRecord.objects.get(batch=receipt.batch)
    assert (inbound.status, inbound.outcome) == ("processed", "suppressed")
    assert inbound.payload is None and inbound.external_id == ""  # not even the raw payload is kept
    assert not SourceRecord.objects.filter(
        source=ann_erased["crm"], external_id=record["external_id"]
    ).exists()
    assert Profile.objects.count() == 1  # only Bob
    assert hits() == 1


def test_a_tracking_event_with_a_suppressed_anonymous_id_is_dropped(ann_erased, track):
    receipt = track(
        ann_erased["web"], {"type": "track", "event": "Came Back", "anonymousId": ANN["anonymous_id"]}
    )

    assert InboundRecord.objects.get(batch=receipt.batch).outcome == "suppressed"
    assert not Event.objects.exists()
    entry = SuppressionEntry.objects.get(key_hash=suppression_hash("anonymous_id", ANN["anonymous_id"]))
    assert entry.hits == 1 and entry.last_hit_at is not None


def test_an_identify_with_a_suppressed_email_is_dropped(ann_erased, track):
    track(
        ann_erased["web"],
        {"type": "identify", "userId": "someone-new", "traits": {"email": ANN["email"].upper()}},
    )
    assert not Identity.objects.filter(value="someone-new").exists()
    assert hits() == 1


def test_other_people_are_still_ingested(ann_erased, ingest):
    receipt = ingest(
        ann_erased["crm"],
        [
            {"external_id": "CRM-BOB", "attributes": {"city": "Leeds"}},
            {"external_id": "NEW-3", "attributes": {"email": ANN["email"]}},
        ],
    )
    outcomes = dict(InboundRecord.objects.filter(batch=receipt.batch).values_list("index", "outcome"))
    assert outcomes[1] == "suppressed" and outcomes[0] != "suppressed"
    assert Profile.objects.get().golden["city"] == "Leeds"


def test_a_deletion_of_a_suppressed_record_is_dropped_quietly(
    ann_erased, source_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = source_client(ann_erased["crm"]).delete(f"/api/v1/sources/crm/records/{ANN['crm_id']}")
    assert response.status_code in (202, 204)
    assert InboundRecord.objects.filter(operation="delete").get().outcome == "suppressed"


def test_without_suppressions_the_step_costs_the_locks_and_one_query(
    vocabulary, make_source, ingest, django_assert_max_num_queries
):
    from consent.pipeline import drop_suppressed
    from ingestion.normalise import NormalisedRecord
    from ingestion.pipeline import PipelineBatch, PipelineItem

    source = make_source("crm", "crm")
    items = [
        PipelineItem(
            i,
            "upsert",
            f"X-{i}",
            version_at=None,
            record=NormalisedRecord(f"X-{i}", None, {}, [("crm", f"X-{i}"), ("email", f"x{i}@example.com")]),
        )
        for i in range(50)
    ]
    # One statement takes the advisory locks of every key (PostgreSQL only), one reads the list.
    with django_assert_max_num_queries(2 if connection.vendor == "postgresql" else 1):
        drop_suppressed(PipelineBatch(source=source, items=items))
    assert not any(item.finished for item in items)
