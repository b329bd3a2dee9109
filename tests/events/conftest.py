"""Fixtures of the tracking tests: a web shop source and ways to send Segment messages as its SDK would."""

import base64
import gzip
import importlib
import json

import pytest
from rest_framework.test import APIClient

from ingestion.models import IdentifierType
from profiles.models import Event, Profile, SourceRecord


@pytest.fixture
def seeded_rules(db):
    """The rules the data migrations seed (a transactional test empties every table when it ends)."""
    seed = importlib.import_module("ingestion.migrations.0002_seed_identifier_rules")
    for rule in seed.DEFAULT_RULES:
        IdentifierType.objects.get_or_create(name=rule["name"], defaults=rule)
    IdentifierType.objects.get_or_create(name="anonymous_id", defaults={"normaliser": "text"})


@pytest.fixture
def shop(make_source, seeded_rules):
    """A web shop with a write key (``shop.api_key``)."""
    return make_source("shop", kind="web")


def basic_auth(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


@pytest.fixture
def post_tracking(django_capture_on_commit_callbacks):
    """POST a body to a tracking endpoint with the write key as the Basic user name, as the SDKs do; the
    processing the request schedules runs before it returns."""

    def post(source, path, body, *, gzipped=False, key=None, headers=None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        extra = {"HTTP_AUTHORIZATION": basic_auth(key or source.api_key), **(headers or {})}
        if gzipped:
            data = gzip.compress(data)
            extra["HTTP_CONTENT_ENCODING"] = "gzip"
        with django_capture_on_commit_callbacks(execute=True):
            return APIClient().generic("POST", path, data, content_type="application/json", **extra)

    return post


@pytest.fixture
def send_batch(post_tracking):
    def send(source, messages, **kwargs):
        response = post_tracking(source, "/v1/batch", {"batch": messages, **kwargs})
        assert response.status_code == 200, response.content
        return response.json()

    return send


@pytest.fixture
def profile_of_user(db):
    """The profile a user id (or ``anonymous:<id>``) of a source resolved to."""

    def get(source, user_id: str) -> Profile:
        return SourceRecord.objects.get(source=source, external_id=user_id).profile

    return get


@pytest.fixture
def events_of(db):
    def get(profile) -> list[tuple[str, str]]:
        return list(
            Event.objects.filter(profile=profile).order_by("timestamp", "id").values_list("type", "name")
        )

    return get


def failing_step(batch):
    """A pipeline step that breaks on messages whose id starts with BOOM (a bug, an outage)."""
    for item in batch.items:
        if item.event is not None and item.event.message_id.startswith("BOOM"):
            raise RuntimeError("enrichment service unavailable")


@pytest.fixture
def broken_pipeline_for_events(settings):
    """Put ``failing_step`` first in the pipeline; call the returned function to remove the cause."""
    from ingestion.pipeline import pipeline_steps

    working = list(settings.CDP_PIPELINE)
    pipeline_steps.cache_clear()
    settings.CDP_PIPELINE = ["tests.events.conftest.failing_step", *working]

    def repair():
        settings.CDP_PIPELINE = working
        pipeline_steps.cache_clear()

    yield repair
    pipeline_steps.cache_clear()
