"""What lets two records of one person find each other: the nickname table, names read from an email address,
and an email local part that only repeats the pair's names. Pure functions, no database."""

import pytest

from profiles.matching import BlockingIndex, MatchRecord
from profiles.matching.cluster import identifier_shared_by_two
from profiles.matching.comparisons import EMAIL, given_name_level
from profiles.matching.normalise import name_from_email, nickname_compatible

NICKNAME_OR_INITIAL = 3
DISAGREE = 5


def person(record_id=None, **attributes) -> MatchRecord:
    return MatchRecord.from_attributes(record_id, attributes)


@pytest.mark.parametrize(
    ("formal", "nickname"),
    [
        # from the curated list of the nicknames package
        ("Cynthia", "Cindy"),
        ("Melissa", "Missy"),
        ("Teresa", "Tess"),
        ("Amanda", "Mandy"),
        ("Virginia", "Ginny"),
        # from the product's own table: what that list leaves out
        ("William", "Liam"),
        ("Margaret", "Greta"),
        ("Alexander", "Xander"),
    ],
)
def test_a_nickname_is_a_nickname_for_the_matcher_and_the_guard(formal, nickname):
    a = person(first_name=formal, last_name="Okafor", email="family@example.org")
    b = person(first_name=nickname, last_name="Okafor", email="family@example.org")

    assert given_name_level(a.first_names, b.first_names) == NICKNAME_OR_INITIAL
    # a shared email between them is one person's, not a household's
    assert identifier_shared_by_two(a, b) == ""


@pytest.mark.parametrize(("a", "b"), [("Anna", "Peter"), ("Mary", "John"), ("Cynthia", "Melissa")])
def test_different_names_stay_different(a, b):
    assert not nickname_compatible(a.lower(), b.lower())
    assert given_name_level((a.lower(),), (b.lower(),)) == DISAGREE


def test_names_are_compatible_through_a_shared_group_only():
    # "jon" is short for John and for Jonathan; Cindy (Cynthia) and Missy (Melissa) share no group
    assert nickname_compatible("jon", "john") and nickname_compatible("jon", "jonathan")
    assert not nickname_compatible("cindy", "missy")


@pytest.mark.parametrize(
    ("local", "given", "family", "expected"),
    [
        ("jordan.johnson", "jordan", "", ("jordan", "johnson")),  # the family name is in the address
        ("johnson_jordan", "jordan", "", ("jordan", "johnson")),  # written the other way round
        ("norettdorf.joseph", "", "norettdorf", ("joseph", "norettdorf")),  # the given name is
        ("gary_calov", "", "", ("gary", "calov")),  # no name at all: the usual order
        ("j.johnson", "jordan", "", ("jordan", "")),  # an initial says nothing certain
        ("jordan.johnson82", "jordan", "", ("jordan", "")),  # nor do digits
        ("jordan.lee.johnson", "jordan", "", ("jordan", "")),  # nor three parts
        ("jordanjohnson", "jordan", "", ("jordan", "")),  # nor no separator
        ("sam.johnson", "jordan", "", ("jordan", "")),  # the known name is not in it
        ("jordan.johnson", "jordan", "smith", ("jordan", "smith")),  # a record's own names win
    ],
)
def test_a_missing_name_is_read_from_an_address_of_two_names(local, given, family, expected):
    assert name_from_email(local, given, family) == expected


def test_a_web_sign_up_finds_the_crm_record_through_the_name_in_its_email():
    crm = person(1, first_name="Jordan", last_name="Johnson", phone="+12126382319", postcode="10073")
    web = person(2, first_name="Jordan", email="jordan.johnson@icloud.com")
    index = BlockingIndex()
    index.add(crm)

    assert web.last_name == "johnson"
    assert index.candidates(web) == {0}


def test_a_name_read_from_an_email_does_not_stop_a_deterministic_link():
    # the address is what the two records share: the name it spells is no second witness ("lee.family@...")
    anna = person(email="anna.okafor@example.org")
    peter = person(first_name="Peter", last_name="Okafor", email="anna.okafor@example.org")

    assert (anna.first_name, anna.last_name) == ("anna", "okafor")
    assert identifier_shared_by_two(anna, peter) == ""
    assert identifier_shared_by_two(person(first_name="Anna", last_name="Okafor"), peter) != ""


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("Mel", "Smith", "melissa.smith@outlook.com"), ("Melissa", "Smih", "melissa.smith@yahoo.com")),
        (("Pat", "Smith", "patricia_smith@gmail.com"), ("Patricia", "Smith", "patricia_smith@yahoo.com")),
        (("Thomas", "Jobnson", "johnson.thomas@hooli.com"), ("Thomas", "Johnson", "johnson.thomas@acme.com")),
    ],
)
def test_a_local_part_that_spells_the_pairs_names_weighs_nothing(a, b):
    # namesakes at two providers have it as often as one person, whichever record holds the nickname or typo
    first = person(first_name=a[0], last_name=a[1], email=a[2])
    second = person(first_name=b[0], last_name=b[1], email=b[2])

    assert EMAIL.compare(first, second) == -1  # MISSING


def test_what_a_local_part_adds_to_the_names_still_counts():
    first = person(first_name="Mel", last_name="Smith", email="melissa.smith1954@outlook.com")
    second = person(first_name="Melissa", last_name="Smih", email="melissa.smith1954@yahoo.com")
    other = person(first_name="Melissa", last_name="Smith", email="melissa.smith1987@yahoo.com")

    assert EMAIL.levels[EMAIL.compare(first, second)] == "same_local_part"
    assert EMAIL.levels[EMAIL.compare(first, other)] == "disagree"
