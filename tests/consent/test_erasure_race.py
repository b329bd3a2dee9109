"""An erasure and a record of the same person processed at the same moment, on PostgreSQL.

Each side runs in its own thread and database connection. A pause is put into the side that goes first, at
the point where the race used to open: the other side must either wait for it (and then see what it did) or
not get in the way. Whatever the interleaving, the person must not come back: no profile, no identity, no
record of them once both are done.
"""

from __future__ import annotations

import threading
import traceback

import pytest
from django.db import connection

import consent.dsr
import ingestion.pipeline
import ingestion.services
from consent.dsr import dsr_execute, dsr_open, dsr_verify
from consent.models import SuppressionEntry
from consent.pipeline import drop_suppressed
from consent.suppression import suppression_hash
from ingestion.models import InboundRecord, Source
from ingestion.services import batch_process, records_receive
from profiles.models import Identity, Profile, SourceRecord

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ANN = {"first_name": "Annabel", "email": "annabel.zyx@example.org", "phone": "+44 20 7946 0958"}
PAUSE = 1.5  # seconds the first side holds on, at most, waiting for the other to overtake it


@pytest.fixture(autouse=True)
def _processing_is_explicit(monkeypatch, vocabulary):
    """Intake only stores: each thread processes its own batch when the scenario says so."""
    monkeypatch.setattr(ingestion.services, "_schedule", lambda batch: None)


@pytest.fixture
def ann(make_source):
    """Ann on one CRM profile, and a verified request to erase her."""
    crm = make_source("crm", "crm")
    make_source("shop", "web")
    receipt = records_receive(source=crm, records=[{"external_id": "CRM-ANN", "attributes": {**ANN}}])
    batch_process(batch_id=receipt.batch.pk)
    request = dsr_open(
        type="erasure", identifiers=[{"type": "email", "value": ANN["email"]}], actor="officer"
    )
    request = dsr_verify(request=request, actor="officer", method="email link")
    return request


def shop_sync():
    """The shop syncs her (another spelling of her email, and a phone only the shop knows): stored raw, not
    processed yet."""
    receipt = records_receive(
        source=Source.objects.get(slug="shop"),
        records=[
            {
                "external_id": "SHOP-ANN",
                "attributes": {"email": ANN["email"].upper(), "phone": "+44 20 7946 0000"},
            }
        ],
    )
    return receipt.batch.pk


def run_together(*jobs) -> None:
    errors: list[str] = []

    def run(job):
        try:
            job()
        except BaseException:
            errors.append(traceback.format_exc())
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(job,), daemon=True) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not [t for t in threads if t.is_alive()], "still running after 60 s (deadlock?)"
    assert not errors, "\n".join(errors)


def assert_ann_is_gone() -> None:
    assert not Profile.objects.exists()
    assert not Identity.objects.exists()
    assert not SourceRecord.objects.filter(profile__isnull=False).exists()
    assert not InboundRecord.objects.filter(payload__isnull=False).exists()
    assert SuppressionEntry.objects.filter(key_hash=suppression_hash("email", ANN["email"])).exists()


def test_a_record_checked_before_the_erasure_commits_is_erased_with_her(ann, monkeypatch):
    """The record passes the suppression check first; the erasure must wait for it, then erase it too."""
    checked, erased = threading.Event(), threading.Event()
    steps = ingestion.pipeline.pipeline_steps()

    def pause_after_the_check(batch):
        checked.set()
        erased.wait(PAUSE)  # the erasure may overtake here, unless it waits for this batch's locks

    paused = (
        *steps[: steps.index(drop_suppressed) + 1],
        pause_after_the_check,
        *steps[steps.index(drop_suppressed) + 1 :],
    )
    monkeypatch.setattr(ingestion.pipeline, "pipeline_steps", lambda: paused)

    batch_id = shop_sync()

    def record():
        batch_process(batch_id=batch_id)

    def erasure():
        assert checked.wait(30)
        dsr_execute(request=ann, actor="officer")
        erased.set()

    run_together(record, erasure)

    assert not InboundRecord.objects.filter(outcome="suppressed").exists()  # it was in first
    assert_ann_is_gone()
    # The phone only the shop knew was found and is suppressed too.
    assert SuppressionEntry.objects.filter(key_hash=suppression_hash("phone", "+442079460000")).exists()


def erasure_paused_after_its_locks(monkeypatch) -> tuple[threading.Event, threading.Event]:
    """The erasure, once it holds the person's locks and read what to delete, sets ``locked`` and waits
    (``PAUSE`` at most) for ``processed``: a record arriving then may overtake it, unless it waits for them."""
    locked, processed = threading.Event(), threading.Event()
    footprint = consent.dsr.subject_footprint_lock

    def footprint_then_pause(**kwargs):
        found = footprint(**kwargs)
        locked.set()
        processed.wait(PAUSE)
        return found

    monkeypatch.setattr(consent.dsr, "subject_footprint_lock", footprint_then_pause)
    return locked, processed


def test_a_record_arriving_while_the_erasure_runs_is_suppressed(ann, monkeypatch):
    """The erasure holds her keys first; the record's suppression check must wait, then drop it."""
    locked, processed = erasure_paused_after_its_locks(monkeypatch)

    batch_ids = []

    def record():
        assert locked.wait(30)
        batch_ids.append(shop_sync())  # after the erasure read what to delete: only the list can stop it
        batch_process(batch_id=batch_ids[0])
        processed.set()

    def erasure():
        dsr_execute(request=ann, actor="officer")

    run_together(record, erasure)

    inbound = InboundRecord.objects.get(batch_id=batch_ids[0])
    assert (inbound.status, inbound.outcome) == ("processed", "suppressed")
    assert_ann_is_gone()


@pytest.fixture
def ann_with_national_id(make_source):
    """Ann on one CRM profile with her national identifier, and a verified request to erase her."""
    crm = make_source("crm", "crm")
    make_source("shop", "web")
    receipt = records_receive(
        source=crm,
        records=[{"external_id": "CRM-ANN", "attributes": {**ANN, "national_id": "AB 12 34 56 C"}}],
    )
    batch_process(batch_id=receipt.batch.pk)
    request = dsr_open(
        type="erasure", identifiers=[{"type": "email", "value": ANN["email"]}], actor="officer"
    )
    return dsr_verify(request=request, actor="officer", method="email link")


def test_a_record_with_only_her_national_id_arriving_while_the_erasure_runs_is_suppressed(
    ann_with_national_id, monkeypatch
):
    """No identifier of hers to lock: the suppression check waits for the erasure on her national id."""
    locked, processed = erasure_paused_after_its_locks(monkeypatch)

    batch_ids = []

    def record():
        assert locked.wait(30)
        receipt = records_receive(
            source=Source.objects.get(slug="shop"),
            records=[
                {
                    "external_id": "SHOP-7",
                    "attributes": {"first_name": "Annabel", "national_id": "ab-123456-c"},
                }
            ],
        )
        batch_ids.append(receipt.batch.pk)
        batch_process(batch_id=batch_ids[0])
        processed.set()

    def erasure():
        dsr_execute(request=ann_with_national_id, actor="officer")

    run_together(record, erasure)

    inbound = InboundRecord.objects.get(batch_id=batch_ids[0])
    assert (inbound.status, inbound.outcome) == ("processed", "suppressed")
    assert_ann_is_gone()
