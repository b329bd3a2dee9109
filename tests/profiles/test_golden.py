"""Survivorship rules of the golden record: pure functions, no database."""

from datetime import UTC, datetime

import pytest

from profiles.golden import Candidate, display_name, golden_record

JAN, MAR, JUN = (datetime(2024, month, 1, tzinfo=UTC) for month in (1, 3, 6))


def candidate(record_id, source, rank, observed_at, **attributes):
    return Candidate(
        record_id=record_id,
        source=source,
        external_id=f"{source}-{record_id}",
        trust_rank=rank,
        observed_at=observed_at,
        attributes=attributes,
    )


def test_no_candidates_give_an_empty_golden_record():
    assert golden_record([]) == ({}, {})


def test_each_attribute_comes_from_the_most_trusted_source_even_when_older():
    crm = candidate(1, "crm", 80, JAN, first_name="Ana")
    web = candidate(2, "web", 40, JUN, first_name="Annie")

    golden, lineage = golden_record([web, crm])

    assert golden == {"first_name": "Ana"}
    assert lineage["first_name"] == {
        "source": "crm",
        "record": 1,
        "external_id": "crm-1",
        "observed_at": JAN.isoformat(),
        "rule": "trust_rank",
    }


def test_attributes_the_trusted_source_lacks_come_from_the_next_one_with_their_own_lineage():
    crm = candidate(1, "crm", 80, JAN, first_name="Ana")
    survey = candidate(2, "survey", 30, MAR, first_name="Anna", city="Leeds")

    golden, lineage = golden_record([crm, survey])

    assert golden == {"city": "Leeds", "first_name": "Ana"}
    assert (lineage["city"]["source"], lineage["city"]["record"]) == ("survey", 2)
    assert (lineage["first_name"]["source"], lineage["first_name"]["record"]) == ("crm", 1)


@pytest.mark.parametrize("empty", [None, "", [], {}])
def test_an_empty_value_never_wins(empty):
    crm = candidate(1, "crm", 80, JUN, city=empty)
    web = candidate(2, "web", 40, JAN, city="Leeds")

    golden, lineage = golden_record([crm, web])

    assert golden == {"city": "Leeds"}
    assert lineage["city"]["source"] == "web"


@pytest.mark.parametrize("order", [1, -1], ids=["newer-first", "older-first"])
def test_between_equal_ranks_the_most_recent_change_wins_whatever_the_order(order):
    newer = candidate(1, "crm_eu", 80, JUN, job_title="CTO")
    older = candidate(2, "crm_us", 80, JAN, job_title="Engineer")

    golden, lineage = golden_record([newer, older][::order])

    assert golden == {"job_title": "CTO"}
    assert lineage["job_title"] == {
        "source": "crm_eu",
        "record": 1,
        "external_id": "crm_eu-1",
        "observed_at": JUN.isoformat(),
        "rule": "trust_rank",
    }


@pytest.mark.parametrize("order", [1, -1])
def test_a_complete_tie_is_decided_the_same_way_whatever_the_order(order):
    first = candidate(1, "crm", 80, JUN, job_title="CTO")
    second = candidate(2, "crm", 80, JUN, job_title="Chief Technology Officer")

    golden, _ = golden_record([first, second][::order])

    assert golden == {"job_title": "Chief Technology Officer"}


def test_attributes_are_decided_independently():
    crm = candidate(1, "crm", 80, JAN, first_name="Ana", email="ana@work.example")
    erp = candidate(2, "erp", 70, JUN, email="ana@home.example", company="Acme")
    web = candidate(3, "web", 40, JUN, company="ACME Ltd", loyalty_tier="gold")

    golden, lineage = golden_record([web, erp, crm])

    assert golden == {
        "company": "Acme",
        "email": "ana@work.example",
        "first_name": "Ana",
        "loyalty_tier": "gold",
    }
    assert {name: entry["source"] for name, entry in lineage.items()} == {
        "company": "erp",
        "email": "crm",
        "first_name": "crm",
        "loyalty_tier": "web",
    }


def test_custom_values_are_kept_as_sent():
    golden, _ = golden_record([candidate(1, "web", 40, JAN, preferences={"newsletter": True}, visits=3)])

    assert golden == {"preferences": {"newsletter": True}, "visits": 3}


def test_golden_record_accepts_any_iterable_once():
    candidates = (c for c in [candidate(1, "crm", 80, JAN, first_name="Ana")])

    assert golden_record(candidates)[0] == {"first_name": "Ana"}


@pytest.mark.parametrize(
    ("golden", "expected"),
    [
        ({"first_name": "Ana", "last_name": "Lima", "email": "ana@example.org"}, "Ana Lima"),
        ({"last_name": "Lima"}, "Lima"),
        ({"full_name": "Ana Lima", "email": "ana@example.org"}, "Ana Lima"),
        ({"email": "ana@example.org", "phone": "+12025550143"}, "ana@example.org"),
        ({"phone": "+12025550143"}, "+12025550143"),
        ({}, ""),
    ],
)
def test_display_name_uses_the_best_available_attribute(golden, expected):
    assert display_name(golden) == expected


@pytest.mark.parametrize(
    "rules",
    [
        {},
        {"city": "most_recent", "email": "most_frequent"},
        {"address_line1": "most_complete", "first_name": "most_recent"},
        {"postcode": "most_frequent", "phone": "no_such_rule"},
    ],
)
def test_a_single_record_gives_what_the_rules_give_among_several(rules):
    only = candidate(
        7,
        "crm",
        80,
        MAR,
        first_name="Ana",
        last_name="",
        email="ana@example.com",
        phone=None,
        city="Leeds",
        postcode="LS1 4AP",
        address_line2="",
        tags=["vip"],
        preferences={},
    )
    nothing = candidate(8, "web", 40, JUN)  # a record without values changes no choice

    assert golden_record([only], rules) == golden_record([only, nothing], rules)
    golden, lineage = golden_record([only], rules)
    assert sorted(golden) == ["city", "email", "first_name", "postcode", "tags"]
    assert lineage["city"]["rule"] == lineage["postcode"]["rule"]  # the address survives under one rule
