"""PII masking per role and attribute: the same rules in the API and on the admin's profile page."""

import pytest
from django.urls import reverse

from cdp import roles
from profiles.masking import DEFAULT_PII_MASKING, EMAIL, HIDDEN, LAST4, YEAR, mask_value, masking_rules


@pytest.mark.parametrize(
    ("value", "mode", "masked"),
    [
        ("1984-03-12", YEAR, "1984-**-**"),
        ("+12025550143", LAST4, "•••0143"),
        ("jon.doe@example.org", EMAIL, "j•••@example.org"),
        ("12 High Street", HIDDEN, "•••"),
        ("", LAST4, ""),
        (None, EMAIL, None),
        ("123", LAST4, "•••"),
        ("not-an-email", EMAIL, "•••"),
    ],
)
def test_a_value_is_masked_by_its_mode(value, mode, masked):
    assert mask_value(value, mode) == masked


@pytest.mark.parametrize(
    ("groups", "superuser", "masked"),
    [
        ([roles.SUPPORT_AGENT], False, {"birth_date", "phone", "email", "address_line1", "national_id"}),
        ([roles.DEPARTMENT_STAFF], False, {"birth_date", "phone", "address_line1", "national_id"}),
        (
            [roles.SUPPORT_AGENT, roles.DEPARTMENT_STAFF],
            False,
            {"birth_date", "phone", "address_line1", "national_id"},
        ),
        ([roles.SUPPORT_AGENT, roles.DATA_STEWARD], False, set()),
        ([roles.PRIVACY_OFFICER], False, set()),
        ([], False, {"birth_date", "phone", "email", "address_line1", "national_id"}),  # no role: fail closed
        (
            ["a group nobody configured"],
            False,
            {"birth_date", "phone", "email", "address_line1", "national_id"},
        ),
        ([roles.SUPPORT_AGENT], True, set()),
    ],
)
def test_a_user_sees_in_clear_what_any_of_their_roles_shows_in_clear(groups, superuser, masked):
    rules = masking_rules(roles=groups, is_superuser=superuser, config=DEFAULT_PII_MASKING)

    assert set(rules) == masked


def test_support_agents_get_masked_pii_everywhere_in_the_api(jon, client_as):
    client = client_as(roles.SUPPORT_AGENT)

    detail = client.get(f"/api/v1/profiles/{jon.pk}").json()
    listed = next(p for p in client.get("/api/v1/profiles").json()["results"] if p["id"] == str(jon.pk))
    looked_up = client.get("/api/v1/profiles/lookup", {"type": "phone", "value": "+1 202 555 0143"}).json()

    for body in (detail, looked_up):
        assert body["attributes"]["birth_date"]["value"] == "1984-**-**"
        assert body["attributes"]["phone"]["value"] == "•••0143"
        assert body["attributes"]["email"]["value"] == "j•••@example.org"
        assert {c["value"] for c in body["attributes"]["email"]["candidates"]} == {"j•••@example.org"}
        assert body["attributes"]["national_id"]["value"] == "•••6789"
        assert body["attributes"]["first_name"]["value"] == "Jonathan"  # not configured: in clear
        assert {i["value"] for i in body["identities"] if i["type"] in ("email", "phone")} == {
            "j•••@example.org",
            "•••0143",
        }
        for record in body["records"]:
            assert "jon.doe@example.org" not in str(record).lower()
            assert "5550143" not in str(record) and "123-45" not in str(record)
    assert listed["attributes"]["birth_date"] == "1984-**-**"
    assert listed["attributes"]["phone"] == "•••0143"


def test_data_stewards_see_pii_in_clear(jon, client_as):
    detail = client_as(roles.DATA_STEWARD).get(f"/api/v1/profiles/{jon.pk}").json()

    assert detail["attributes"]["birth_date"]["value"] == "1984-03-12"
    assert detail["attributes"]["email"]["value"] == "jon.doe@example.org"


def test_the_masking_is_configurable_per_role_and_attribute(jon, client_as, settings):
    settings.CDP_PII_MASKING = {**DEFAULT_PII_MASKING, roles.DATA_STEWARD: {"city": HIDDEN}}

    detail = client_as(roles.DATA_STEWARD).get(f"/api/v1/profiles/{jon.pk}").json()

    assert detail["attributes"]["city"]["value"] == "•••"
    assert detail["attributes"]["birth_date"]["value"] == "1984-03-12"


def test_the_admin_profile_page_masks_the_same_way(jon, client_as):
    page = reverse("admin:profiles_profile_change", args=[jon.pk])

    support = client_as(roles.SUPPORT_AGENT).get(page).content.decode()
    steward = client_as(roles.DATA_STEWARD).get(page).content.decode()

    assert "1984-**-**" in support and "1984-03-12" not in support
    assert "j•••@example.org" in support and "jon.doe@example.org" not in support
    assert "5550143" not in support and "•••0143" in support
    assert "123-45-6789" not in support and "•••6789" in support
    assert "Your role sees these attributes masked" in support
    assert "1984-03-12" in steward and "jon.doe@example.org" in steward and "123-45-6789" in steward


def test_the_timeline_masks_pii_in_event_properties(jon, client_as, web):
    from django.utils import timezone

    from profiles.models import Event

    Event.objects.create(
        profile=jon,
        source=web,
        message_id="m-1",
        type="identify",
        timestamp=timezone.now(),
        received_at=timezone.now(),
        properties={"email": "jon.doe@example.org", "plan": "gold"},
    )

    body = client_as(roles.SUPPORT_AGENT).get(f"/api/v1/profiles/{jon.pk}/timeline").json()

    identify = next(entry for entry in body["results"] if entry["kind"] == "identify")
    assert identify["properties"] == {"email": "j•••@example.org", "plan": "gold"}
