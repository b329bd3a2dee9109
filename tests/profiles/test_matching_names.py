"""Names and email local parts as the matcher reads them: which given names can be one person's (the guard
of deterministic links), and what an email local part says beyond the names. Pure functions, no database."""

import pytest

from profiles.matching import MatchRecord
from profiles.matching.cluster import identifier_shared_by_two
from profiles.matching.comparisons import EMAIL, given_names_differ


def person(**attributes) -> MatchRecord:
    return MatchRecord.from_attributes(None, attributes)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("Ann", "Lee"), ("Annie", "Lee")),  # close spelling
        (("Annie", "Lee"), ("Ana", "Lee")),  # the same sound
        (("Robert", "Lee"), ("Robbbie", "Lee")),  # a nickname with a typo in it
        (("Bob", "Lee"), ("R.", "Lee")),  # the initial of the nickname's formal name
        (("Judy", "Cook"), ("Juyd", "Cook")),  # one typo
        (("Melissa", "Brown"), ("Brown", "Mel")),  # exchanged, with a nickname
        (("Jenny", None), ("Norris", "J")),  # exchanged, family name missing on one side
        (("Ann", "Lee"), (None, "Lee")),  # nothing to compare
        (("Oliver", "Bennett"), ("Olly", "Bennett")),  # short forms from our own table
        (("Charlotte", "Hay"), ("Charlie", "Hay")),
        (("Nicola", "Hay"), ("Nicky", "Hay")),
        (("Philippa", "Hay"), ("Pippa", "Hay")),
    ],
)
def test_given_names_that_may_be_one_persons(a, b):
    first = person(first_name=a[0], last_name=a[1])
    second = person(first_name=b[0], last_name=b[1])

    assert not given_names_differ(first, second)
    assert not given_names_differ(second, first)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Alice", "Robert"),
        ("Ann", "Jo"),
        ("Mary", "Susan"),
        ("Jessica", "Brian"),
    ],
)
def test_given_names_of_two_people(a, b):
    assert given_names_differ(person(first_name=a, last_name="Lee"), person(first_name=b, last_name="Lee"))


def test_a_birth_date_or_an_identifier_confirms_one_person_despite_the_given_names():
    alice = {"first_name": "Alice", "last_name": "Lee", "birth_date": "1980-05-01"}

    assert identifier_shared_by_two(person(**alice), person(**{**alice, "first_name": "Robert"})) == ""
    swapped = {**alice, "first_name": "Robert", "birth_date": "1980-01-05"}
    assert identifier_shared_by_two(person(**alice), person(**swapped)) == ""
    other = {**alice, "first_name": "Robert", "birth_date": "1951-11-23"}
    assert (
        identifier_shared_by_two(person(**alice), person(**other)) == "birth dates and given names disagree"
    )
    unknown = {"first_name": "Robert", "last_name": "Lee"}
    assert "no birth date or identifier confirms" in identifier_shared_by_two(
        person(**alice), person(**unknown)
    )
    same_id = {"national_id": "123-45-6789"}
    assert identifier_shared_by_two(person(**alice, **same_id), person(**unknown, **same_id)) == ""


def email_level(a: dict, b: dict) -> str:
    found = EMAIL.compare(person(**a), person(**b))
    return "missing" if found == -1 else EMAIL.levels[found]


def test_a_local_part_that_only_spells_the_names_adds_nothing_to_them():
    # two James Fernandezes at two providers: the local part repeats the names, it does not confirm them
    james = {"first_name": "James", "last_name": "Fernandez"}
    assert (
        email_level(
            {**james, "email": "james.fernandez@gmail.com"}, {**james, "email": "james.fernandez@acme.com"}
        )
        == "missing"
    )
    daniel = {"first_name": "Daniel", "last_name": "Johnson"}
    assert email_level(
        {**daniel, "email": "djohnson@gmail.com"}, {**daniel, "email": "djohnson@msn.com"}
    ) == ("missing")


def test_what_a_local_part_adds_to_the_names_is_what_must_agree():
    daniel = {"first_name": "Daniel", "last_name": "Gonzalez"}

    assert email_level(
        {**daniel, "email": "daniel48@yahoo.com"}, {**daniel, "email": "daniel98@gmail.com"}
    ) == ("disagree")
    assert email_level(
        {**daniel, "email": "daniel48@yahoo.com"}, {**daniel, "email": "daniel48@gmail.com"}
    ) == ("same_local_part")


def test_a_local_part_not_made_of_the_names_keeps_its_levels():
    mary = {"first_name": "Mary", "last_name": "Smith"}

    assert email_level(
        {**mary, "email": "sunflower@yahoo.com"}, {**mary, "email": "sunflower@gmail.com"}
    ) == ("same_local_part")
    assert email_level({**mary, "email": "msmith@yahoo.com"}, {**mary, "email": "msmit@yahoo.com"}) == (
        "similar_local_part"
    )
    assert (
        email_level({**mary, "email": "msmith@yahoo.com"}, {**mary, "email": "msmith@yahoo.com"}) == "exact"
    )


def test_a_middle_initial_in_a_full_name_is_not_part_of_the_family_name():
    record = person(full_name="Mary F. Delettholm")

    assert (record.first_names, record.last_name) == (("mary", "f"), "delettholm")
    assert person(full_name="Mary Ann Smith").last_name == "annsmith"  # a longer middle word stays
