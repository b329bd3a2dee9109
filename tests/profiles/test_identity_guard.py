"""Guardrail: an identifier shared by clearly different people (a family email, a household landline) does not
merge them; the refusal waits for a data steward, who can merge them anyway."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from cdp import roles
from profiles.models import Identity, MergeEvent, Profile, ResolutionConflict
from profiles.services import conflict_merge

pytestmark = pytest.mark.django_db

ANN = {
    "external_id": "C-1",
    "attributes": {
        "first_name": "Ann",
        "last_name": "Lee",
        "birth_date": "1980-05-01",
        "email": "lee.family@example.com",
        "phone": "+1 415 555 0100",
    },
}
BOB = {
    "external_id": "E-7",
    "attributes": {
        "first_name": "Robert",
        "last_name": "Lee",
        "birth_date": "1977-11-23",
        "email": "lee.family@example.com",
    },
}


def test_two_people_sharing_a_family_email_are_not_merged(crm, erp, ingest, profile_of):
    ingest(crm, [ANN])
    ingest(erp, [BOB])

    ann, bob = profile_of(crm, "C-1"), profile_of(erp, "E-7")
    assert ann != bob
    assert bob.golden["first_name"] == "Robert" and ann.golden["first_name"] == "Ann"
    conflict = ResolutionConflict.objects.get()
    assert conflict.record.external_id == "E-7" and conflict.other_profiles == [str(ann.pk)]
    assert conflict.identifier_type == "email"
    assert "birth dates and given names disagree" in conflict.reason
    assert "lee.family@example.com" in conflict.reason


def test_the_same_person_with_a_nickname_and_a_mistyped_birth_date_still_links(crm, erp, ingest, profile_of):
    ingest(crm, [ANN])
    typo = {
        "first_name": "Annie",
        "last_name": "Lee",
        "birth_date": "1980-01-05",
        "email": "lee.family@example.com",
    }
    ingest(erp, [{"external_id": "E-1", "attributes": typo}])  # day and month swapped

    assert profile_of(crm, "C-1") == profile_of(erp, "E-1")
    assert not ResolutionConflict.objects.exists()


@pytest.mark.parametrize(
    "attributes",
    [
        # a different birth date but the same given name: a source's typo, not another person
        {**ANN["attributes"], "birth_date": "1981-06-02"},
        # another given name, but the same birth date: a source's wrong or preferred given name
        {**ANN["attributes"], "first_name": "Joanna"},
        # no given name at all: nothing to contradict
        {"email": "lee.family@example.com"},
    ],
    ids=["other-birth-date", "other-given-name-same-birth-date", "no-given-name"],
)
def test_one_disagreement_alone_or_a_missing_value_does_not_stop_a_link(
    crm, erp, ingest, profile_of, attributes
):
    ingest(crm, [ANN])

    ingest(erp, [{"external_id": "E-2", "attributes": attributes}])

    assert profile_of(crm, "C-1") == profile_of(erp, "E-2")
    assert not ResolutionConflict.objects.exists()


def test_family_members_without_birth_dates_sharing_an_email_are_not_merged(crm, erp, ingest, profile_of):
    # given a household's shared address, on records that carry no birth date (as most CRM records)
    family = "the.lees@example.com"
    ingest(
        crm,
        [{"external_id": "C-1", "attributes": {"first_name": "Alice", "last_name": "Lee", "email": family}}],
    )

    ingest(
        erp,
        [{"external_id": "E-1", "attributes": {"first_name": "Robert", "last_name": "Lee", "email": family}}],
    )

    assert profile_of(crm, "C-1") != profile_of(erp, "E-1")
    conflict = ResolutionConflict.objects.get()
    assert conflict.record.external_id == "E-1" and conflict.identifier_type == "email"
    assert "given names disagree and no birth date or identifier confirms one person" in conflict.reason


def test_a_household_landline_does_not_merge_its_people_either(crm, erp, ingest, profile_of):
    landline = "+1 415 555 0199"
    ingest(
        crm,
        [
            {
                "external_id": "C-1",
                "attributes": {"first_name": "Nancy", "last_name": "Wen", "phone": landline},
            }
        ],
    )

    ingest(
        erp,
        [
            {
                "external_id": "E-1",
                "attributes": {"first_name": "Brian", "last_name": "Wen", "phone": landline},
            }
        ],
    )

    assert profile_of(crm, "C-1") != profile_of(erp, "E-1")
    assert ResolutionConflict.objects.get().identifier_type == "phone"


def test_a_record_joins_its_person_through_one_identifier_and_not_a_relative_through_another(
    crm, erp, web, ingest, profile_of
):
    """Its email is Nancy's own; its landline is shared with Brian: it joins Nancy, and only the landline is
    a conflict."""
    landline = "+1 415 555 0199"
    ingest(crm, [{"external_id": "C-1", "attributes": {"first_name": "Nancy", "email": "nancy@example.com"}}])
    ingest(erp, [{"external_id": "E-1", "attributes": {"first_name": "Brian", "phone": landline}}])

    nancy = {"first_name": "Nancy", "last_name": "Wen", "email": "nancy@example.com", "phone": landline}
    ingest(web, [{"external_id": "W-1", "attributes": nancy}])

    assert profile_of(web, "W-1") == profile_of(crm, "C-1") != profile_of(erp, "E-1")
    conflict = ResolutionConflict.objects.get()
    assert conflict.record.external_id == "W-1" and conflict.identifier_type == "phone"
    assert conflict.profile_id == profile_of(crm, "C-1").pk
    assert conflict.other_profiles == [str(profile_of(erp, "E-1").pk)]
    assert [i.profile_id for i in Identity.objects.filter(type="phone")] == [profile_of(erp, "E-1").pk]

    call_command("resolve", "--all", stdout=StringIO())

    assert profile_of(web, "W-1") == profile_of(crm, "C-1") != profile_of(erp, "E-1")


@pytest.mark.parametrize(
    "variant",
    [
        "Annie",  # a nickname, not in the nickname table but the same sound
        "Ana",
        "A.",  # an initial
        "Anne",  # a typo
        "Lee Ann",  # given and family name exchanged
    ],
)
def test_variants_of_one_given_name_on_one_email_still_merge(crm, erp, ingest, profile_of, variant):
    email = {"email": "ann.lee@example.com"}
    ingest(crm, [{"external_id": "C-1", "attributes": {"first_name": "Ann", "last_name": "Lee", **email}}])
    first, _, last = variant.partition(" ")

    ingest(
        erp,
        [{"external_id": "E-1", "attributes": {"first_name": first, "last_name": last or "Lee", **email}}],
    )

    assert profile_of(crm, "C-1") == profile_of(erp, "E-1")
    assert not ResolutionConflict.objects.exists()


def test_records_of_one_chunk_are_guarded_against_each_other(crm, ingest, profile_of):
    ingest(crm, [ANN, {**BOB, "external_id": "C-2"}])

    assert profile_of(crm, "C-1") != profile_of(crm, "C-2")
    assert ResolutionConflict.objects.count() == 1


def test_a_steward_merges_them_anyway_from_the_conflict(crm, erp, ingest, profile_of, django_user_model):
    ingest(crm, [ANN])
    ingest(erp, [BOB])
    conflict = ResolutionConflict.objects.get()
    steward = django_user_model.objects.create_user("steward", password="pw-12345678", is_staff=True)
    steward.groups.add(roles_group(roles.DATA_STEWARD))
    client = Client()
    client.force_login(steward)

    page = client.post(
        reverse("admin:profiles_resolutionconflict_changelist"),
        {"action": "merge_profiles", "_selected_action": [conflict.pk]},
        follow=True,
    )

    assert "Merged the profiles of 1 conflict(s)." in page.content.decode()
    assert profile_of(crm, "C-1") == profile_of(erp, "E-7")
    merge = MergeEvent.objects.get(rule="review:conflict")
    assert merge.actor == "steward" and merge.evidence["conflict"] == conflict.pk
    conflict.refresh_from_db()
    assert conflict.status == ResolutionConflict.Status.RESOLVED
    with pytest.raises(ValueError, match="already resolved"):
        conflict_merge(conflict_id=conflict.pk, actor="steward")


@pytest.mark.parametrize("birth_dates", [True, False], ids=["birth-dates-disagree", "no-birth-dates"])
def test_resolve_all_does_not_merge_them_either(crm, erp, ingest, birth_dates):
    strip = {} if birth_dates else {"birth_date": None}
    ingest(crm, [{**ANN, "attributes": {**ANN["attributes"], **strip}}])
    ingest(erp, [{**BOB, "attributes": {**BOB["attributes"], **strip}}])

    call_command("resolve", "--all", stdout=StringIO())

    assert Profile.objects.filter(status=Profile.Status.ACTIVE).count() == 2


def roles_group(name):
    from django.contrib.auth.models import Group

    return Group.objects.get(name=name)
