"""The tracking API as a Segment or RudderStack SDK meets it: auth, limits, gzip, partial acceptance,
deduplication and clock skew."""

import gzip
import json
from datetime import UTC, datetime, timedelta

import pytest
from rest_framework.test import APIClient

from ingestion.models import InboundRecord
from ingestion.services import source_key_create
from profiles.models import Event

from .conftest import basic_auth


def track(message_id, user_id="u-1", event="Order Completed", **extra):
    return {"type": "track", "userId": user_id, "event": event, "messageId": message_id, **extra}


def test_a_batch_of_identify_track_and_page_lands_on_one_profile(
    shop, send_batch, profile_of_user, events_of
):
    # given a web shop's write key
    # when its SDK sends an identify, a track and a page for one user
    answer = send_batch(
        shop,
        [
            {"type": "identify", "userId": "u-1", "messageId": "m1", "traits": {"email": "Ann@Example.com"}},
            track("m2"),
            {"type": "page", "userId": "u-1", "name": "Checkout", "messageId": "m3"},
        ],
    )
    # then all three are accepted and form the user's journey on a profile with the email
    assert answer["success"] is True and answer["accepted"] == 3 and answer["rejected"] == []
    profile = profile_of_user(shop, "u-1")
    assert profile.golden["email"] == "ann@example.com"
    assert sorted(events_of(profile)) == [
        ("identify", ""),
        ("page", "Checkout"),
        ("track", "Order Completed"),
    ]


def test_valid_messages_are_accepted_next_to_an_invalid_one_which_is_quarantined(
    shop, send_batch, staff_client
):
    # when a batch holds a track without an event name between two valid messages
    answer = send_batch(
        shop, [track("m1"), {"type": "track", "userId": "u-1", "messageId": "m2"}, track("m3")]
    )
    # then the two valid ones are stored, the invalid one is reported with its field and kept in the quarantine
    assert answer["accepted"] == 2
    assert answer["rejected"] == [
        {
            "index": 1,
            "field": "event",
            "reason": "required for track, a non-empty string",
            "external_id": "m2",
        }
    ]
    assert set(Event.objects.values_list("message_id", flat=True)) == {"m1", "m3"}
    status = staff_client.get(f"/api/v1/batches/{answer['batch']}").json()
    assert status["counts"]["rejected"] == 1
    assert status["errors"][0]["field"] == "event"


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"type": "track", "event": "X"}, "userId"),
        ({"type": "launch", "userId": "u"}, "type"),
        ({"type": "group", "userId": "u"}, "groupId"),
        ({"type": "alias", "userId": "u"}, "previousId"),
        ({"type": "track", "userId": "u", "event": "X", "timestamp": "yesterday"}, "timestamp"),
        ({"type": "identify", "userId": "u", "traits": {"email": "not-an-email"}}, "traits.email"),
        ({"type": "track", "userId": "u", "event": "X", "properties": [1]}, "properties"),
    ],
)
def test_an_invalid_message_is_reported_with_the_field(shop, send_batch, message, field):
    answer = send_batch(shop, [message])
    assert answer["accepted"] == 0
    assert answer["rejected"][0]["field"] == field
    assert InboundRecord.objects.get().status == InboundRecord.Status.QUARANTINED


def test_a_message_over_32_kb_is_rejected_and_its_neighbours_accepted(shop, send_batch):
    big = track("big", properties={"blob": "x" * (33 * 1024)})
    answer = send_batch(shop, [track("m1"), big])
    assert answer["accepted"] == 1
    assert answer["rejected"][0]["reason"] == "message over 32 KB"


def test_a_request_over_500_kb_is_refused_with_a_json_413(shop, post_tracking):
    messages = [track(f"m{i}", properties={"blob": "x" * 20_000}) for i in range(30)]
    response = post_tracking(shop, "/v1/batch", {"batch": messages})
    assert response.status_code == 413
    assert "500 KB" in response.json()["detail"]
    assert not Event.objects.exists()


def test_a_gzip_body_is_accepted(shop, post_tracking):
    response = post_tracking(shop, "/v1/batch", {"batch": [track("m1")]}, gzipped=True)
    assert response.status_code == 200, response.content
    assert Event.objects.get().message_id == "m1"


def test_a_gzip_bomb_is_refused_without_inflating_it(shop, post_tracking):
    bomb = gzip.compress(b'{"batch": ["' + b"a" * (50 * 1024 * 1024) + b'"]}')
    assert len(bomb) < 500 * 1024
    response = post_tracking(shop, "/v1/batch", bomb, headers={"HTTP_CONTENT_ENCODING": "gzip"})
    assert response.status_code == 413
    assert response.json()["detail"].startswith("Request body over")


def test_a_body_that_is_not_gzip_though_it_says_so_is_a_400(shop, post_tracking):
    response = post_tracking(shop, "/v1/batch", b"{}", headers={"HTTP_CONTENT_ENCODING": "gzip"})
    assert response.status_code == 400
    assert "gzip" in response.json()["detail"]


def test_a_resent_batch_creates_no_duplicate_events(shop, send_batch, profile_of_user, events_of):
    batch = [track("m1"), track("m2", event="Product Viewed")]
    send_batch(shop, batch)
    # when the SDK retries the same batch (same message ids)
    answer = send_batch(shop, batch)
    # then it is accepted (the SDK stops retrying) but the journey holds each event once
    assert answer["accepted"] == 2
    assert len(events_of(profile_of_user(shop, "u-1"))) == 2
    outcomes = InboundRecord.objects.filter(batch_id=answer["batch"]).values_list("outcome", flat=True)
    assert set(outcomes) == {"duplicate"}


def test_the_same_message_id_from_another_source_is_another_event(shop, make_source, send_batch):
    app = make_source("app", kind="web")
    send_batch(shop, [track("m1")])
    send_batch(app, [track("m1")])
    assert Event.objects.filter(message_id="m1").count() == 2


def test_the_event_time_is_corrected_by_the_senders_clock_skew(shop, send_batch):
    # given a device whose clock runs two hours ahead
    now = datetime.now(UTC)
    ahead = now + timedelta(hours=2)
    happened = ahead - timedelta(minutes=5)
    send_batch(
        shop,
        [track("m1", timestamp=happened.isoformat())],
        sentAt=ahead.isoformat(),
    )
    event = Event.objects.get()
    # then the stored time is about five minutes ago, and the device's own time is kept
    assert abs(event.timestamp - (now - timedelta(minutes=5))) < timedelta(minutes=1)
    assert event.original_timestamp == happened
    assert event.sent_at == ahead


@pytest.mark.parametrize(
    ("timestamp", "sent_at"),
    [
        ("9998-06-01T00:00:00Z", "1900-01-02T00:00:00Z"),  # corrected past year 9999: an overflow
        ("1900-06-01T00:00:00Z", "9998-01-02T00:00:00Z"),  # corrected before year 1
    ],
)
def test_a_clock_skew_of_centuries_keeps_the_event_time_as_sent(shop, post_tracking, timestamp, sent_at):
    body = {"userId": "u-1", "groupId": "g-1", "messageId": "m1", "timestamp": timestamp, "sentAt": sent_at}

    response = post_tracking(shop, "/v1/group", body)

    assert response.status_code == 200, response.content
    assert Event.objects.get().timestamp.isoformat().startswith(timestamp[:10])


def test_context_is_kept(shop, send_batch):
    context = {
        "ip": "203.0.113.7",
        "userAgent": "Mozilla/5.0",
        "page": {"url": "https://shop.example/?utm_source=news", "referrer": "https://news.example/"},
        "campaign": {"source": "news", "medium": "email", "name": "spring"},
    }
    send_batch(
        shop, [{"type": "page", "anonymousId": "a-1", "name": "Home", "messageId": "m1", "context": context}]
    )
    assert Event.objects.get().context == context


def test_a_single_message_endpoint_takes_its_type_from_the_path(shop, post_tracking):
    response = post_tracking(shop, "/v1/track", {"userId": "u-1", "event": "Signed Up", "messageId": "m1"})
    assert response.status_code == 200, response.content
    assert Event.objects.get().type == "track"


def test_an_invalid_single_message_is_a_400_and_kept_in_the_quarantine(shop, post_tracking):
    response = post_tracking(shop, "/v1/identify", {"messageId": "m1", "traits": {"email": "a@b.com"}})
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"field": "userId", "reason": "a message needs a userId or an anonymousId"}
    ]
    assert InboundRecord.objects.get().error_field == "userId"


def test_a_message_without_a_message_id_gets_one_that_a_replay_keeps(shop, send_batch):
    send_batch(shop, [{"type": "track", "userId": "u-1", "event": "X"}])
    stored = InboundRecord.objects.get()
    assert Event.objects.get().message_id == stored.external_id == stored.payload["messageId"]


@pytest.mark.parametrize(
    ("authorization", "status"),
    [(None, 401), (basic_auth("sk_0123abcd_nonsense"), 401), ("Basic !!!", 401)],
)
def test_a_request_without_a_valid_write_key_is_a_json_401(db, authorization, status):
    client = APIClient()
    if authorization:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    response = client.post(
        "/v1/batch", data=json.dumps({"batch": [track("m1")]}), content_type="application/json"
    )
    assert response.status_code == status
    assert "detail" in response.json()


def test_a_key_without_the_events_scope_is_refused(shop, post_tracking):
    _, read_only = source_key_create(source=shop, scopes=["profiles:read"])
    response = post_tracking(shop, "/v1/batch", {"batch": [track("m1")]}, key=read_only)
    assert response.status_code == 403
    assert not Event.objects.exists()


def test_csrf_does_not_apply_to_write_keys(shop):
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=basic_auth(shop.api_key))
    response = client.post(
        "/v1/batch", data=json.dumps({"batch": [track("m1")]}), content_type="application/json"
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", json.dumps({"batch": []}).encode(), json.dumps({"batch": {}}).encode()]
)
def test_a_malformed_body_is_a_json_400(shop, post_tracking, body):
    response = post_tracking(shop, "/v1/batch", body)
    assert response.status_code == 400
    assert response.json()["detail"]
