"""A real Celery worker process and a real broker: records posted to the API are resolved in the background.

Runs only with PostgreSQL and a broker (DATABASE_URL, CELERY_BROKER_URL): the worker is a separate process that
must see what the test commits, so it is pointed at the test database pytest created.
"""

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings

from cdp.celery import app
from ingestion.models import IdentifierType, InboundRecord
from profiles.models import Profile, SourceRecord

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

DEADLINE_SECONDS = 60


def _test_database_url() -> str:
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + settings.DATABASES["default"]["NAME"]))


@pytest.fixture
def seeded_rules(db):
    """Transactional tests empty every table, the rows the data migrations seed included: put them back."""
    seed = importlib.import_module("ingestion.migrations.0002_seed_identifier_rules")
    for rule in seed.DEFAULT_RULES:
        IdentifierType.objects.get_or_create(name=rule["name"], defaults=rule)


@pytest.fixture
def real_broker():
    """Send tasks to the broker instead of running them inline, starting from an empty queue."""
    saved = app.conf.task_always_eager, app.conf.broker_url
    app.conf.task_always_eager = False
    app.conf.broker_url = os.environ["CELERY_BROKER_URL"]
    app.control.purge()
    yield
    app.control.purge()
    app.conf.task_always_eager, app.conf.broker_url = saved


@pytest.fixture
def worker(db, real_broker, tmp_path):
    """``celery -A cdp worker`` on the test database; stopped with SIGTERM (warm shutdown) afterwards.

    Its log is printed at teardown, which pytest shows only when the test failed.
    """
    logfile, pidfile, output = tmp_path / "worker.log", tmp_path / "worker.pid", tmp_path / "worker.out"
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "CELERY_BROKER_URL": os.environ["CELERY_BROKER_URL"],
        "SECRET_KEY": "worker-test-secret-key",
        "DJANGO_SETTINGS_MODULE": "cdp.settings",
        "DEBUG": "0",
        "CONN_MAX_AGE": "0",
    }
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "cdp",
        "worker",
        "-l",
        "WARNING",
        "-c",
        "2",
        "-n",
        f"restests-{os.getpid()}@%h",
        f"--pidfile={pidfile}",
        f"--logfile={logfile}",
    ]
    with output.open("w") as out:
        process = subprocess.Popen(
            command, cwd=settings.BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for path in (output, logfile):
            print(f"--- {path.name} ---\n{path.read_text() if Path(path).exists() else '(none)'}")


def wait_until_processed(batch_ids, worker) -> None:
    """Poll the database, bounded, until no record of these batches waits for processing."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    pending = InboundRecord.objects.filter(batch_id__in=batch_ids, status=InboundRecord.Status.PENDING)
    while pending.exists():
        assert worker.poll() is None, f"the worker exited with code {worker.returncode}"
        assert time.monotonic() < deadline, (
            f"{pending.count()} records still pending after {DEADLINE_SECONDS} s"
        )
        time.sleep(0.2)


def test_a_real_worker_resolves_records_posted_to_the_api(
    seeded_rules, worker, make_source, source_client, staff_client
):
    crm, erp, web = make_source("crm", "crm"), make_source("erp", "erp"), make_source("web", "web")
    requests = [
        (
            crm,
            [
                {"external_id": "C1", "attributes": {"first_name": "Ana", "email": "Ana@Example.org"}},
                {"external_id": "C2", "attributes": {"first_name": "Ben", "phone": "+1 202 555 0143"}},
            ],
        ),
        (erp, [{"external_id": "E1", "attributes": {"company": "Acme"}, "identifiers": {"crm": "C1"}}]),
        (web, [{"external_id": "W1", "attributes": {"city": "Leeds", "phone": "(202) 555-0143"}}]),
    ]

    batch_ids = []
    for source, records in requests:
        response = source_client(source).post(
            f"/api/v1/sources/{source.slug}/records",
            data=json.dumps({"records": records}),
            content_type="application/json",
        )
        assert response.status_code == 202, response.content
        batch_ids.append(response.json()["batch"])
    wait_until_processed(batch_ids, worker)

    for batch_id in batch_ids:
        status = staff_client.get(f"/api/v1/batches/{batch_id}").json()
        assert status["complete"] is True
        assert status["counts"]["quarantined"] == 0
    ana = Profile.objects.get(records__source=crm, records__external_id="C1")
    ben = Profile.objects.get(records__source=crm, records__external_id="C2")
    assert ana != ben
    assert Profile.objects.get(records__source=erp, records__external_id="E1") == ana
    assert Profile.objects.get(records__source=web, records__external_id="W1") == ben
    assert set(Profile.objects.filter(status=Profile.Status.ACTIVE)) == {ana, ben}
    assert ana.golden == {"company": "Acme", "email": "ana@example.org", "first_name": "Ana"}
    assert ben.golden == {"city": "Leeds", "first_name": "Ben", "phone": "+12025550143"}
    assert SourceRecord.objects.count() == 4
