"""Tracking messages processed by several workers at once, on PostgreSQL: the locks a chunk takes, and the end
state a single worker would reach whatever the interleaving."""

from __future__ import annotations

import random

import pytest
from django.db import connection
from django.db.models import Count
from django.test.utils import CaptureQueriesContext

import ingestion.services
from ingestion.models import InboundRecord
from ingestion.services import batch_process, events_receive
from profiles.models import Event, Identity, Profile, SourceRecord
from tests.profiles.test_concurrency import run_together

pytestmark = [pytest.mark.postgres]


def lock_statements(queries) -> tuple[int, int]:
    """(advisory lock statements, row lock statements) among the captured queries."""
    sql = [query["sql"] for query in queries.captured_queries]
    return (
        sum("advisory_xact_lock" in s for s in sql),  # pg_advisory_xact_lock or pg_try_advisory_xact_lock
        sum("FOR NO KEY UPDATE" in s or "FOR UPDATE" in s for s in sql),
    )


def identify(n, user, device, **traits):
    return {"type": "identify", "userId": user, "anonymousId": device, "messageId": f"m{n}", "traits": traits}


def track(n, user, device):
    return {"type": "track", "userId": user, "anonymousId": device, "event": "Viewed", "messageId": f"m{n}"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("then", "row_locks"),
    [(None, 0), ("track", 1), ("identify", 1)],
    ids=["new people", "known people, nothing new", "known people, new traits and devices"],
)
def test_a_chunk_takes_its_identifier_and_profile_locks_once(shop, monkeypatch, settings, then, row_locks):
    settings.CDP_RESOLVE_CHUNK_SIZE = 500
    monkeypatch.setattr(ingestion.services, "_schedule", lambda batch: None)
    messages = [identify(i, f"u{i % 20}", f"d{i % 20}", email=f"p{i % 20}@example.com") for i in range(20)]
    messages += [{"type": "page", "anonymousId": f"visitor-{i}", "messageId": f"p{i}"} for i in range(20)]
    if then is not None:
        batch_process(batch_id=events_receive(source=shop, messages=messages).batch.pk)
        if then == "track":
            messages = [track(100 + i, f"u{i % 20}", f"d{i % 20}") for i in range(40)]
        else:
            messages = [
                identify(100 + i, f"u{i}", f"tablet-{i}", phone=f"+1 415 555 01{i:02d}") for i in range(20)
            ]
    batch = events_receive(source=shop, messages=messages).batch

    with CaptureQueriesContext(connection) as queries:
        batch_process(batch_id=batch.pk)

    # one advisory lock statement for every identifier key (the claim step's, which the later steps share)
    # and, when the chunk's people have profiles, one row lock statement for them all
    assert lock_statements(queries) == (1, row_locks)
    assert not InboundRecord.objects.exclude(status=InboundRecord.Status.PROCESSED).exists()
    assert Event.objects.filter(profile__status=Profile.Status.ACTIVE).count() == Event.objects.count()
    assert Profile.objects.filter(status=Profile.Status.ACTIVE).count() == 40


@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_put_every_event_on_its_persons_live_profile(shop, monkeypatch, settings):
    """Four writers send the same people's visits, logins and purchases in their own orders: anonymous
    profiles are created and stitched while events are stored on them."""
    settings.CDP_RESOLVE_CHUNK_SIZE = 25
    monkeypatch.setattr(ingestion.services, "_schedule", lambda batch: None)
    people = 12
    sends = []
    for writer in range(4):
        rng = random.Random(writer)
        messages = []
        for person in range(people):
            for visit in range(3):
                messages.append(
                    {
                        "type": "page",
                        "anonymousId": f"dev-{person}-{visit}",
                        "messageId": f"w{writer}-p{person}-{visit}",
                    }
                )
                messages.append(
                    identify(f"w{writer}-i{person}-{visit}", f"user-{person}", f"dev-{person}-{visit}")
                )
                messages.append(
                    track(f"w{writer}-t{person}-{visit}", f"user-{person}", f"dev-{person}-{visit}")
                )
        rng.shuffle(messages)
        sends.append(messages)

    def job(messages):
        def run(barrier):
            batch = events_receive(source=shop, messages=messages).batch
            barrier.wait(timeout=60)
            batch_process(batch_id=batch.pk)

        return run

    run_together([job(messages) for messages in sends])

    assert not InboundRecord.objects.exclude(status=InboundRecord.Status.PROCESSED).exists()
    assert Event.objects.count() == sum(len(messages) for messages in sends)
    # every event on a live profile, every person one profile with all their devices and events
    assert not Event.objects.exclude(profile__status=Profile.Status.ACTIVE).exists()
    assert Profile.objects.filter(status=Profile.Status.ACTIVE).count() == people
    for person in range(people):
        profile = SourceRecord.objects.get(external_id=f"user-{person}").profile
        assert Event.objects.filter(profile=profile).count() == 4 * 3 * 3
        devices = set(profile.identities.filter(type="anonymous_id").values_list("value", flat=True))
        assert devices == {f"dev-{person}-{visit}" for visit in range(3)}
    assert not Identity.objects.values("type", "value").annotate(n=Count("id")).filter(n__gt=1).exists()


@pytest.mark.django_db(transaction=True)
def test_a_batch_delivered_to_two_workers_at_once_is_stored_once(shop, monkeypatch, settings):
    """acks_late: the broker may hand one batch to two workers at the same moment."""
    settings.CDP_RESOLVE_CHUNK_SIZE = 20
    monkeypatch.setattr(ingestion.services, "_schedule", lambda batch: None)
    batches = [
        events_receive(
            source=shop,
            messages=[
                message
                for person in range(b * 10, b * 10 + 10)
                for message in (
                    {"type": "page", "anonymousId": f"dev-{person}", "messageId": f"p{person}"},
                    identify(f"i{person}", f"user-{person}", f"dev-{person}", email=f"p{person}@example.com"),
                    track(f"t{person}", f"user-{person}", f"dev-{person}"),
                )
            ],
        ).batch
        for b in range(3)
    ]

    def process(batch_id):
        def run(barrier):
            barrier.wait(timeout=60)
            batch_process(batch_id=batch_id)

        return run

    run_together([process(batch.pk) for batch in batches for _ in range(2)])

    assert not InboundRecord.objects.exclude(status=InboundRecord.Status.PROCESSED).exists()
    assert Event.objects.count() == 90
    assert Profile.objects.filter(status=Profile.Status.ACTIVE).count() == 30
    assert not Event.objects.exclude(profile__status=Profile.Status.ACTIVE).exists()
