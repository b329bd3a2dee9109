"""Shared fixtures. Tests run on SQLite by default and on PostgreSQL when DATABASE_URL points at one;
tests marked ``postgres`` (real concurrency) run only there."""

import json
import os
import sys

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from ingestion.services import records_receive, source_create, source_key_create

ON_POSTGRES = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


def pytest_runtest_setup(item):
    if item.get_closest_marker("postgres") and not ON_POSTGRES:
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://...")
    if item.get_closest_marker("worker") and not (ON_POSTGRES and os.environ.get("CELERY_BROKER_URL")):
        pytest.skip("needs PostgreSQL and a broker: set DATABASE_URL and CELERY_BROKER_URL")


@pytest.fixture(autouse=True)
def sdk_connections_closed():
    """After a test, close the kept-alive HTTP connections of the tracking SDKs (module-level sessions):
    otherwise the live server's thread serving one stays open, with its database connection, until the end
    of the run, and the test database cannot be dropped."""
    yield
    for module in ("segment.analytics.request", "rudderstack.analytics.request"):
        if module in sys.modules:
            sys.modules[module]._session.close()


@pytest.fixture
def staff_user(django_user_model):
    """A data steward: reads profiles in full, may not issue keys, replay records or record consent."""
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user("staff", password="staff-pass-1", is_staff=True)
    user.groups.add(Group.objects.get(name="data steward"))
    return user


@pytest.fixture
def staff_client(staff_user):
    client = APIClient()
    client.force_login(staff_user)
    return client


@pytest.fixture
def make_source(db):
    """Create a source the way ``source_create`` does; the new key is on ``source.api_key``."""

    def make(slug: str = "crm", kind: str = "crm", **kwargs):
        source = source_create(slug=slug, kind=kind, **kwargs)
        _, source.api_key = source_key_create(source=source)
        return source

    return make


@pytest.fixture
def crm(make_source):
    return make_source("crm", "crm")


@pytest.fixture
def erp(make_source):
    return make_source("erp", "erp")


@pytest.fixture
def web(make_source):
    return make_source("web", "web")


@pytest.fixture
def source_client():
    """An API client authenticated with a source's key."""

    def make(source):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {source.api_key}")
        return client

    return make


@pytest.fixture
def send_records(source_client, django_capture_on_commit_callbacks):
    """POST records through the API as the source itself, and run the processing the request schedules."""

    def send(source, records, expect=202):
        with django_capture_on_commit_callbacks(execute=True):
            response = source_client(source).post(
                f"/api/v1/sources/{source.slug}/records",
                data=json.dumps({"records": records}),
                content_type="application/json",
            )
        assert response.status_code == expect, response.content
        return response

    return send


@pytest.fixture
def ingest(django_capture_on_commit_callbacks):
    """Receive and process records through the services, without HTTP."""

    def run(source, records):
        with django_capture_on_commit_callbacks(execute=True):
            return records_receive(source=source, records=records)

    return run
