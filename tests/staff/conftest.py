"""Fixtures of the staff-experience tests: people known to three sources, and staff in each role."""

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from cdp import roles

JON_CRM = {
    "external_id": "C1",
    "attributes": {
        "first_name": "Jonathan",
        "last_name": "Doe",
        "email": "jon.doe@example.org",
        "phone": "(202) 555-0143",
        "birth_date": "1984-03-12",
        "national_id": "123-45-6789",
        "city": "Boston",
    },
}
JON_ERP = {
    "external_id": "E1",
    "attributes": {
        "first_name": "Jon",
        "last_name": "Doe",
        "email": "jon.doe@example.org",
        "city": "Cambridge",
    },
}
JON_WEB = {
    "external_id": "W1",
    "attributes": {"email": "JON.DOE@example.org", "phone": "202.555.0143", "postcode": "02139"},
}
ANN_CRM = {
    "external_id": "C2",
    "attributes": {"first_name": "Ann", "last_name": "Müller", "phone": "617 555 0199"},
}


@pytest.fixture
def jon(crm, erp, web, ingest):
    """Jonathan Doe, known to the CRM, the ERP and the web shop (they disagree on his city and first name)."""
    from profiles.models import Profile

    ingest(crm, [JON_CRM, ANN_CRM])
    ingest(erp, [JON_ERP])
    ingest(web, [JON_WEB])
    return Profile.objects.get(records__source=crm, records__external_id="C1")


@pytest.fixture
def user_in_role(django_user_model):
    """A staff user holding one role (or none: ``role=None``)."""

    def make(role: str | None, username: str | None = None):
        user = django_user_model.objects.create_user(
            username or (role or "nobody").replace(" ", "_"), password="pass-word-1", is_staff=True
        )
        if role:
            user.groups.add(Group.objects.get(name=role))
        return user

    return make


@pytest.fixture
def client_as(user_in_role):
    """A logged-in client (session: works for both the admin and the API) of a user in the role."""

    def make(role: str | None) -> Client:
        client = Client()
        client.force_login(user_in_role(role))
        return client

    return make


ALL_ROLES = [
    roles.SUPPORT_AGENT,
    roles.DEPARTMENT_STAFF,
    roles.DATA_STEWARD,
    roles.PRIVACY_OFFICER,
    roles.ADMINISTRATOR,
]
