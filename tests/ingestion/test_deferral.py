"""Items a pipeline step defers (their locks are busy) are processed in a later transaction of the same task."""

import pytest

from ingestion.models import InboundRecord
from ingestion.pipeline import pipeline_steps
from ingestion.services import inbound_process, records_receive

CALLS: list[tuple[str, bool]] = []  # (external id, batch.wait) of every item each transaction saw


def defer_busy(batch):
    """Defer the items whose external id starts with BUSY, unless the batch must wait (as a lock would be)."""
    CALLS.extend((item.external_id, batch.wait) for item in batch.items)
    if not batch.wait:
        batch.defer([item for item in batch.items if item.external_id.startswith("BUSY")])


@pytest.fixture
def busy_pipeline(settings, monkeypatch):
    import ingestion.services

    monkeypatch.setattr(ingestion.services, "_schedule", lambda batch: None)
    CALLS.clear()
    working = list(settings.CDP_PIPELINE)
    pipeline_steps.cache_clear()
    settings.CDP_PIPELINE = ["tests.ingestion.test_deferral.defer_busy", *working]
    yield
    pipeline_steps.cache_clear()


def receive(source, *external_ids):
    records_receive(
        source=source, records=[{"external_id": x, "attributes": {"first_name": x}} for x in external_ids]
    )


def test_deferred_items_go_first_in_the_next_transaction_and_the_rest_wait_at_the_end(
    crm, busy_pipeline, settings
):
    settings.CDP_RESOLVE_CHUNK_SIZE = 2
    receive(crm, "BUSY-1", "C2", "C3", "BUSY-4", "C5")

    result = inbound_process(
        inbound_ids=list(InboundRecord.objects.order_by("id").values_list("id", flat=True))
    )

    assert (result.processed, result.quarantined) == (5, 0)
    assert CALLS == [  # two records a transaction
        ("BUSY-1", False),  # deferred
        ("C2", False),
        ("BUSY-1", False),  # first in the next transaction, deferred again
        ("C3", False),
        ("BUSY-1", False),  # BUSY-4 waited its turn behind it; C5 waits behind both
        ("BUSY-4", False),
        ("BUSY-1", True),  # after the last chunk: what is left, waiting for the locks
        ("BUSY-4", True),
        ("C5", True),
    ]
    assert set(InboundRecord.objects.values_list("status", flat=True)) == {InboundRecord.Status.PROCESSED}
    assert InboundRecord.objects.get(external_id="BUSY-4").outcome == "created"


def test_every_version_of_a_deferred_record_is_deferred_with_it(crm, busy_pipeline):
    receive(crm, "BUSY-1", "C2")
    records_receive(source=crm, records=[{"external_id": "BUSY-1", "attributes": {"first_name": "Newer"}}])

    inbound_process(inbound_ids=list(InboundRecord.objects.order_by("id").values_list("id", flat=True)))

    assert CALLS[-2:] == [("BUSY-1", True), ("BUSY-1", True)]
    assert sorted(InboundRecord.objects.filter(external_id="BUSY-1").values_list("outcome", flat=True)) == [
        "created",
        "superseded",
    ]
