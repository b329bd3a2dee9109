"""The real Segment and RudderStack Python SDKs, pointed at a live server, with nothing changed but the host
and the write key; the result is read back through the profile API."""

import pytest
from rudderstack.analytics import Client as RudderClient
from segment.analytics import Client as SegmentClient

from profiles.models import Event


def _sdk(kind, write_key, host):
    errors = []
    if kind == "segment":
        client = SegmentClient(write_key, host=host, sync_mode=True, on_error=lambda e, b: errors.append(e))
    else:
        client = RudderClient(write_key, host=host, sync_mode=True, on_error=lambda e, b: errors.append(e))
    return client, errors


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["segment", "rudderstack"])
def test_an_sdk_sends_a_journey_that_the_api_reads_back(kind, live_server, shop, make_source, staff_client):
    # given the SDK configured with the shop's write key and our host
    client, errors = _sdk(kind, shop.api_key, live_server.url)
    # when a visitor browses, identifies, buys, joins a company and is aliased
    client.page(anonymous_id="device-1", name="Home", properties={"path": "/"}, context={"ip": "203.0.113.9"})
    client.identify(
        user_id="u-42",
        anonymous_id="device-1",
        traits={"email": "Grace@Example.com", "firstName": "Grace", "lastName": "Hopper"},
    )
    client.track(user_id="u-42", event="Order Completed", properties={"total": 99.5})
    client.group(user_id="u-42", group_id="acme", traits={"name": "Acme"})
    client.alias(previous_id="device-2", user_id="u-42")
    client.flush()
    # then every call succeeded (both SDKs report non-accepted status codes as errors)
    assert errors == []
    # and the profile API finds one person by the email, with the traits as attributes
    found = staff_client.get("/api/v1/profiles/lookup", {"type": "email", "value": "grace@example.com"})
    assert found.status_code == 200, found.content
    profile = found.json()
    assert profile["attributes"]["first_name"]["value"] == "Grace"
    assert {"type": "anonymous_id", "value": "device-1"} in profile["identities"]
    assert {"type": "anonymous_id", "value": "device-2"} in profile["identities"]
    # and the timeline holds the whole journey, newest first
    timeline = staff_client.get(
        f"/api/v1/profiles/{profile['id']}/timeline", {"kind": "page,identify,track,group,alias"}
    )
    kinds = [entry["kind"] for entry in timeline.json()["results"]]
    assert sorted(kinds) == ["alias", "group", "identify", "page", "track"]
    purchase = next(e for e in timeline.json()["results"] if e["kind"] == "track")
    assert purchase["name"] == "Order Completed" and purchase["properties"] == {"total": 99.5}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["segment", "rudderstack"])
def test_an_sdk_with_a_wrong_write_key_is_refused(kind, live_server, shop):
    client, _ = _sdk(kind, "sk_00000000_not-a-real-key", live_server.url)
    # in sync mode the SDKs raise what the server answered (and do not retry a 401)
    with pytest.raises(Exception, match="Invalid or revoked API key"):
        client.track(user_id="u-1", event="X")
    assert not Event.objects.exists()
