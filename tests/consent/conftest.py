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


# --- Data-subject requests -------------------------------------------------------------------------------

DSR_PERMISSIONS = ("add", "view", "change", "execute")


@pytest.fixture
def officer_client(django_user_model, vocabulary):
    """A privacy officer: staff holding the data-subject request permissions."""
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("officer", password="officer-pass-1", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="consent",
            codename__in=[f"{p}_datasubjectrequest" for p in DSR_PERMISSIONS],
        )
    )
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def dsr(officer_client):
    """Call the DSR API as the officer: ``dsr("post", "", body)`` -> decoded JSON."""

    def call(method, path="", body=None, expect=200):
        url = "/api/v1/dsr" + path
        if method == "get":
            response = officer_client.get(url)
        else:
            response = officer_client.post(url, data=json.dumps(body or {}), content_type="application/json")
        assert response.status_code == expect, response.content
        return response.json()

    return call


@pytest.fixture
def track(django_capture_on_commit_callbacks):
    """Receive and process tracking messages of a source through the services."""
    from ingestion.services import events_receive

    def send(source, *messages):
        with django_capture_on_commit_callbacks(execute=True):
            return events_receive(source=source, messages=list(messages))

    return send


ANN = {
    "first_name": "Annabel",
    "last_name": "Zyxwortle",
    "email": "Annabel.Zyxwortle@Example.com",
    "phone": "+44 20 7946 0958",
    "crm_id": "CRM-ANN-4711",
    "user_id": "web-user-annz",
    "anonymous_id": "anon-device-annz-42",
}
BOB = {"first_name": "Robert", "last_name": "Quillfeather", "email": "robert.q@example.org"}


@pytest.fixture
def ann_everywhere(vocabulary, make_source, ingest, track, record_consents, consent_source):
    """Ann's data in every table: two CRM-side profiles merged into one (a tombstone), records of two sources
    with raw payloads, a quarantined payload naming her, tracking events (known and anonymous), consent ledger
    entries and a rejected consent statement. Bob, someone else, is ingested too and must survive."""
    crm = make_source("crm", "crm")
    erp = make_source("erp", "erp")
    web = make_source("web", "web")
    ingest(
        crm,
        [
            {
                "external_id": ANN["crm_id"],
                "attributes": {"first_name": ANN["first_name"], "email": ANN["email"]},
            }
        ],
    )
    ingest(
        erp, [{"external_id": "ERP-9", "attributes": {"last_name": ANN["last_name"], "phone": ANN["phone"]}}]
    )
    # The web shop knows both: the two profiles merge, one becomes a tombstone.
    ingest(
        consent_source,
        [
            {
                "external_id": "shop-ann",
                "attributes": {
                    "full_name": f"{ANN['first_name']} {ANN['last_name']}",
                    "email": ANN["email"].upper(),
                    "phone": "+44 20 79 46 09 58",
                },
            }
        ],
    )
    # Invalid (unknown identifier type): quarantined at intake, payload kept as received.
    ingest(
        crm,
        [
            {
                "external_id": "CRM-BAD-1",
                "attributes": {"email": f"  {ANN['email']} "},
                "identifiers": {"nonsense": ["x"]},
            }
        ],
    )
    track(
        web,
        {
            "type": "identify",
            "userId": ANN["user_id"],
            "anonymousId": ANN["anonymous_id"],
            "traits": {"email": ANN["email"], "firstName": ANN["first_name"]},
        },
        {
            "type": "track",
            "event": "Viewed Product",
            "anonymousId": ANN["anonymous_id"],
            "properties": {"sku": "A-1"},
        },
    )
    record_consents(
        {
            "identifier": {"type": "email", "value": ANN["email"]},
            "purpose": "marketing",
            "channel": "email",
            "decision": "granted",
            "capture_method": "form",
            "ip": "203.0.113.9",
        },
        {
            "identifier": {"type": "phone", "value": ANN["phone"]},
            "purpose": "marketing",
            "channel": "sms",
            "decision": "denied",
            "capture_method": "form",
        },
    )
    record_consents(
        {
            "identifier": {"type": "email", "value": ANN["email"]},
            "purpose": "no-such-purpose",
            "channel": "email",
            "decision": "granted",
        },
    )
    ingest(
        crm,
        [
            {
                "external_id": "CRM-BOB",
                "attributes": {
                    "first_name": BOB["first_name"],
                    "last_name": BOB["last_name"],
                    "email": BOB["email"],
                },
            }
        ],
    )
    record_consents(
        {
            "identifier": {"type": "email", "value": BOB["email"]},
            "purpose": "marketing",
            "channel": "email",
            "decision": "granted",
            "capture_method": "form",
        },
    )
    return {"crm": crm, "erp": erp, "web": web, "shop": consent_source}
