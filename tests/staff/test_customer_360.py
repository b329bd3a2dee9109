"""The Customer 360 page: one search box, and one page with everything about a person, in bounded queries."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from cdp import roles
from profiles.models import Event, Profile, SourceRecord
from profiles.selectors import RANK_IDENTIFIER, profile_search
from tests.conftest import ON_POSTGRES


def search(client, term: str) -> str:
    return client.get(reverse("admin:profiles_profile_changelist"), {"q": term}).content.decode()


@pytest.mark.parametrize(
    "term", ["202.555.0143", "+1 (202) 555-0143", "JON.DOE@EXAMPLE.ORG", "W1", "jonathan"]
)
def test_the_search_box_finds_a_person_by_any_identifier_in_any_format_or_name(jon, client_as, term):
    page = search(client_as(roles.SUPPORT_AGENT), term)

    assert reverse("admin:profiles_profile_change", args=[jon.pk]) in page
    assert "Müller" not in page


def test_identifier_hits_rank_before_name_hits(jon, make_source, ingest):
    shop = make_source("shop", "web")
    ingest(shop, [{"external_id": "jon", "attributes": {"first_name": "Jon", "last_name": "Jonsson"}}])

    results = list(profile_search(term="jon").order_by("-search_rank"))

    assert results[0].display_name == "Jon Jonsson"  # its external id is "jon"
    assert results[0].search_rank == RANK_IDENTIFIER
    assert jon in results[1:]


@pytest.mark.skipif(
    not ON_POSTGRES, reason="typo tolerance uses pg_trgm (PostgreSQL); SQLite matches parts only"
)
def test_a_misspelt_name_still_finds_the_person_on_postgresql(jon, client_as):
    ann = Profile.objects.get(display_name__startswith="Ann")

    page = search(client_as(roles.SUPPORT_AGENT), "ann muler")

    assert reverse("admin:profiles_profile_change", args=[ann.pk]) in page


def test_the_profile_page_shows_the_sources_side_by_side_with_conflicts_highlighted(jon, client_as):
    page = client_as(roles.DATA_STEWARD).get(reverse("admin:profiles_profile_change", args=[jon.pk]))
    html = page.content.decode()

    assert "3 records from 3 sources: crm, erp, web" in html
    # City follows the most recent change: the CRM's Boston loses to the ERP's Cambridge, received later.
    assert 'class="conflict">Boston</td>' in html
    assert 'class="conflict">Jon</td>' in html
    assert "attribute-city conflict" in html  # and the attribute is flagged in the golden table
    assert "Merge history" in html and "Journey timeline" in html


def test_the_profile_page_shows_the_consent_state(jon, client_as):
    from consent.services import consent_record

    consent_record(
        consents=[
            {
                "profile": str(jon.pk),
                "purpose": "marketing",
                "channel": "email",
                "decision": "withdrawn",
                "capture_method": "agent",
            }
        ],
        source=None,
        recorded_by="test",
    )
    url = reverse("admin:profiles_profile_change", args=[jon.pk])

    support = client_as(roles.SUPPORT_AGENT).get(url).content.decode()

    assert "Consent state (1 ledger entries behind it)" in support
    assert '<tr class="consent-denied"><td>marketing</td><td>email</td><td>not allowed</td>' in support


def _large_profile(sources, records: int, events: int) -> Profile:
    now = timezone.now()
    profile = Profile.objects.create(display_name="Big Customer", search_name="big customer")
    rows = SourceRecord.objects.bulk_create(
        SourceRecord(
            source=sources[n % len(sources)],
            external_id=f"{profile.pk.hex[:8]}-R{n}",
            profile=profile,
            attributes={"first_name": "Big", "city": f"City {n}", "email": "big@example.org"},
            identifiers=[["email", "big@example.org"]],
            version_at=now - timedelta(minutes=n),
        )
        for n in range(records)
    )
    profile.golden = {"first_name": "Big", "city": "City 0", "email": "big@example.org"}
    profile.lineage = {
        name: {"source": sources[0].slug, "record": rows[0].pk, "external_id": "R0"}
        for name in profile.golden
    }
    profile.save()
    Event.objects.bulk_create(
        (
            Event(
                profile=profile,
                source=sources[n % len(sources)],
                message_id=f"{profile.pk}-{n}",
                type="track",
                name="Viewed",
                timestamp=now - timedelta(seconds=n),
                received_at=now,
                properties={"n": n},
            )
            for n in range(events)
        ),
        batch_size=2000,
    )
    return profile


def test_the_profile_page_needs_a_bounded_number_of_queries_however_large_the_profile(
    crm, erp, web, client_as, django_assert_max_num_queries
):
    client = client_as(roles.SUPPORT_AGENT)
    small = _large_profile([crm], records=1, events=1)
    large = _large_profile([crm, erp, web], records=50, events=10_000)
    client.get(reverse("admin:profiles_profile_change", args=[small.pk]))  # warm the session

    with django_assert_max_num_queries(25) as small_queries:
        client.get(reverse("admin:profiles_profile_change", args=[small.pk]))
    with django_assert_max_num_queries(len(small_queries)) as large_queries:
        response = client.get(reverse("admin:profiles_profile_change", args=[large.pk]))

    html = response.content.decode()
    assert response.status_code == 200
    assert "50 records from 3 sources" in html and "City 49" in html
    assert "latest 50 entries" in html
    assert len(large_queries) == len(small_queries)
