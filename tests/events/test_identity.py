"""Who the events belong to: identify traits as attributes, stitching of anonymous activity, alias, merges
carrying events along, and shared devices flagged instead of merged."""

import pytest
from django.core.management import call_command
from django.db import transaction

from ingestion.models import IdentifierType, InboundRecord
from profiles.models import Event, MergeEvent, NeverLink, Profile, ResolutionConflict, SourceRecord
from profiles.selectors import profile_get, profile_lookup
from profiles.services.merge import merge_refusal, profiles_merge


def page(message_id, anonymous_id, name="Home", **extra):
    return {"type": "page", "anonymousId": anonymous_id, "name": name, "messageId": message_id, **extra}


def identify(message_id, user_id, anonymous_id=None, **traits):
    message = {"type": "identify", "userId": user_id, "messageId": message_id, "traits": traits}
    if anonymous_id:
        message["anonymousId"] = anonymous_id
    return message


def test_anonymous_browsing_joins_the_person_once_they_identify(shop, send_batch, profile_of_user, events_of):
    # given a visitor who browsed two pages before logging in
    send_batch(shop, [page("m1", "anon-1"), page("m2", "anon-1", name="Shoes")])
    # when they identify on the same device
    send_batch(shop, [identify("m3", "u-1", "anon-1", email="ann@example.com")])
    # and browse on, still sending only the anonymous id
    send_batch(shop, [page("m4", "anon-1", name="Cart")])
    # then the whole journey is on the person's profile
    profile = profile_of_user(shop, "u-1")
    assert [name for _, name in events_of(profile)] == ["Home", "Shoes", "", "Cart"]
    assert profile_lookup(type="anonymous_id", value="anon-1") == profile


def test_identify_traits_become_attributes_and_accumulate(shop, send_batch, profile_of_user):
    send_batch(
        shop,
        [
            identify(
                "m1",
                "u-1",
                firstName="Ann",
                lastName="Lee",
                email="ANN@example.com",
                address={
                    "street": "1 Main St",
                    "city": "Springfield",
                    "postalCode": "12345",
                    "country": "US",
                },
                company={"name": "Acme"},
                plan="gold",
            )
        ],
    )
    # when a later identify sends only a phone
    send_batch(shop, [identify("m2", "u-1", phone="+1 415 555 0132")])
    # then the earlier traits stay and the phone is added, normalised
    golden = profile_of_user(shop, "u-1").golden
    assert golden == {
        "first_name": "Ann",
        "last_name": "Lee",
        "email": "ann@example.com",
        "phone": "+14155550132",
        "address_line1": "1 Main St",
        "city": "Springfield",
        "postcode": "12345",
        "country": "US",
        "company": "Acme",
        "plan": "gold",
    }


def test_rudderstack_traits_inside_context_are_read(shop, send_batch, profile_of_user):
    message = {
        "type": "identify",
        "userId": "u-1",
        "messageId": "m1",
        "context": {"traits": {"email": "a@b.org"}},
    }
    send_batch(shop, [message])
    assert profile_of_user(shop, "u-1").golden["email"] == "a@b.org"


def test_an_identify_email_links_to_the_crm_profile(
    shop, make_source, ingest, send_batch, profile_of_user, events_of
):
    # given a CRM contact
    crm = make_source("crm", kind="crm")
    ingest(crm, [{"external_id": "C-1", "attributes": {"first_name": "Ann", "email": "ann@example.com"}}])
    crm_profile = Profile.objects.get()
    # when the shop identifies a user with the same email and they buy something
    send_batch(
        shop,
        [
            identify("m1", "u-1", email="Ann@Example.com"),
            {"type": "track", "userId": "u-1", "event": "Order Completed", "messageId": "m2"},
        ],
    )
    # then it is the same person, and the purchase is on their profile
    assert profile_of_user(shop, "u-1") == crm_profile
    assert ("track", "Order Completed") in events_of(crm_profile)


def test_alias_links_the_previous_id_to_the_user(shop, send_batch, profile_of_user, events_of):
    send_batch(shop, [page("m1", "anon-9")])
    send_batch(shop, [{"type": "alias", "previousId": "anon-9", "userId": "u-9", "messageId": "m2"}])
    profile = profile_of_user(shop, "u-9")
    assert events_of(profile) == [("page", "Home"), ("alias", "")]
    assert Profile.objects.filter(status=Profile.Status.ACTIVE).count() == 1


def test_when_profiles_merge_their_events_follow(shop, send_batch, profile_of_user, events_of):
    # given a user known from their laptop, and anonymous browsing on a phone
    send_batch(shop, [identify("m1", "u-1", "laptop"), page("m2", "laptop", name="Laptop page")])
    send_batch(shop, [page("m3", "phone", name="Phone page")])
    phone_profile = profile_of_user(shop, "anonymous:phone")
    assert phone_profile != profile_of_user(shop, "u-1")
    # when they log in on the phone
    send_batch(shop, [identify("m4", "u-1", "phone")])
    # then one profile holds both devices' events, and the phone's profile id answers with it
    survivor = profile_of_user(shop, "u-1")
    assert {name for _, name in events_of(survivor)} >= {"Laptop page", "Phone page"}
    assert profile_get(profile_id=phone_profile.pk) == survivor
    assert MergeEvent.objects.filter(survivor=survivor, merged=phone_profile).exists()
    assert not Event.objects.exclude(profile=survivor).exists()


def test_a_shared_device_does_not_merge_two_people_but_is_flagged(
    shop, send_batch, profile_of_user, events_of
):
    # given Ann logged in on the family tablet
    send_batch(shop, [identify("m1", "ann", "tablet", email="ann@example.com")])
    # when Bob logs in on the same tablet
    send_batch(
        shop,
        [
            identify("m2", "bob", "tablet", email="bob@example.com"),
            {
                "type": "track",
                "userId": "bob",
                "anonymousId": "tablet",
                "event": "Bob's order",
                "messageId": "m3",
            },
        ],
    )
    # then they stay two people, Bob's order is on Bob's profile, and the link is kept for review
    ann, bob = profile_of_user(shop, "ann"), profile_of_user(shop, "bob")
    assert ann != bob
    assert bob.golden["email"] == "bob@example.com" and ann.golden["email"] == "ann@example.com"
    assert ("track", "Bob's order") in events_of(bob)
    assert ("track", "Bob's order") not in events_of(ann)
    conflict = ResolutionConflict.objects.get()
    assert conflict.record.external_id == "bob"
    assert conflict.other_profiles == [str(ann.pk)]


def test_a_message_that_failed_processing_waits_in_the_quarantine_and_is_replayed(
    shop, send_batch, broken_pipeline_for_events
):
    # given a message whose processing failed
    send_batch(shop, [page("BOOM-1", "anon-1"), page("m2", "anon-1", name="Fine")])
    assert InboundRecord.objects.get(external_id="BOOM-1").status == InboundRecord.Status.QUARANTINED
    assert list(Event.objects.values_list("message_id", flat=True)) == ["m2"]
    # when the cause is fixed and the quarantine replayed
    broken_pipeline_for_events()
    call_command("reprocess")
    # then the event is on the visitor's profile, once
    assert sorted(Event.objects.values_list("message_id", flat=True)) == ["BOOM-1", "m2"]
    assert Event.objects.values("profile").distinct().count() == 1


# --- alias of two user ids the source already sent -------------------------------------------------------


def alias(message_id, previous_id, user_id):
    return {"type": "alias", "previousId": previous_id, "userId": user_id, "messageId": message_id}


@pytest.fixture
def two_users(shop, send_batch, profile_of_user):
    """A user known under an old id and, after a login change, under a new one: two profiles so far."""
    send_batch(
        shop,
        [
            identify("m1", "old-id", "laptop", email="ann@example.com", firstName="Ann"),
            {"type": "track", "userId": "old-id", "event": "Order Completed", "messageId": "m2"},
            identify("m3", "new-id", "phone", phone="+1 415 555 0132"),
        ],
    )
    old, new = profile_of_user(shop, "old-id"), profile_of_user(shop, "new-id")
    assert old != new
    return old, new


def test_alias_of_two_known_user_ids_merges_their_profiles(
    shop, two_users, send_batch, profile_of_user, events_of
):
    old, new = two_users
    # when the app says the new id is the old one's successor
    send_batch(shop, [alias("m4", "old-id", "new-id")])
    # then one profile holds both ids, both devices, the traits of both and every event
    survivor = profile_of_user(shop, "new-id")
    assert profile_of_user(shop, "old-id") == survivor
    assert {old.pk, new.pk} >= {survivor.pk}
    assert Profile.objects.filter(status=Profile.Status.ACTIVE).count() == 1
    assert survivor.golden["email"] == "ann@example.com" and survivor.golden["phone"] == "+14155550132"
    assert {
        ("anonymous_id", "laptop"),
        ("anonymous_id", "phone"),
        ("shop", "old-id"),
        ("shop", "new-id"),
    } <= set(survivor.identities.values_list("type", "value"))
    assert events_of(survivor) == [
        ("identify", ""),
        ("track", "Order Completed"),
        ("identify", ""),
        ("alias", ""),
    ]
    merge = MergeEvent.objects.get(rule="alias")
    assert {merge.survivor_id, merge.merged_id} == {old.pk, new.pk}
    assert merge.evidence == {
        "source": "shop",
        "message_id": "m4",
        "previous_id": "old-id",
        "user_id": "new-id",
    }
    assert not ResolutionConflict.objects.exists()
    # and the aliased person goes on as one: a new device's visits and a new email join them, no conflict
    send_batch(shop, [page("m5", "tablet", name="Later")])
    send_batch(shop, [identify("m6", "new-id", "tablet", email="ann.lee@work.example")])
    assert profile_of_user(shop, "anonymous:tablet") == survivor
    assert ("email", "ann.lee@work.example") in set(survivor.identities.values_list("type", "value"))
    assert not ResolutionConflict.objects.exists()


def test_alias_sent_twice_merges_once(shop, two_users, send_batch):
    send_batch(shop, [alias("m4", "old-id", "new-id")])
    send_batch(shop, [alias("m4", "old-id", "new-id"), alias("m5", "old-id", "new-id")])
    assert MergeEvent.objects.filter(rule="alias").count() == 1
    assert Event.objects.filter(type="alias").count() == 2


def test_alias_in_the_same_batch_as_both_identifies(shop, send_batch, profile_of_user):
    send_batch(
        shop,
        [
            identify("m1", "old-id", email="ann@example.com"),
            identify("m2", "new-id"),
            alias("m3", "old-id", "new-id"),
        ],
    )
    assert profile_of_user(shop, "old-id") == profile_of_user(shop, "new-id")


def test_alias_does_not_join_people_a_steward_separated(shop, two_users, send_batch, profile_of_user):
    # given a steward said the two ids are different people
    old, new = (SourceRecord.objects.get(source=shop, external_id=e) for e in ("old-id", "new-id"))
    NeverLink.objects.create(
        record_a=min(old, new, key=lambda r: r.pk), record_b=max(old, new, key=lambda r: r.pk)
    )
    # when the app aliases them
    send_batch(shop, [alias("m4", "old-id", "new-id")])
    # then they stay apart, the alias event is on the new id's profile, and the refusal is kept for review
    assert profile_of_user(shop, "old-id") != profile_of_user(shop, "new-id")
    assert Event.objects.get(type="alias").profile == profile_of_user(shop, "new-id")
    conflict = ResolutionConflict.objects.get()
    assert conflict.record == new and conflict.other_profiles == [str(old.profile_id)]
    assert "never link" in conflict.reason


def test_alias_keeps_to_the_other_identifier_limits(shop, two_users, send_batch, profile_of_user):
    # given at most one email per profile, and the new id with an email of its own
    IdentifierType.objects.filter(name="email").update(max_per_profile=1)
    send_batch(shop, [identify("m4", "new-id", email="ann.lee@example.org")])
    # when the app aliases them
    send_batch(shop, [alias("m5", "old-id", "new-id")])
    # then the limit holds and the refusal says why
    assert profile_of_user(shop, "old-id") != profile_of_user(shop, "new-id")
    assert "2 email identifiers on one profile (limit 1)" in ResolutionConflict.objects.get().reason


def test_after_an_alias_a_shared_device_still_links_nobody(shop, two_users, send_batch, profile_of_user):
    # given the aliased person
    send_batch(shop, [alias("m4", "old-id", "new-id")])
    ann = profile_of_user(shop, "new-id")
    # when someone else logs in on Ann's laptop
    send_batch(shop, [identify("m5", "bob", "laptop", email="bob@example.com")])
    # then Bob is a person of his own, flagged
    assert profile_of_user(shop, "bob") != ann
    assert ResolutionConflict.objects.get().record.external_id == "bob"


def test_alias_from_a_shared_device_id_links_nobody(shop, two_users, send_batch, profile_of_user):
    # given Bob, and Ann's laptop
    send_batch(shop, [identify("m4", "bob", email="bob@example.com")])
    # when an alias names the laptop's anonymous id as Bob's previous id
    send_batch(shop, [alias("m5", "laptop", "bob")])
    # then it is an anonymous id seen with two user ids: flagged, not merged
    assert profile_of_user(shop, "bob") != profile_of_user(shop, "old-id")
    assert ResolutionConflict.objects.get().record.external_id == "bob"


def test_a_profile_joined_by_an_alias_can_still_be_merged_by_a_steward(
    shop, two_users, send_batch, profile_of_user
):
    send_batch(shop, [alias("m4", "old-id", "new-id")])
    send_batch(shop, [identify("m5", "other-user", "kiosk"), page("m6", "fresh-device", name="Home")])
    aliased = profile_of_user(shop, "new-id")
    other, visitor = profile_of_user(shop, "other-user"), profile_of_user(shop, "anonymous:fresh-device")

    # the aliased profile lawfully holds two shop ids: a merge adding a third is refused ...
    assert "3 shop identifiers" in merge_refusal([aliased.pk, other.pk])
    # ... one adding none is not (a steward accepting a suggested match, say)
    assert merge_refusal([aliased.pk, visitor.pk]) == ""
    with transaction.atomic():
        survivor = profiles_merge(profile_ids=[aliased.pk, visitor.pk], rule="review:accepted", evidence={})
    assert (
        profile_of_user(shop, "anonymous:fresh-device").pk == survivor == profile_of_user(shop, "old-id").pk
    )
