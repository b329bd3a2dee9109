"""Fixtures of the consent tests: the seeded vocabulary, callers with the consent scopes, and short ways to
record statements and ask questions through the API."""

import importlib
import json

import pytest
from rest_framework.test import APIClient

from consent.models import Channel, Purpose
from ingestion.models import IdentifierType
from ingestion.services import source_key_create


@pytest.fixture
def vocabulary(db):
    """Purposes, channels and identifier rules as the data migrations seed them (a transactional test
    empties every table when it ends, seeded rows included, so tests put them back first)."""
    seed = importlib.import_module("consent.migrations.0002_seed_purposes_channels")
    for purpose in seed.DEFAULT_PURPOSES:
        Purpose.objects.get_or_create(slug=purpose["slug"], defaults=purpose)
    for channel in seed.DEFAULT_CHANNELS:
        Channel.objects.get_or_create(slug=channel["slug"], defaults=channel)
    rules = importlib.import_module("ingestion.migrations.0002_seed_identifier_rules")
    for rule in rules.DEFAULT_RULES:
        IdentifierType.objects.get_or_create(name=rule["name"], defaults=rule)


@pytest.fixture
def consent_source(vocabulary, make_source):
    """A web shop whose key may write and check consents (and read profiles)."""
    source = make_source("shop", "web")
    _, source.consent_key = source_key_create(
        source=source, scopes=["records:write", "consents:write", "consents:read", "profiles:read"]
    )
    return source


@pytest.fixture
def consent_client(consent_source):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {consent_source.consent_key}")
    return client


@pytest.fixture
def record_consents(consent_client):
    """POST statements to /api/v1/consents as the web shop; returns the decoded answer."""

    def post(*consents, expect=200, client=None):
        response = (client or consent_client).post(
            "/api/v1/consents", data=json.dumps({"consents": list(consents)}), content_type="application/json"
        )
        assert response.status_code == expect, response.content
        return response.json()

    return post


@pytest.fixture
def check(consent_client):
    """Ask /api/v1/consent/check; ``who`` is an identifier dict or a profile id."""

    def ask(who, purpose="marketing", channel="email", at=None, expect=200):
        body = {"purpose": purpose, "channel": channel}
        body.update({"profile": str(who)} if not isinstance(who, dict) else {"identifier": who})
        if at is not None:
            body["at"] = at
        response = consent_client.post(
            "/api/v1/consent/check", data=json.dumps(body), content_type="application/json"
        )
        assert response.status_code == expect, response.content
        return response.json()

    return ask


def statement(
    identifier=None, *, profile=None, purpose="marketing", channel="email", decision="granted", **extra
):
    """One consent statement in the API's shape; ``identifier`` is (type, value)."""
    body = {"purpose": purpose, "channel": channel, "decision": decision, "capture_method": "form", **extra}
    if profile is not None:
        body["profile"] = str(profile)
    else:
        body["identifier"] = {"type": identifier[0], "value": identifier[1]}
    return body
