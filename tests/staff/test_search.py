"""The search box finds a person by a source's id written with its source, as staff copy it from other
systems ("crm:C1", "crm C1"), besides every other way the Customer 360 tests cover."""

import pytest
from django.urls import reverse

from cdp import roles
from profiles.models import Profile
from profiles.selectors import RANK_IDENTIFIER, profile_search


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
