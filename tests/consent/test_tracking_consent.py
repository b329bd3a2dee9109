"""Consent arriving on tracked events: Segment's consent object (``context.consent.categoryPreferences``) and
the Global Privacy Control signal (``Sec-GPC: 1``), as the SDKs and browsers send them."""

import base64
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from rest_framework.test import APIClient
from segment.analytics import Client as SegmentClient

from consent.models import ConsentEntry
from ingestion.models import IdentifierType

pytestmark = pytest.mark.django_db

ANON = "a81c5c2e-6a4d-4bd5-9a55-1d6f0b7e2f01"
UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"
T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def analytics_js(kind="page", message_id="ajs-next-1", at=T0, preferences=None, user_id=None, **extra):
    """A message as analytics.js (analytics-next) sends it from a browser with a consent wrapper (without
    sentAt, so its time is taken as is; the clock-skew test adds one)."""
    context = {
        "page": {"path": "/", "referrer": "", "search": "", "title": "Shop", "url": "https://shop.example/"},
        "userAgent": UA,
        "locale": "en-GB",
        "library": {"name": "analytics.js", "version": "next-1.70.0"},
        "ip": "203.0.113.7",
    }
    if preferences is not None:
        context["consent"] = {"categoryPreferences": preferences}
    message = {
        "timestamp": iso(at),
        "integrations": {},
        "type": kind,
        "context": context,
        "messageId": message_id,
        "anonymousId": ANON,
        "userId": user_id,
        "_metadata": {"bundled": ["Segment.io"], "unbundled": [], "bundledIds": []},
        **extra,
    }
    if kind == "page":
        message.update(name="Home", properties={"path": "/", "url": "https://shop.example/"})
    if kind == "track":
        message.setdefault("event", "Segment Consent Preference Updated")
    return message


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


@pytest.fixture
def tracking(consent_source, django_capture_on_commit_callbacks):
    """POST a batch to /v1/batch as the shop's browser SDK; ``gpc`` adds the browser's Sec-GPC header."""

    def post(*messages, gpc=None):
        headers = {"HTTP_AUTHORIZATION": basic(consent_source.api_key)}
        if gpc is not None:
            headers["HTTP_SEC_GPC"] = gpc
        body = json.dumps({"batch": list(messages)})
        with django_capture_on_commit_callbacks(execute=True):
            response = APIClient().generic(
                "POST", "/v1/batch", body, content_type="application/json", **headers
            )
        assert response.status_code == 200, response.content
        assert response.json()["rejected"] == []
        return response.json()

    return post


def ledger(**filters):
    return list(
        ConsentEntry.objects.filter(**filters)
        .order_by("effective_at", "purpose_id", "identifier_type", "id")
        .values_list("identifier_type", "identifier_value", "purpose_id", "channel_id", "decision")
    )


ANON_KEY = ("anonymous_id", ANON)


def test_category_preferences_of_a_browser_page_view_become_ledger_entries(tracking, consent_source, check):
    # given a visitor who accepted advertising and analytics, refused functional cookies and data sharing
    prefs = {"Advertising": True, "Analytics": True, "Functional": False, "DataSharing": False}
    # when analytics.js sends a page view stamped with the consent object
    tracking(analytics_js(preferences=prefs))
    # then each mapped category is one statement for the anonymous id, on the web channel (data sharing: all)
    assert sorted(ledger()) == sorted(
        [
            (*ANON_KEY, "analytics", "web", "granted"),
            (*ANON_KEY, "marketing", "web", "granted"),
            (*ANON_KEY, "personalisation", "web", "denied"),
            (*ANON_KEY, "sale_sharing", None, "denied"),
        ]
    )
    entry = ConsentEntry.objects.get(purpose_id="marketing")
    assert entry.capture_method == "tracked" and entry.source == consent_source
    assert entry.effective_at == T0 and entry.legal_basis == "consent"
    assert entry.ip == "203.0.113.7" and entry.user_agent == UA
    assert entry.evidence["message_id"] == "ajs-next-1" and entry.evidence["category_preferences"] == {
        "Advertising": True
    }
    # and the check API answers from them
    visitor = {"type": "anonymous_id", "value": ANON}
    assert check(visitor, purpose="marketing", channel="web")["allowed"] is True
    assert check(visitor, purpose="personalisation", channel="web")["allowed"] is False
    assert check(visitor, purpose="sale_sharing", channel="email")["allowed"] is False


def test_the_effective_time_is_the_events_time_corrected_for_clock_skew(tracking):
    # given a browser whose clock is an hour fast
    skewed = T0 + timedelta(hours=1)
    message = analytics_js(preferences={"Advertising": True}, at=skewed)
    # when it sends the event right away (sentAt by the same fast clock)
    received = datetime.now(UTC)
    tracking({**message, "timestamp": iso(skewed), "sentAt": iso(skewed)})
    # then the statement is dated when it happened by our clock: the event's corrected time
    effective = ConsentEntry.objects.get().effective_at
    assert abs(effective - received) < timedelta(seconds=5)


def test_statements_are_given_for_the_user_id_and_the_anonymous_id_and_follow_the_person(
    tracking, consent_source, check, staff_client
):
    # when a signed-in visitor's identify carries the consent object
    tracking(
        analytics_js(
            "identify",
            message_id="ajs-id-1",
            user_id="u-77",
            preferences={"Marketing": False},
            traits={"email": "Dora@Example.com"},
        )
    )
    # then the statement is recorded for both the shop's user id and the device's anonymous id
    assert sorted(ledger()) == [
        (*ANON_KEY, "marketing", "web", "denied"),
        ("shop", "u-77", "marketing", "web", "denied"),
    ]
    # and the person, found by the email the identify carried, is not allowed web marketing
    profile = staff_client.get(
        "/api/v1/profiles/lookup", {"type": "email", "value": "dora@example.com"}
    ).json()
    assert check(profile["id"], purpose="marketing", channel="web")["allowed"] is False
    assert {
        entry["identifier"]["type"]
        for entry in staff_client.get(f"/api/v1/profiles/{profile['id']}/consents").json()["history"]
    } == {"shop", "anonymous_id"}


def test_the_same_preference_on_every_event_is_one_statement_and_a_change_is_another(tracking, check):
    visitor = {"type": "anonymous_id", "value": ANON}
    # when three page views carry the same preference
    for minute in range(3):
        tracking(
            analytics_js(
                message_id=f"p-{minute}", at=T0 + timedelta(minutes=minute), preferences={"Advertising": True}
            )
        )
    # then the ledger holds one grant, not one per page view
    assert ledger() == [(*ANON_KEY, "marketing", "web", "granted")]
    # when the visitor turns advertising off in the banner, then on again
    tracking(analytics_js(message_id="p-3", at=T0 + timedelta(minutes=3), preferences={"Advertising": False}))
    assert check(visitor, purpose="marketing", channel="web")["allowed"] is False
    tracking(analytics_js(message_id="p-4", at=T0 + timedelta(minutes=4), preferences={"Advertising": True}))
    # then each change is a statement: granted, withdrawn, granted
    assert [row[-1] for row in ledger()] == ["granted", "withdrawn", "granted"]
    assert check(visitor, purpose="marketing", channel="web")["allowed"] is True


def test_a_message_delivered_twice_records_nothing_twice(tracking):
    # given a page view with preferences
    message = analytics_js(preferences={"Advertising": False, "Analytics": True})
    tracking(message)
    before = ledger()
    # when the SDK retries the same message (same messageId) later, with a new sentAt
    tracking({**message, "sentAt": iso(T0 + timedelta(seconds=30))})
    # then nothing is added
    assert ledger() == before and len(before) == 2


def test_an_older_event_arriving_late_does_not_overturn_a_newer_preference(tracking, check):
    # when the newer page view (advertising off) arrives before an older one (advertising on)
    tracking(analytics_js(message_id="new", at=T0 + timedelta(minutes=5), preferences={"Advertising": False}))
    tracking(analytics_js(message_id="old", at=T0, preferences={"Advertising": True}))
    # then the newer statement still decides
    assert (
        check({"type": "anonymous_id", "value": ANON}, purpose="marketing", channel="web")["allowed"] is False
    )


def test_two_categories_of_one_purpose_must_both_allow_it(tracking):
    tracking(analytics_js(preferences={"Advertising": True, "Marketing": False}))
    assert ledger() == [(*ANON_KEY, "marketing", "web", "denied")]


@pytest.mark.parametrize(
    "context_consent",
    [None, {}, {"categoryPreferences": {}}, {"categoryPreferences": None}],
    ids=["no consent object", "empty consent", "empty preferences", "null preferences"],
)
def test_events_without_preferences_record_nothing(tracking, context_consent):
    message = analytics_js()
    if context_consent is not None:
        message["context"]["consent"] = context_consent
    tracking(message)
    assert ledger() == []


def test_unknown_categories_are_ignored_counted_and_logged(tracking, caplog):
    # given OneTrust's category ids, which the default mapping does not know, next to a known one
    prefs = {"C0001": True, "C0004": False, "Analytics": True, "Advertising": "yes"}
    with caplog.at_level(logging.WARNING, logger="consent.intake"):
        tracking(
            analytics_js(message_id="a", preferences=prefs), analytics_js(message_id="b", preferences=prefs)
        )
    # then only the known category is recorded, and the others are logged with their counts
    assert ledger() == [(*ANON_KEY, "analytics", "web", "granted")]
    warning = next(r.getMessage() for r in caplog.records if "ignored" in r.getMessage())
    assert "C0001 x2" in warning and "C0004 x2" in warning and "Advertising (not true/false) x2" in warning


def test_the_category_mapping_is_configurable(tracking, settings):
    # given OneTrust's ids mapped onto purposes (C0004 targeting -> marketing on every channel)
    settings.CDP_SEGMENT_CONSENT_CATEGORIES = {
        "C0002": "analytics",
        "C0004": {"purpose": "marketing", "channel": None},
    }
    tracking(analytics_js(preferences={"C0002": True, "C0004": False, "C0003": True}))
    assert sorted(ledger()) == [
        (*ANON_KEY, "analytics", "web", "granted"),
        (*ANON_KEY, "marketing", None, "denied"),
    ]


def test_identifiers_of_the_event_only_an_alias_previous_id_is_not_the_sender(tracking, consent_source):
    IdentifierType.objects.get_or_create(name="anonymous_id", defaults={"normaliser": "text"})
    tracking(
        analytics_js(
            "alias",
            message_id="al-1",
            user_id="u-9",
            previousId="old-device",
            preferences={"Analytics": False},
        )
    )
    assert {(kind, value) for kind, value, *_ in ledger()} == {ANON_KEY, ("shop", "u-9")}


# --- Global Privacy Control -------------------------------------------------------------------------------


def test_gpc_records_an_opt_out_of_sale_and_sharing(tracking, check):
    # when a browser with Global Privacy Control on sends a page view
    tracking(analytics_js(), gpc="1")
    # then the visitor opted out of sale/sharing on every channel, with the signal as evidence
    entry = ConsentEntry.objects.get()
    assert (entry.identifier_type, entry.identifier_value) == ANON_KEY
    assert (entry.decision, entry.capture_method, entry.channel_id) == ("opt_out_sale_sharing", "gpc", None)
    assert entry.evidence["signal"] == "Sec-GPC: 1" and entry.effective_at == T0
    visitor = {"type": "anonymous_id", "value": ANON}
    for channel in ("web", "email"):
        assert check(visitor, purpose="sale_sharing", channel=channel)["allowed"] is False


def test_gpc_is_sticky_and_recorded_once_until_it_would_change_something(tracking, check, record_consents):
    visitor = {"type": "anonymous_id", "value": ANON}
    # given the signal on three requests
    for minute in range(3):
        tracking(analytics_js(message_id=f"g-{minute}", at=T0 + timedelta(minutes=minute)), gpc="1")
    # then one opt-out is recorded, not one per event
    assert ledger() == [(*ANON_KEY, "sale_sharing", None, "opt_out_sale_sharing")]
    # when a later request comes without the signal (or with it off)
    tracking(analytics_js(message_id="n-1", at=T0 + timedelta(minutes=5)))
    tracking(analytics_js(message_id="n-2", at=T0 + timedelta(minutes=6)), gpc="0")
    # then the opt-out stands
    assert check(visitor, purpose="sale_sharing", channel="web")["allowed"] is False
    assert len(ledger()) == 1
    # when the person later agrees to sale/sharing (a form), and the browser sends the signal again
    record_consents(
        {
            "identifier": {"type": "anonymous_id", "value": ANON},
            "purpose": "sale_sharing",
            "decision": "granted",
            "capture_method": "form",
            "effective_at": iso(T0 + timedelta(minutes=10)),
        }
    )
    assert check(visitor, purpose="sale_sharing", channel="web")["allowed"] is True
    tracking(analytics_js(message_id="g-9", at=T0 + timedelta(minutes=20)), gpc="1")
    # then the signal is recorded again, since now it changes something
    assert [row[-1] for row in ledger()] == ["opt_out_sale_sharing", "granted", "opt_out_sale_sharing"]
    assert check(visitor, purpose="sale_sharing", channel="web")["allowed"] is False


@pytest.mark.parametrize(
    ("channel", "recorded"),
    [(None, False), ("web", True)],
    ids=["refused everywhere: nothing to add", "refused on the web only: GPC adds every channel"],
)
def test_gpc_after_an_earlier_refusal_of_sale_and_sharing(tracking, record_consents, channel, recorded):
    record_consents(
        {
            "identifier": {"type": "anonymous_id", "value": ANON},
            "purpose": "sale_sharing",
            "channel": channel,
            "decision": "denied",
            "capture_method": "form",
            "effective_at": iso(T0 - timedelta(days=1)),
        }
    )
    tracking(analytics_js(), gpc="1")
    assert ConsentEntry.objects.filter(capture_method="gpc").exists() is recorded


def test_gpc_covers_the_user_id_and_the_anonymous_id_and_is_kept_with_the_event(tracking):
    from profiles.models import Event

    tracking(analytics_js("track", message_id="t-1", user_id="u-5", event="Order Completed"), gpc="1")
    assert {(kind, value) for kind, value, *_ in ledger()} == {ANON_KEY, ("shop", "u-5")}
    assert Event.objects.get().context["gpc"] is True  # the timeline shows the request carried it


def test_gpc_on_a_message_delivered_twice_is_recorded_once(tracking):
    message = analytics_js(message_id="dup")
    tracking(message, gpc="1")
    tracking({**message, "sentAt": iso(T0 + timedelta(seconds=9))}, gpc="1")
    assert len(ledger()) == 1


# --- A real SDK -------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_segment_python_sdk_sends_a_consent_preference_update(live_server, vocabulary, make_source):
    # given the Segment SDK with a web source's write key
    source = make_source("app", "web")
    errors = []
    client = SegmentClient(
        source.api_key, host=live_server.url, sync_mode=True, on_error=lambda e, b: errors.append(e)
    )
    # when the app reports the person's new choices the way Segment's consent wrappers do
    client.track(
        user_id="u-100",
        anonymous_id="device-100",
        event="Segment Consent Preference Updated",
        context={"consent": {"categoryPreferences": {"Advertising": False, "Analytics": True}}},
    )
    client.flush()
    # then both statements are in the ledger for both identifiers
    assert errors == []
    assert sorted(ledger()) == [
        ("anonymous_id", "device-100", "analytics", "web", "granted"),
        ("anonymous_id", "device-100", "marketing", "web", "denied"),
        ("app", "u-100", "analytics", "web", "granted"),
        ("app", "u-100", "marketing", "web", "denied"),
    ]
