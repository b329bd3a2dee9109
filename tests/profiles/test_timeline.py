"""The customer journey timeline: events, record changes, merges and splits of one person on one clock."""

from datetime import UTC, datetime, timedelta

import pytest

from profiles.models import Event, Profile, ProfileSplit, SourceRecord
from profiles.services.unmerge import profile_unmerge


def at(minute: int) -> str:
    return (datetime(2025, 3, 1, 12, 0, tzinfo=UTC) + timedelta(minutes=minute)).isoformat()


def track(message_id, minute, user_id="u-1", event="Viewed"):
    return {
        "type": "track",
        "userId": user_id,
        "event": event,
        "messageId": message_id,
        "timestamp": at(minute),
    }


@pytest.fixture
def journey(make_source, seeded_identifier_rules, ingest, post_events):
    """Ann: a CRM contact, then a web shop user who browses and buys, then a CRM update."""
    crm = make_source("crm", kind="crm")
    shop = make_source("shop", kind="web")
    ingest(crm, [{"external_id": "C-1", "updated_at": at(0), "attributes": {"email": "ann@example.com"}}])
    post_events(
        shop, [{"type": "page", "anonymousId": "a-1", "name": "Home", "messageId": "p1", "timestamp": at(1)}]
    )
    post_events(
        shop,
        [
            {
                "type": "identify",
                "userId": "u-1",
                "anonymousId": "a-1",
                "messageId": "i1",
                "timestamp": at(2),
                "traits": {"email": "ann@example.com"},
            },
            track("t1", 3, event="Order Completed"),
        ],
    )
    ingest(
        crm,
        [
            {
                "external_id": "C-1",
                "updated_at": at(4),
                "attributes": {"email": "ann@example.com", "first_name": "Ann"},
            }
        ],
    )
    profile = Profile.objects.get(records__source=crm, records__external_id="C-1")
    return {"crm": crm, "shop": shop, "profile": profile}


@pytest.fixture
def post_events(source_client, django_capture_on_commit_callbacks):
    def post(source, messages):
        import json

        with django_capture_on_commit_callbacks(execute=True):
            response = source_client(source).post(
                "/v1/batch", data=json.dumps({"batch": messages}), content_type="application/json"
            )
        assert response.status_code == 200, response.content
        assert response.json()["rejected"] == []

    return post


def timeline(client, profile_id, **params):
    response = client.get(f"/api/v1/profiles/{profile_id}/timeline", params)
    assert response.status_code == 200, response.content
    return response.json()


def describe(entry) -> str:
    if entry["kind"] == "record":
        return f"{entry['source']} {entry['change']} {','.join(entry['changed_fields'])}"
    if entry["kind"] == "merge":
        return "merge"
    if entry["kind"] == "split":
        return f"split {entry['reason']}"
    return f"{entry['source']} {entry['kind']} {entry['name']}".strip()


def test_one_chronological_list_across_sources(journey, staff_client):
    page = timeline(staff_client, journey["profile"].pk)
    entries = [describe(e) for e in page["results"]]
    # newest first: the merge of the visitor's anonymous profile into Ann's (made just now, when the identify
    # was processed), then the CRM update, the purchase, the identify, the page, the CRM creation; the
    # records tracking keeps for the visitor and the user (created, identifiers added) are not journey steps
    assert entries == [
        "merge",
        "crm updated first_name",
        "shop track Order Completed",
        "shop identify",
        "shop page Home",
        "crm created email",
    ]
    assert page["next"] is None


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"kind": "track"}, ["shop track Order Completed"]),
        ({"kind": "page,identify"}, ["shop identify", "shop page Home"]),
        ({"kind": "record", "source": "crm"}, ["crm updated first_name", "crm created email"]),
        ({"source": "crm"}, ["crm updated first_name", "crm created email"]),
        ({"kind": "track,page,identify", "since": at(2), "until": at(3)}, ["shop identify"]),
    ],
)
def test_filters_by_kind_source_and_time(journey, staff_client, params, expected):
    page = timeline(staff_client, journey["profile"].pk, **params)
    assert [describe(e) for e in page["results"]] == expected


def test_cursor_pagination_walks_every_entry_once(journey, staff_client, post_events):
    # given many events, several at the very same instant
    post_events(journey["shop"], [track(f"x{i}", 10 + i // 3) for i in range(25)])
    expected = Event.objects.filter(profile=journey["profile"]).count()
    seen, url = [], f"/api/v1/profiles/{journey['profile'].pk}/timeline?kind=track,page,identify&page_size=4"
    while url:
        page = staff_client.get(url).json()
        seen += [entry["id"] for entry in page["results"]]
        url = page["next"]
    assert len(seen) == len(set(seen)) == expected
    times = [Event.objects.get(pk=int(i.split(":")[1])).timestamp for i in seen]
    assert times == sorted(times, reverse=True)


def test_a_merged_away_id_answers_with_the_survivors_timeline(journey, staff_client):
    merged_away = Profile.objects.get(merges_given__survivor=journey["profile"])
    assert merged_away.status == Profile.Status.MERGED
    page = timeline(staff_client, merged_away.pk, kind="page")
    assert [describe(e) for e in page["results"]] == ["shop page Home"]


def test_a_page_costs_the_same_queries_for_a_long_journey(
    journey, staff_client, django_assert_max_num_queries
):
    profile = journey["profile"]
    Event.objects.bulk_create(
        Event(
            profile=profile,
            source=journey["shop"],
            message_id=f"bulk-{i}",
            type="track",
            name="Viewed",
            timestamp=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=i),
            received_at=datetime(2024, 1, 1, tzinfo=UTC),
        )
        for i in range(2000)
    )
    with django_assert_max_num_queries(12):
        page = timeline(staff_client, profile.pk, page_size=50)
    assert len(page["results"]) == 50 and page["next"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"kind": "click"}, "kind"),
        ({"since": "yesterday"}, "since"),
        ({"cursor": "zzz"}, "cursor"),
        ({"page_size": "0"}, "page_size"),
    ],
)
def test_bad_parameters_are_a_400_naming_the_field(journey, staff_client, params, field):
    response = staff_client.get(f"/api/v1/profiles/{journey['profile'].pk}/timeline", params)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field


def test_the_admin_profile_page_shows_the_timeline(journey, admin_client):
    response = admin_client.get(f"/admin/profiles/profile/{journey['profile'].pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Journey timeline" in html
    assert "Order Completed" in html


def test_tracking_bookkeeping_records_leave_no_entries(
    make_source, seeded_identifier_rules, post_events, staff_client
):
    # given a visitor who browses, then identifies with traits, then changes them
    shop = make_source("shop", kind="web")
    post_events(
        shop, [{"type": "page", "anonymousId": "a-7", "name": "Home", "messageId": "p1", "timestamp": at(1)}]
    )
    identify = {
        "type": "identify",
        "userId": "u-7",
        "anonymousId": "a-7",
        "traits": {"email": "bo@example.com"},
    }
    post_events(shop, [{**identify, "messageId": "i1", "timestamp": at(2)}])
    post_events(shop, [{**identify, "traits": {"firstName": "Bo"}, "messageId": "i2", "timestamp": at(3)}])
    profile = SourceRecord.objects.get(external_id="u-7").profile
    # then the journey is the three messages, the traits of each identify on its own entry
    entries = timeline(staff_client, profile.pk, kind="page,identify,record")["results"]
    assert [(e["kind"], e["properties"]) for e in entries] == [
        ("identify", {"firstName": "Bo"}),
        ("identify", {"email": "bo@example.com"}),
        ("page", {}),
    ]


EVENT_FIELDS = {"kind", "at", "source", "id", "name", "message_id", "user_id", "anonymous_id"}
EVENT_FIELDS |= {"original_timestamp", "received_at", "properties", "context"}
SHAPES = {
    "event": EVENT_FIELDS,
    "record": {"kind", "at", "source", "id", "change", "external_id", "changed_fields"},
    "merge": {"kind", "at", "source", "id", "merged", "survivor", "rule", "actor"},
    "split": {"kind", "at", "source", "id", "profile", "new_profile", "records", "reason", "actor"},
}


def test_each_kind_of_entry_has_exactly_its_own_fields(journey, staff_client):
    ProfileSplit.objects.create(profile=journey["profile"], new_profile=Profile.objects.create(), reason="r")
    entries = timeline(staff_client, journey["profile"].pk)["results"]
    shapes = {(e["kind"] if e["kind"] in SHAPES else "event", frozenset(e)) for e in entries}
    assert shapes == {(kind, frozenset(fields)) for kind, fields in SHAPES.items()}
    # the skew correction's input is there for every event, null when the sender stated no time
    sent_without_time = next(e for e in entries if e["kind"] == "track")
    assert sent_without_time["original_timestamp"] == at(3).replace("+00:00", "Z")


def test_a_split_shows_on_both_halves(journey, staff_client):
    # given Ann's profile was split, and the new half later merged into a third profile
    ann = journey["profile"]
    half, third = Profile.objects.create(), Profile.objects.create()
    moved = [{"source": "shop", "external_id": "u-1", "id": 1}]
    split = ProfileSplit.objects.create(profile=ann, new_profile=half, records=moved, reason="two people")
    Profile.objects.filter(pk=half.pk).update(status=Profile.Status.MERGED, merged_into=third)
    # then the split is on Ann's timeline, first at its instant (newest), and on the survivor of the new half
    for profile in (ann, third):
        entries = timeline(staff_client, profile.pk, kind="split")["results"]
        assert entries == [
            {
                "kind": "split",
                "at": split.created_at.isoformat().replace("+00:00", "Z"),
                "source": "",
                "id": f"split:{split.pk}",
                "profile": str(ann.pk),
                "new_profile": str(half.pk),
                "records": moved,
                "reason": "two people",
                "actor": "system",
            }
        ]
    assert describe(timeline(staff_client, ann.pk)["results"][0]) == "split two people"
    # and filters apply: a split belongs to no source, and to its instant
    assert timeline(staff_client, ann.pk, kind="split", source="shop")["results"] == []
    assert timeline(staff_client, ann.pk, kind="split", until=at(0))["results"] == []
    assert timeline(staff_client, Profile.objects.create().pk, kind="split")["results"] == []


def test_a_split_of_a_long_journey_pages_through_the_cursor(journey, staff_client):
    ann = journey["profile"]
    splits = [
        ProfileSplit.objects.create(profile=ann, new_profile=Profile.objects.create()) for _ in range(5)
    ]
    seen, url = [], f"/api/v1/profiles/{ann.pk}/timeline?kind=split,merge&page_size=2"
    while url:
        page = staff_client.get(url).json()
        seen += [entry["id"] for entry in page["results"]]
        url = page["next"]
    assert sorted(seen) == sorted([f"split:{s.pk}" for s in splits] + [seen[-1]])
    assert seen[-1].startswith("merge:")


def test_an_unmerge_shows_on_both_halves_with_their_own_events(journey, staff_client):
    # given Ann's profile holds the shop user and visitor, who turn out to be someone else
    ann = journey["profile"]
    shop_records = SourceRecord.objects.filter(source=journey["shop"], profile=ann)
    assert sorted(shop_records.values_list("external_id", flat=True)) == ["anonymous:a-1", "u-1"]
    # when a steward splits them off
    new = profile_unmerge(
        profile_id=ann.pk,
        record_ids=list(shop_records.values_list("pk", flat=True)),
        actor="t",
        reason="not Ann",
    )
    # then each half shows the split, and only its own events
    assert [
        describe(e) for e in timeline(staff_client, new.pk, kind="split,track,page,identify")["results"]
    ] == [
        "split not Ann",
        "shop track Order Completed",
        "shop identify",
        "shop page Home",
    ]
    assert [
        describe(e) for e in timeline(staff_client, ann.pk, kind="split,track,page,identify")["results"]
    ] == ["split not Ann"]


def test_the_admin_profile_page_shows_splits_on_both_halves(journey, admin_client):
    ann, half = journey["profile"], Profile.objects.create()
    ProfileSplit.objects.create(profile=ann, new_profile=half, records=[{"id": 1}], reason="two people")
    html = admin_client.get(f"/admin/profiles/profile/{ann.pk}/change/").content.decode()
    assert f'split off into <a href="/admin/profiles/profile/{half.pk}/change/">' in html
    html = admin_client.get(f"/admin/profiles/profile/{half.pk}/change/").content.decode()
    assert f'split off from <a href="/admin/profiles/profile/{ann.pk}/change/">' in html
    assert "1 record (two people)" in html
