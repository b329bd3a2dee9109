"""Who the events belong to: identify traits as attributes, stitching of anonymous activity, alias, merges
carrying events along, and shared devices flagged instead of merged."""

from django.core.management import call_command

from ingestion.models import InboundRecord
from profiles.models import Event, MergeEvent, Profile, ResolutionConflict
from profiles.selectors import profile_get, profile_lookup


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
