"""The probabilistic matching engine: pure functions on dataclasses, no database."""

import random

import numpy as np
import pytest

from profiles.matching import (
    DEFAULT_BLOCKING_RULES,
    LINK,
    NEW,
    REVIEW,
    BlockingIndex,
    MatchRecord,
    cluster_links,
    decide,
    link_records,
)
from profiles.matching.cluster import groups_conflict, records_conflict
from profiles.matching.comparisons import (
    ADDRESS_LINE1,
    ADDRESS_LINE2,
    BIRTH_DATE,
    DEFAULT_COMPARISONS,
    FIRST_NAME,
    LAST_NAME,
    NATIONAL_ID,
    POSTCODE,
)
from profiles.matching.decision import identity_conflict
from profiles.matching.model import ComparisonParams, MatchModel, estimate_m
from profiles.matching.normalise import address_parts, fold


def person(record_id, source="crm", **attributes):
    return MatchRecord.from_attributes(record_id, attributes, source=source)


def level(comparison, a: dict, b: dict) -> str:
    found = comparison.compare(person(1, **a), person(2, **b))
    return "missing" if found == -1 else comparison.levels[found]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("Jon", "Jon", "exact"),
        ("José", "jose", "exact"),
        ("Jonathon", "Jonathan", "jaro_winkler>=0.92"),
        ("Bill", "William", "nickname_or_initial"),
        ("Liz", "Elizabeth", "nickname_or_initial"),
        ("J", "John", "nickname_or_initial"),
        ("Jon", "Jonathan", "jaro_winkler>=0.85"),
        ("Mary", "Susan", "disagree"),
        ("Mary", None, "missing"),
    ],
)
def test_given_name_levels(a, b, expected):
    assert level(
        FIRST_NAME, {"first_name": a, "last_name": "Smith"}, {"first_name": b, "last_name": "Smith"}
    ) == (expected)


def test_swapped_given_and_family_names_have_their_own_level_and_count_once():
    a, b = {"first_name": "Caleb", "last_name": "McKane"}, {"first_name": "McKane", "last_name": "Caleb"}

    assert level(FIRST_NAME, a, b) == "swapped_with_last_name"
    # one observation, weighed once: the family-name comparison leaves it to the given-name one
    assert level(LAST_NAME, a, b) == "missing"


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("1980-04-12", "1980-04-12", "exact"),
        ("1980-04-12", "1980-12-04", "day_month_swapped"),
        ("1980-04-12", "1981-04-12", "one_component_off"),
        ("1980-04-12", "1980-04-21", "one_component_off"),
        ("1980-04-12", "1980-07-30", "year_only"),
        ("1980-04-12", "1955-09-01", "disagree"),
        ("1980-04-12", None, "missing"),
    ],
)
def test_birth_date_levels(a, b, expected):
    assert level(BIRTH_DATE, {"birth_date": a}, {"birth_date": b}) == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("12 High St", "12 High Street", "exact"),
        ("12 High St.", "12, high street", "exact"),
        ("Flat 3, 12 High Rd", "12 High Road", "exact"),
        ("12 High Street", "12 Hihg Street", "same_number_similar_street"),
        ("12 High Street", "14 High Street", "similar_street"),
        ("12 High Street", "7 Mill Lane", "disagree"),
    ],
)
def test_address_levels(a, b, expected):
    assert level(ADDRESS_LINE1, {"address_line1": a}, {"address_line1": b}) == expected


@pytest.mark.parametrize(
    ("a", "b", "line1", "line2"),
    [
        # A building, farm or estate name that one form puts first: the same address either way.
        (
            ("46 Ashby Circuit", "Moodwood Angus Stud"),
            ("46 Moodwood Angus Stud", "Ashby Circuit"),
            "exact",
            "exact",
        ),
        (
            ("46 Ashby Circuit", "Moodwood Stud"),
            ("46 Moodwod Stud", "Ashby Circiut"),
            "same_number_similar_street",
            "jaro_winkler>=0.88",
        ),
        (
            ("46 Ashby Circuit", "Moodwood Angus Stud"),
            ("12 Moodwood Angus Stud", "Ashby Circuit"),
            "similar_street",
            "exact",
        ),
        # Only one line crosswise is no swap: two different addresses that share a building name.
        (
            ("46 Ashby Circuit", "Moodwood Angus Stud"),
            ("46 Moodwood Angus Stud", "Mill Lane"),
            "disagree",
            "disagree",
        ),
        (
            ("46 Ashby Circuit", "Moodwood Angus Stud"),
            ("46 Moodwood Angus Stud", None),
            "disagree",
            "missing",
        ),
    ],
)
def test_address_lines_written_the_other_way_round_agree(a, b, line1, line2):
    first = {"address_line1": a[0], "address_line2": a[1]}
    second = {"address_line1": b[0], "address_line2": b[1]}

    assert (level(ADDRESS_LINE1, first, second), level(ADDRESS_LINE2, first, second)) == (line1, line2)
    assert (level(ADDRESS_LINE1, second, first), level(ADDRESS_LINE2, second, first)) == (line1, line2)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("SW1A 1AA", "sw1a1aa", "exact"),
        ("2600", "2601", "one_edit"),
        ("SW1A 1AA", "SW1A 2BB", "same_district"),
    ],
)
def test_postcode_levels(a, b, expected):
    assert level(POSTCODE, {"postcode": a}, {"postcode": b}) == expected


def test_normalisation_folds_accents_case_and_punctuation():
    assert fold("  Zoë  O'Brien-Smith ") == "zoe obrien smith"
    assert address_parts("12a Church Rd.") == ("12a", "church road")


U_TRUE = [[0.02, 0.08, 0.9], [0.05, 0.15, 0.8]]


def _two_class_pairs(seed: int, pairs: int, share: float, m_true: list[list[float]]) -> np.ndarray:
    """Level patterns of pairs drawn from a known model: ``share`` matches (levels drawn with ``m_true``),
    the rest strangers (``U_TRUE``); two comparisons of three levels."""
    rng = np.random.default_rng(seed)
    matches = rng.random(pairs) < share
    columns = [
        np.where(matches, rng.choice(3, pairs, p=m_true[k]), rng.choice(3, pairs, p=U_TRUE[k]))
        for k in range(2)
    ]
    return np.column_stack(columns).astype(np.int8)


def test_em_recovers_known_m_and_u_from_a_synthetic_sample():
    # given pairs drawn from a known two-class model (20 % matches, two comparisons of three levels)
    m_true = [[0.8, 0.15, 0.05], [0.7, 0.2, 0.1]]
    u_true = U_TRUE
    matrix = _two_class_pairs(7, 50_000, 0.2, m_true)

    # when EM runs with u known (as the engine gets it from random pairs)
    m, share, _ = estimate_m(matrix, u_true, [3, 3])

    # then it finds the match share and the m probabilities without any label
    assert share == pytest.approx(0.2, abs=0.02)
    for estimated, true in zip(m, m_true, strict=True):
        assert estimated == pytest.approx(true, abs=0.03)


def test_a_level_no_match_showed_is_rare_not_impossible():
    # given 1,000 pairs where the matches never showed the middle level of either comparison
    matrix = _two_class_pairs(3, 1_000, 0.3, [[0.9, 0.0, 0.1], [0.8, 0.0, 0.2]])

    m, _, _ = estimate_m(matrix, U_TRUE, [3, 3])

    # then its m is about half a pair in the ~300 matches (as u gets half a pair among strangers), not the
    # floor: one level of one field cannot veto a match by 18 bits
    for values in m:
        assert 1e-4 < values[1] < 0.01


def test_a_common_surname_weighs_less_than_a_rare_one():
    params = ComparisonParams(
        name="last_name",
        levels=LAST_NAME.levels,
        m=[0.9, 0.04, 0.02, 0.01, 0.03],
        u=[0.001, 0.002, 0.003, 0.0001, 0.9939],
        term_frequency=True,
        value_count=10_000,
        frequencies={"smith": 120, "nguyen": 40},
    )

    assert params.exact_weight("smith") < params.exact_weight("nguyen") < params.exact_weight("zylberstein")
    assert params.exact_weight("smith") < params.weight(0) < params.exact_weight("zylberstein")


def _model(**m_u) -> MatchModel:
    """A small hand-made model over first name, last name and birth date."""
    comparisons = (FIRST_NAME, LAST_NAME, BIRTH_DATE)
    params = [ComparisonParams(c.name, c.levels, m_u[c.name][0], m_u[c.name][1]) for c in comparisons]
    return MatchModel(params, match_share=0.01, comparisons=comparisons)


MODEL = _model(
    first_name=([0.8, 0.05, 0.03, 0.05, 0.02, 0.05], [0.005, 0.002, 0.003, 0.001, 0.0001, 0.9889]),
    last_name=([0.85, 0.05, 0.03, 0.02, 0.05], [0.002, 0.002, 0.003, 0.0001, 0.9929]),
    birth_date=([0.9, 0.02, 0.04, 0.01, 0.03], [0.0001, 0.00001, 0.003, 0.01, 0.98689]),
)


@pytest.mark.parametrize(
    ("b", "outcome"),
    [
        ({"first_name": "Jon", "last_name": "Smith", "birth_date": "1980-04-12"}, LINK),
        ({"first_name": "Jonathan", "last_name": "Smith"}, REVIEW),
        ({"first_name": "Anna", "last_name": "Jones", "birth_date": "1962-01-30"}, NEW),
    ],
)
def test_thresholds_give_link_review_or_new_with_an_explanation(b, outcome):
    a = person(1, first_name="Jon", last_name="Smith", birth_date="1980-04-12")

    decision = decide(MODEL.score(a, person(2, **b)))

    assert decision.outcome == outcome
    explanation = decision.explanation()
    assert [f["field"] for f in explanation["fields"]] == ["first_name", "last_name", "birth_date"]
    assert all({"level", "weight"} <= set(f) for f in explanation["fields"])
    total = explanation["prior_weight"] + sum(f["weight"] for f in explanation["fields"])
    assert explanation["total_weight"] == pytest.approx(total, abs=0.01)


def _household_model():
    """A model under which a shared surname weighs so much that a household scores far above the link
    threshold: only the guard keeps its members apart."""
    model = _model(
        first_name=([0.8, 0.05, 0.03, 0.05, 0.02, 0.05], [0.005, 0.002, 0.003, 0.001, 0.0001, 0.9889]),
        last_name=([0.85, 0.05, 0.03, 0.02, 0.05], [0.00001, 0.002, 0.003, 0.0001, 0.99489]),
        birth_date=([0.9, 0.02, 0.04, 0.01, 0.03], [0.0001, 0.00001, 0.003, 0.01, 0.98689]),
    )
    model.match_share = 0.9
    return model


def test_a_household_member_is_never_linked_automatically():
    # given a very strong score except that birth date and given name both disagree (partners, siblings)
    household = _household_model()
    a = person(1, first_name="Anna", last_name="Okonkwo-Lindqvist", birth_date="1980-04-12")
    b = person(2, first_name="Peter", last_name="Okonkwo-Lindqvist", birth_date="1977-09-30")

    decision = decide(household.score(a, b))

    assert decision.probability >= 0.99
    assert decision.outcome == REVIEW
    assert "disagree" in decision.reason


@pytest.mark.parametrize(
    "b_birth_date",
    [None, "1980-11-03"],  # no birth date on one side; the same year only (siblings, a couple)
)
def test_a_household_member_without_a_confirming_birth_date_is_never_linked_automatically(b_birth_date):
    # given the same surname and a score far above the link threshold, but another given name and no
    # birth date (or only the year) in common: a relative at the address, not a renamed record
    household = _household_model()
    a = person(1, first_name="Anna", last_name="Okonkwo-Lindqvist", birth_date="1980-04-12")
    b = person(2, first_name="Peter", last_name="Okonkwo-Lindqvist", birth_date=b_birth_date)

    decision = decide(household.score(a, b))

    assert decision.probability >= 0.99
    assert decision.outcome == REVIEW
    assert "given names disagree" in decision.reason
    assert records_conflict(a, b)


@pytest.mark.parametrize(
    ("b_first_name", "outcome"),
    [
        # Peter cannot be Anna: a relative at the address, not a question for a steward; Aine is beyond the
        # matcher's tolerance (no typo, no nickname), but sounds like Anna and may be her name: a steward's call
        ("Peter", NEW),
        ("Aine", REVIEW),
    ],
)
def test_given_the_records_a_pair_of_clearly_two_people_is_not_even_suggested(b_first_name, outcome):
    household = _household_model()
    a = person(1, first_name="Anna", last_name="Okonkwo-Lindqvist", birth_date="1980-04-12")
    b = person(2, first_name=b_first_name, last_name="Okonkwo-Lindqvist")

    without_records = decide(household.score(a, b))
    decision = decide(household.score(a, b), pair=(a, b))

    assert without_records.outcome == REVIEW
    assert decision.outcome == outcome
    if outcome == NEW:
        assert "two people" in decision.reason


@pytest.mark.parametrize("b_birth_date", ["1980-04-12", "1980-12-04", "1980-04-13"])
def test_another_given_name_with_a_confirming_birth_date_is_one_person(b_birth_date):
    # the same birth date, day and month swapped, or one component mistyped: a replaced given name
    a = person(1, first_name="Anna", last_name="Berg", birth_date="1980-04-12")
    b = person(2, first_name="Susanne", last_name="Berg", birth_date=b_birth_date)

    assert identity_conflict(MODEL.score(a, b)) == ""
    assert records_conflict(a, b) == ""


def test_a_shared_national_identifier_confirms_one_person():
    a = person(1, first_name="Anna", last_name="Berg", national_id="AB123456C")
    b = person(2, first_name="Susanne", last_name="Berg", national_id="AB123456C")
    c = person(3, first_name="Susanne", last_name="Berg", national_id="ZZ999999Z")

    assert records_conflict(a, b) == ""
    assert records_conflict(a, c)


@pytest.mark.parametrize(
    ("a_id", "b_id", "expected"),
    [
        ("4137877", "4137787", "one_edit"),  # two neighbouring digits swapped: one keying error
        ("7563426", "7563420", "one_edit"),  # one digit mistyped
        ("123-45-6789", "123-45-6789", "exact"),
        ("4137877", "4173787", "disagree"),  # two errors
        ("12345", "12354", "disagree"),  # too short for a neighbour to be one person's
        ("4137877", "", "missing"),
    ],
)
def test_national_identifiers_are_compared_up_to_one_keying_error(a_id, b_id, expected):
    assert level(NATIONAL_ID, {"national_id": a_id}, {"national_id": b_id}) == expected


def test_a_national_identifier_one_keying_error_apart_confirms_one_person():
    # FEBRL's duplicates: the given name replaced and the identifier typed with two digits swapped
    a = person(1, first_name="Matilda", last_name="Satterley", national_id="7200837")
    b = person(2, first_name="Daniel", last_name="Satterley", national_id="7208037")
    score = _with_national_id(MODEL).score(a, b)

    assert score.field_level("national_id") == "one_edit"
    assert identity_conflict(score) == ""
    assert records_conflict(a, b) == ""
    # a relative at the same address has an identifier of their own
    c = person(3, first_name="Daniel", last_name="Satterley", national_id="5183920")
    assert identity_conflict(_with_national_id(MODEL).score(a, c))
    assert records_conflict(a, c)


def _with_national_id(model: MatchModel) -> MatchModel:
    params = ComparisonParams(NATIONAL_ID.name, NATIONAL_ID.levels, [0.9, 0.08, 0.02], [1e-7, 1e-6, 0.999999])
    return MatchModel([*model.params, params], model.match_share, (*model.comparisons, NATIONAL_ID))


def test_a_comparison_added_after_a_model_was_stored_weighs_nothing_until_the_next_training():
    data = MODEL.to_dict()  # stored before national identifiers were compared
    restored = MatchModel.from_dict(data, comparisons=(FIRST_NAME, LAST_NAME, BIRTH_DATE, NATIONAL_ID))
    a = person(1, first_name="Anna", last_name="Berg", national_id="AB123456C")
    b = person(2, first_name="Anna", last_name="Berg", national_id="ZZ999999Z")

    weights = {f.field: f.weight for f in restored.score(a, b).fields}
    assert weights["national_id"] == 0
    assert restored.score(a, b).total_weight == pytest.approx(MODEL.score(a, b).total_weight)


def test_the_prior_is_the_share_of_matches_among_all_pairs_not_among_candidates():
    # 600 people, 300 of them with a second record: 900 records, 300 matching pairs. The u probabilities
    # are those of random pairs, so the prior must be a random pair's chance of a match (300 in 404,550),
    # not the much larger share among the candidate pairs.
    records = _synthetic_people(600)
    result = link_records(records)
    model = result.model
    n = len(records)

    assert model.prior_share == pytest.approx(300 / (n * (n - 1) / 2), rel=0.3)
    assert model.match_share == pytest.approx(model.prior_share * (n * (n - 1) / 2) / len(result.pairs))
    assert model.prior_weight == pytest.approx(np.log2(model.prior_share / (1 - model.prior_share)))
    restored = MatchModel.from_dict(model.to_dict())
    assert restored.prior_weight == pytest.approx(model.prior_weight)


def test_a_stored_model_without_a_prior_share_keeps_its_candidate_prior():
    data = MODEL.to_dict()
    del data["prior_share"]

    restored = MatchModel.from_dict(data, comparisons=(FIRST_NAME, LAST_NAME, BIRTH_DATE))

    assert restored.prior_weight == pytest.approx(np.log2(0.01 / 0.99))


def test_blocking_keys_survive_swapped_names_and_spacing_typos():
    a = person(1, first_name="Caleb", last_name="McKane", address_line1="11 Copland Drive", city="Leeds")
    b = person(2, first_name="McKane", last_name="Caleb", address_line1="11 Coplanddrive", city="Leeds")

    index = BlockingIndex()
    index.add(a)

    assert 0 in index.candidates(b)
    shared = {rule.name for rule in DEFAULT_BLOCKING_RULES if rule.key(a) and rule.key(a) == rule.key(b)}
    assert {"name_sounds", "address"} <= shared


def test_a_transposed_house_number_still_shares_a_blocking_key():
    a = person(
        1,
        first_name="Lia",
        last_name="Maynard",
        birth_date="1925-07-17",
        address_line1="15 Hensman Street",
        postcode="3169",
        city="Modbury Heights",
    )
    b = person(
        2,
        first_name="Lia",
        last_name="Maymard",
        birth_date="1995-07-04",
        address_line1="51 Hensman Street",
        postcode="3196",
        city="Modbury Ehights",
    )

    shared = {rule.name for rule in DEFAULT_BLOCKING_RULES if rule.key(a) and rule.key(a) == rule.key(b)}

    assert shared == {"given_name_sound+street"}


@pytest.mark.parametrize("link_only", [False, True])
@pytest.mark.parametrize("max_block_size", [200, 6, 2])  # 6 and 2: big blocks split by initials, or skipped
def test_the_pair_codes_are_the_candidate_pairs(link_only, max_block_size):
    records = _synthetic_people(600)
    index = BlockingIndex(max_block_size=max_block_size)
    index.extend(records)

    pairs, stats = index.candidate_pairs(link_only=link_only)
    codes, code_stats = index.candidate_pair_codes(link_only=link_only)

    n = len(records) + 1
    assert len(pairs) > 100 and sorted(i * n + j for i, j in pairs) == sorted(codes.tolist())
    assert all(i < j for i, j in pairs)
    assert code_stats == stats


def test_candidate_pairs_come_in_block_order_each_once():
    # Bob and Rob share a postcode (first rule) and a surname sound with birth year (second rule): their
    # pair comes once, where the postcode block put it, before the pairs only the second rule finds
    records = [
        person(0, first_name="Robert", last_name="Hale", birth_date="1970-02-01", postcode="LS1 4AP"),
        person(1, first_name="Rob", last_name="Hale", birth_date="1970-02-01", postcode="LS1 4AP"),
        person(2, first_name="Roberta", last_name="Hale", birth_date="1970-06-30", postcode="YO1 7HH"),
    ]
    index = BlockingIndex()
    index.extend(records)

    pairs, stats = index.candidate_pairs()

    assert list(pairs) == [(0, 1), (0, 2), (1, 2)]
    assert (pairs[0], len(pairs), list(pairs[pairs.left == 0])) == ((0, 1), 3, [(0, 1), (0, 2)])
    assert stats.pairs_per_rule["postcode"] == 1 and stats.pairs_per_rule["surname_sound+birth_year"] == 2


def test_clustering_does_not_chain_strangers():
    # given Anna links to A. (initial), A. links to Alice, but Anna and Alice clearly differ
    records = [
        person(0, first_name="Anna", last_name="Berg", birth_date="1980-04-12"),
        person(1, first_name="A", last_name="Berg"),
        person(2, first_name="Alice", last_name="Berg", birth_date="1955-09-01"),
    ]

    clusters, refused = cluster_links(records, [(0, 1, 0.999), (1, 2, 0.995)])

    assert clusters == [[0, 1], [2]]
    assert len(refused) == 1 and "disagree" in refused[0].reason


def test_a_record_confirmed_with_both_bridges_a_pair_that_nothing_confirms():
    # FEBRL's duplicates: Holly and Matthew are one person by the birth date; Matthew without a birth date
    # is Matthew by the national identifier: nothing is left to keep Holly and him apart
    records = [
        person(0, first_name="Matthew", last_name="Green", birth_date="1941-01-14", national_id="8051408"),
        person(1, first_name="Matthew", last_name="Green", national_id="8051408"),
        person(2, first_name="Holly", last_name="Green", birth_date="1941-01-14", national_id="1092994"),
    ]
    assert records_conflict(records[1], records[2])  # the pair alone: nothing confirms one person

    clusters, refused = cluster_links(records, [(0, 1, 0.999), (0, 2, 0.999)])

    assert clusters == [[0, 1, 2]] and not refused
    check = groups_conflict(records[:2], records[2:])
    assert check.conflict is None and check.bridged == ((records[1], records[2], records[0]),)


@pytest.mark.parametrize(
    "bridge",
    [
        {"last_name": "Green", "address_line1": "3 Larpent Street"},  # no given name, no birth date
        {"first_name": "M", "last_name": "Green"},  # an initial: compatible with either, confirms nothing
    ],
)
def test_a_record_that_confirms_nothing_bridges_no_relatives(bridge):
    records = [
        person(0, first_name="Matthew", last_name="Green", address_line1="3 Larpent Street"),
        person(1, **bridge),
        person(2, first_name="Holly", last_name="Green", address_line1="3 Larpent Street"),
    ]

    clusters, refused = cluster_links(records, [(0, 1, 0.999), (1, 2, 0.999)])

    assert clusters == [[0, 1], [2]] and "no birth date or identifier" in refused[0].reason


def test_a_bridge_does_not_lift_a_contradiction():
    # Anna and Alice: other given names and other birth dates, whatever a third record confirmed with each
    # of them (Anna's birth date, Alice's identifier) says
    records = [
        person(0, first_name="Anna", last_name="Berg", birth_date="1980-04-12", national_id="5550001"),
        person(1, first_name="A", last_name="Berg", birth_date="1980-04-12", national_id="7770002"),
        person(2, first_name="Alice", last_name="Berg", birth_date="1955-09-01", national_id="7770002"),
    ]

    clusters, refused = cluster_links(records, [(0, 1, 0.999), (1, 2, 0.999)])

    assert clusters == [[0, 1], [2]] and "birth dates and given names disagree" in refused[0].reason


def test_clustering_respects_a_per_source_limit():
    records = [person(i, source="crm", first_name="Anna", last_name="Berg") for i in range(3)]

    clusters, refused = cluster_links(records, [(0, 1, 0.999), (1, 2, 0.999)], max_records_per_source=2)

    assert clusters == [[0, 1], [2]] and refused


def _synthetic_people(count: int, seed: int = 3) -> list[MatchRecord]:
    rng = random.Random(seed)
    given = [
        "Jonathan",
        "William",
        "Elizabeth",
        "Robert",
        "Sarah",
        "Mei",
        "Oluwaseun",
        "Priya",
        "Lars",
        "Ana",
    ]
    family = [
        "Smith",
        "Nguyen",
        "Okafor",
        "Lindqvist",
        "Garcia",
        "Kowalski",
        "Haddad",
        "Brown",
        "Sato",
        "Rossi",
    ]
    streets = ["High Street", "Mill Road", "Church Lane", "Station Avenue", "Park Crescent"]
    nick = {"Jonathan": "Jon", "William": "Bill", "Elizabeth": "Liz", "Robert": "Bob"}
    records = []
    for n in range(count):
        first, last = rng.choice(given), rng.choice(family)
        dob = f"{rng.randint(1940, 2000)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        street = f"{rng.randint(1, 300)} {rng.choice(streets)}"
        postcode = f"{rng.randint(2000, 2999)}"
        records.append(
            person(
                f"{n}-a",
                "crm",
                first_name=first,
                last_name=last,
                birth_date=dob,
                address_line1=street,
                postcode=postcode,
            )
        )
        if n % 2 == 0:  # a second record of half of the people, in another source, lightly corrupted
            records.append(
                person(
                    f"{n}-b",
                    "erp",
                    first_name=nick.get(first, first),
                    last_name=last,
                    birth_date=dob,
                    address_line1=street.replace("Street", "St").replace("Road", "Rd"),
                    postcode=postcode,
                )
            )
    return records


def test_link_records_finds_the_duplicates_of_a_synthetic_population_without_labels():
    records = _synthetic_people(1_000)

    result = link_records(records)

    predicted = {frozenset((records[i].record_id, records[j].record_id)) for i, j in result.links()}
    truth = {frozenset((f"{n}-a", f"{n}-b")) for n in range(0, 1_000, 2)}
    assert len(predicted & truth) / len(truth) > 0.95
    assert len(predicted & truth) / len(predicted) > 0.99
    assert all(d.explanation()["fields"] for d in result.decisions.values())


def test_training_compares_each_distinct_pair_once_and_gives_every_group_its_own_rows():
    from profiles.matching.model import _matrices, comparison_matrix

    records = [
        person(i, first_name=name, last_name="Smith", postcode=postcode)
        for i, (name, postcode) in enumerate(
            [("Ann", "AB1"), ("Anne", "AB1"), ("Bob", "CD2"), ("Rob", "AB1")]
        )
    ]
    groups = [[(0, 1), (0, 3), (1, 3)], [], [(1, 3), (0, 2), (0, 1)]]

    matrices = _matrices(records, groups, DEFAULT_COMPARISONS)

    assert [len(m) for m in matrices] == [3, 0, 3]
    for group, matrix in zip(groups, matrices, strict=True):
        assert (matrix == comparison_matrix(records, group)).all()
