"""The search box finds a person by a source's id written with its source, as staff copy it from other
systems ("crm:C1", "crm C1"), and by a misspelt name, besides every other way the Customer 360
tests cover; a search's page and count take one query."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from cdp import roles
from profiles.models import Profile
from profiles.selectors import (
    RANK_IDENTIFIER,
    RANK_NAME_EXACT,
    RANK_NAME_PREFIX,
    SearchPaginator,
    profile_search,
)
from tests.conftest import ON_POSTGRES


def search(client, term: str) -> str:
    return client.get(reverse("admin:profiles_profile_changelist"), {"q": term}).content.decode()


@pytest.mark.parametrize(
    "term",
    ["crm:C1", "crm: C1", "CRM C1", "crm/C1", "crm#C1", "erp:E1", "web W1", "email: JON.DOE@example.org"],
)
def test_an_id_written_with_its_source_or_type_finds_the_person_first(jon, term):
    results = list(profile_search(term=term).order_by("-search_rank"))

    assert results[0] == jon
    assert results[0].search_rank == RANK_IDENTIFIER


def test_the_prefix_must_name_the_right_source(jon):
    ann = Profile.objects.get(display_name__startswith="Ann")

    assert jon not in profile_search(term="erp:C1")  # C1 is the CRM's id, not the ERP's
    assert list(profile_search(term="crm:C2")) == [ann]


def test_a_prefix_that_names_no_source_is_searched_as_text(jon):
    assert list(profile_search(term="shop:C1")) == []
    assert jon in profile_search(term="jonathan doe")  # two words are still a name


def test_a_prefixed_id_of_another_source_finds_the_profile_that_references_it(crm, erp, ingest):
    # given an ERP record that names the CRM customer it belongs to, the CRM record never sent
    ingest(erp, [{"external_id": "E9", "attributes": {"first_name": "Mia"}, "identifiers": {"crm": "C-9"}}])
    mia = Profile.objects.get(records__external_id="E9")

    assert list(profile_search(term="crm:C-9")) == [mia]


def test_the_admin_search_box_takes_a_prefixed_id(jon, client_as):
    page = search(client_as(roles.SUPPORT_AGENT), "crm C1")

    assert reverse("admin:profiles_profile_change", args=[jon.pk]) in page
    assert "Müller" not in page


def named(*names: str) -> list[Profile]:
    from ingestion.normalise import search_text

    return Profile.objects.bulk_create(
        Profile(display_name=name, search_name=search_text(name)) for name in names
    )


postgres_only = pytest.mark.skipif(
    not ON_POSTGRES, reason="typo tolerance uses the name word dictionary on PostgreSQL; SQLite matches parts"
)


@postgres_only
def test_a_misspelt_common_surname_finds_its_namesakes_before_a_rarer_near_spelling(db):
    # given many John Smiths and one John Smit: "smiht" is one edit from Smit, a swap from Smith
    named(*["John Smith"] * 5, "John Smit", "Mary Smith", "Johnny Smithers")

    results = list(profile_search(term="jonh smiht").order_by("-search_rank", "display_name"))

    assert [p.display_name for p in results[:5]] == ["John Smith"] * 5
    assert "John Smit" in [p.display_name for p in results]
    assert "Mary Smith" not in [p.display_name for p in results]  # every word must match, corrected or not


@postgres_only
def test_a_name_one_slip_away_ranks_before_one_only_alike(db):
    # "ellitot" shares more trigrams with Ellis, but is one swap from Elliott
    named("Eric Ellis", "Eric Ellis", "Eric Elliott")

    results = list(profile_search(term="eric ellitot").order_by("-search_rank", "display_name"))

    assert results[0].display_name == "Eric Elliott"


@postgres_only
def test_the_words_in_the_order_typed_rank_first(db):
    named("Anthony Preston", "Preston Anthony")

    results = list(profile_search(term="perston anthony").order_by("-search_rank", "display_name"))

    assert [p.display_name for p in results] == ["Preston Anthony", "Anthony Preston"]


@postgres_only
def test_words_in_any_order_accents_and_punctuation_are_forgiven(db):
    (anne,) = named("Anne-Marie Müller-Lüdenscheidt")

    for term in ("muller anne marie", "ANNE MARIE MUELLER", "Anne Marie Muler Ludenscheid"):
        assert list(profile_search(term=term)) == [anne], term


@postgres_only
def test_a_new_or_changed_name_is_found_misspelt_at_once(crm, ingest):
    # the dictionary of name words follows the golden records (a trigger), with no batch to wait for
    ingest(
        crm,
        [{"external_id": "C7", "attributes": {"first_name": "Zbigniew", "last_name": "Brzęczyszczykiewicz"}}],
    )
    person = Profile.objects.get(records__external_id="C7")
    assert list(profile_search(term="zbigniew brzeczyszczykiewic")) == [person]

    ingest(
        crm, [{"external_id": "C7", "attributes": {"first_name": "Zbigniew", "last_name": "Kowalczykowski"}}]
    )

    assert list(profile_search(term="zbignew kowalczykowsky")) == [person]


@postgres_only
def test_a_prefix_of_the_name_finds_it_as_typed(db):
    (john,) = named("John Smithfield")

    assert list(profile_search(term="john smithf")) == [john]
    assert profile_search(term="john smithf").get().search_rank == RANK_NAME_PREFIX


def test_a_name_is_found_on_every_database(db):
    (john,) = named("John Smith")
    named("Mary Jones")

    assert list(profile_search(term="john smith")) == [john]
    assert profile_search(term="john smith").get().search_rank == RANK_NAME_EXACT


def test_a_misspelt_name_is_found_first_on_every_database(db):
    # PostgreSQL corrects each word against its dictionary; the embedded SQLite compares in Python
    named("John Smith", "Jonathan Smith", "Mary Jones")

    results = [p.display_name for p in profile_search(term="jonathon smiht").order_by("-search_rank")]

    assert results[0] == "Jonathan Smith"
    assert "Mary Jones" not in results


def test_a_search_page_and_its_count_take_one_query(db, django_assert_num_queries):
    named(*[f"John Smith{'e' * n}" for n in range(7)])
    results = profile_search(term="john smith").order_by("-search_rank", "display_name", "-pk")
    ids = list(results.values_list("pk", flat=True))

    paginator = SearchPaginator(results, 3, page_number=2)
    with django_assert_num_queries(1):
        assert paginator.count == 7
        page = paginator.page(2)
        assert [p.pk for p in page.object_list] == ids[3:6]
    assert page.has_next() and page.has_previous()


def test_a_page_past_the_end_still_counts(db):
    named("John Smith", "John Smithe")
    paginator = SearchPaginator(profile_search(term="john smith").order_by("-pk"), 3, page_number=9)

    assert paginator.count == 2
    assert len(paginator.page(1).object_list) == 2


def test_the_admin_search_runs_the_name_search_once(jon, client_as):
    client = client_as(roles.SUPPORT_AGENT)
    search(client, "jonathan doe")  # warm caches (identifier types, permissions)

    with CaptureQueriesContext(connection) as queries:
        page = search(client, "jonathan doe")

    assert reverse("admin:profiles_profile_change", args=[jon.pk]) in page
    assert "1 result" in page
    searches = [
        q["sql"]
        for q in queries.captured_queries
        # (the embedded database's scan of all names for misspellings is another query, once)
        if "search_name" in q["sql"] and '"search_name" AS "search_name"' not in q["sql"]
    ]
    assert len(searches) == 1, "\n\n".join(searches)
