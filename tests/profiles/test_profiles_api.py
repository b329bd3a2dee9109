"""The profiles API as staff and support tools see it: list and filter, detail with lineage, lookup."""

import uuid
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest

from ingestion.models import IdentifierType
from profiles.models import Profile

JON = {
    "external_id": "C1",
    "attributes": {
        "first_name": "Jon",
        "last_name": "Doe",
        "email": "Jon.Doe@Example.org",
        "phone": "(202) 555-0143",
    },
}
JOSE = {
    "external_id": "C2",
    "attributes": {"first_name": "José", "last_name": "Álvarez", "phone": "+44 20 7946 0958"},
}


@pytest.fixture
def people(crm, erp, send_records):
    """Jon (CRM), José (CRM) and Ann (ERP only)."""
    send_records(crm, [JON, JOSE])
    send_records(
        erp, [{"external_id": "E1", "attributes": {"first_name": "Ann", "email": "ann@example.org"}}]
    )


def names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return sorted(p["display_name"] for p in response.json()["results"])


def lookup(client, kind: str, value: str, **params):
    return client.get("/api/v1/profiles/lookup", {"type": kind, "value": value, **params})


def profile_id(client, kind: str, value: str) -> str:
    response = lookup(client, kind, value)
    assert response.status_code == 200, response.content
    return response.json()["id"]


# --- List and filters ----------------------------------------------------------------------------------


def test_the_list_shows_every_active_profile_with_its_golden_attributes(people, staff_client):
    response = staff_client.get("/api/v1/profiles")

    assert names(response) == ["Ann", "Jon Doe", "José Álvarez"]
    jon = next(p for p in response.json()["results"] if p["display_name"] == "Jon Doe")
    assert jon["attributes"]["email"] == "jon.doe@example.org"
    assert set(jon) >= {"id", "display_name", "attributes", "created_at", "updated_at"}


FILTER_CASES = [
    ({"email": "jon.doe@example.org"}, ["Jon Doe"]),
    ({"email": " JON.DOE@EXAMPLE.ORG "}, ["Jon Doe"]),
    ({"email": "nobody@example.org"}, []),
    ({"phone": "+12025550143"}, ["Jon Doe"]),
    ({"phone": "(202) 555-0143"}, ["Jon Doe"]),
    ({"phone": "202.555.0143"}, ["Jon Doe"]),
    ({"phone": "+1 202 555 0143"}, ["Jon Doe"]),
    ({"phone": "+44 20 7946 0958"}, ["José Álvarez"]),
    ({"phone": "020 7946 0958", "region": "GB"}, ["José Álvarez"]),
    ({"phone": "020 7946 0958", "region": "gb"}, ["José Álvarez"]),
    ({"name": "jon"}, ["Jon Doe"]),
    ({"name": "DOE"}, ["Jon Doe"]),
    ({"name": "jose"}, ["José Álvarez"]),
    ({"name": "ÁLVAR"}, ["José Álvarez"]),
    ({"name": "josé  álvarez"}, ["José Álvarez"]),
    ({"name": "o"}, ["Jon Doe", "José Álvarez"]),
    ({"name": "zed"}, []),
    ({"source": "crm"}, ["Jon Doe", "José Álvarez"]),
    ({"source": "erp"}, ["Ann"]),
    ({"source": "crm", "name": "jon"}, ["Jon Doe"]),
]


@pytest.mark.parametrize(
    ("params", "expected"), FILTER_CASES, ids=[urlencode(params) for params, _ in FILTER_CASES]
)
def test_profiles_can_be_filtered(people, staff_client, params, expected):
    assert names(staff_client.get("/api/v1/profiles", params)) == expected


def test_profiles_can_be_filtered_by_last_change(people, staff_client):
    Profile.objects.update(updated_at=datetime(2024, 1, 1, tzinfo=UTC))
    Profile.objects.filter(display_name="Ann").update(updated_at=datetime(2024, 6, 1, tzinfo=UTC))

    response = staff_client.get("/api/v1/profiles", {"updated_since": "2024-05-01T00:00:00Z"})

    assert names(response) == ["Ann"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"phone": "call me"}, "phone"),
        ({"phone": "555"}, "phone"),
        ({"updated_since": "last week"}, "updated_since"),
    ],
)
def test_an_invalid_filter_value_is_a_400_naming_the_filter(people, staff_client, params, field):
    response = staff_client.get("/api/v1/profiles", params)

    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_merged_and_emptied_profiles_are_not_listed(crm, erp, send_records, staff_client):
    send_records(crm, [{"external_id": "C1", "attributes": {"email": "jon@example.org"}}])
    send_records(erp, [{"external_id": "E1", "attributes": {"phone": "202-555-0143"}}])
    send_records(
        crm, [{"external_id": "C2", "attributes": {"email": "jon@example.org", "phone": "202-555-0143"}}]
    )

    response = staff_client.get("/api/v1/profiles")

    assert len(response.json()["results"]) == 1


def test_the_list_is_paged_with_a_cursor(crm, send_records, staff_client):
    send_records(crm, [{"external_id": f"C{n}", "attributes": {"first_name": f"P{n}"}} for n in range(5)])

    seen, pages = [], 0
    response = staff_client.get("/api/v1/profiles", {"page_size": 2})
    while True:
        body = response.json()
        seen += [p["display_name"] for p in body["results"]]
        pages += 1
        if not body["next"]:
            break
        response = staff_client.get(body["next"])

    assert pages == 3
    assert sorted(seen) == ["P0", "P1", "P2", "P3", "P4"]


def test_a_tampered_cursor_is_a_404(people, staff_client):
    response = staff_client.get("/api/v1/profiles", {"cursor": "not-a-cursor"})

    assert response.status_code == 404
    assert response.json()["detail"]


# --- Detail --------------------------------------------------------------------------------------------


def test_a_profile_shows_golden_values_with_their_lineage_and_every_candidate(
    crm, erp, send_records, staff_client
):
    send_records(
        crm, [{"external_id": "C1", "attributes": {"first_name": "Jon", "email": "jon@example.org"}}]
    )
    send_records(
        erp,
        [
            {
                "external_id": "E1",
                "updated_at": "2024-05-01T12:00:00Z",
                "attributes": {"first_name": "Jonathan", "email": "jon@example.org", "company": "Acme"},
            }
        ],
    )

    body = staff_client.get(f"/api/v1/profiles/{profile_id(staff_client, 'crm', 'C1')}").json()

    first_name = body["attributes"]["first_name"]
    assert (first_name["value"], first_name["source"], first_name["external_id"]) == ("Jon", "crm", "C1")
    assert first_name["record"] and first_name["observed_at"]
    assert {(c["value"], c["source"], c["external_id"]) for c in first_name["candidates"]} == {
        ("Jon", "crm", "C1"),
        ("Jonathan", "erp", "E1"),
    }
    company = body["attributes"]["company"]
    assert (company["value"], company["source"]) == ("Acme", "erp")
    assert company["observed_at"].startswith("2024-05-01T12:00:00")
    assert {(i["type"], i["value"]) for i in body["identities"]} == {
        ("crm", "C1"),
        ("erp", "E1"),
        ("email", "jon@example.org"),
    }
    assert {(r["source"], r["external_id"]) for r in body["records"]} == {("crm", "C1"), ("erp", "E1")}
    assert body["merges"] == []


def test_a_merged_away_profile_id_answers_with_the_survivor(crm, erp, send_records, staff_client):
    send_records(
        crm, [{"external_id": "C1", "attributes": {"first_name": "Jon", "email": "jon@example.org"}}]
    )
    send_records(erp, [{"external_id": "E1", "attributes": {"company": "Acme", "phone": "202-555-0143"}}])
    first, second = profile_id(staff_client, "crm", "C1"), profile_id(staff_client, "erp", "E1")
    assert first != second

    send_records(
        crm, [{"external_id": "C2", "attributes": {"email": "jon@example.org", "phone": "202-555-0143"}}]
    )

    survivor = staff_client.get(f"/api/v1/profiles/{first}").json()
    merged_away = staff_client.get(f"/api/v1/profiles/{second}")
    assert merged_away.status_code == 200
    assert merged_away.json()["id"] == survivor["id"] == first
    assert merged_away["Content-Location"].endswith(f"/api/v1/profiles/{first}")
    assert [m["merged"] for m in survivor["merges"]] == [second]
    assert survivor["merges"][0]["rule"].startswith("deterministic")
    assert survivor["attributes"]["company"]["value"] == "Acme"


@pytest.mark.parametrize(
    "profile_ref",
    [
        pytest.param(str(uuid.UUID(int=1)), id="unknown-uuid"),
        pytest.param(uuid.UUID(int=1).hex, id="unknown-uuid-hex"),
        pytest.param("-" * 32, id="dashes"),
        pytest.param("abcdef-abcdef-abcdef-abcdef-abcdef", id="uuid-lookalike"),
        pytest.param("a" * 36, id="too-many-hex-digits"),
        pytest.param("not-a-profile-id", id="not-hex"),
    ],
)
def test_an_unknown_or_malformed_profile_id_is_a_json_404(people, staff_client, profile_ref):
    response = staff_client.get(f"/api/v1/profiles/{profile_ref}")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"]


# --- Lookup --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "params"),
    [
        ("email", "jon.doe@example.org", {}),
        ("email", "  JON.DOE@example.ORG", {}),
        ("phone", "+12025550143", {}),
        ("phone", "(202) 555-0143", {}),
        ("phone", "202 555 0143", {}),
        ("phone", "+1-202-555-0143", {"region": "GB"}),
        ("crm", "C1", {}),
        ("crm", " C1 ", {}),
    ],
)
def test_lookup_finds_a_person_by_any_identifier_in_any_format(people, staff_client, kind, value, params):
    response = lookup(staff_client, kind, value, **params)

    assert response.status_code == 200
    assert response.json()["display_name"] == "Jon Doe"
    assert response.json()["attributes"]["first_name"]["source"] == "crm"


def test_lookup_reads_a_national_number_in_the_given_region(people, staff_client):
    response = lookup(staff_client, "phone", "020 7946 0958", region="GB")

    assert response.json()["display_name"] == "José Álvarez"


def test_lookup_works_for_a_declared_identifier_type(crm, send_records, staff_client):
    IdentifierType.objects.create(name="loyalty_id", normaliser=IdentifierType.Normaliser.CASEFOLD)
    send_records(crm, [{**JON, "identifiers": {"loyalty_id": "GOLD-42"}}])

    response = lookup(staff_client, "loyalty_id", "gold-42")

    assert response.json()["display_name"] == "Jon Doe"


def test_lookup_of_a_merged_persons_old_identifier_finds_the_survivor(crm, erp, send_records, staff_client):
    send_records(crm, [{"external_id": "C1", "attributes": {"email": "jon@example.org"}}])
    send_records(erp, [{"external_id": "E1", "attributes": {"phone": "202-555-0143"}}])
    first = profile_id(staff_client, "crm", "C1")

    send_records(
        crm, [{"external_id": "C2", "attributes": {"email": "jon@example.org", "phone": "202-555-0143"}}]
    )

    assert profile_id(staff_client, "erp", "E1") == first


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"type": "twitter", "value": "@jon"}, 400, "type"),
        ({"value": "jon.doe@example.org"}, 400, "type"),
        ({"type": "email"}, 400, "value"),
        ({"type": "email", "value": ""}, 400, "value"),
        ({"type": "email", "value": "not-an-email"}, 400, "value"),
        ({"type": "phone", "value": "555"}, 400, "value"),
        ({"type": "email", "value": "nobody@example.org"}, 404, "value"),
        ({"type": "crm", "value": "C404"}, 404, "value"),
    ],
)
def test_lookup_without_a_match_says_why(people, staff_client, params, status, field):
    response = staff_client.get("/api/v1/profiles/lookup", params)

    assert response.status_code == status
    body = response.json()
    assert body["detail"]
    assert [e["field"] for e in body["errors"]] == [field]
