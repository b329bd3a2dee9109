"""Roles: groups created by migration, enforced by the API and the admin."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from cdp import roles
from cdp.roles import roles_sync

from .conftest import ALL_ROLES


def perms(role: str) -> set[str]:
    return {
        f"{app}.{codename}"
        for app, codename in Group.objects.get(name=role).permissions.values_list(
            "content_type__app_label", "codename"
        )
    }


def test_every_role_exists_as_a_group_with_its_permissions(db):
    support, steward, privacy = (
        perms(roles.SUPPORT_AGENT),
        perms(roles.DATA_STEWARD),
        perms(roles.PRIVACY_OFFICER),
    )

    # Nothing that shows PII in clear: no raw payloads, no consent ledger rows.
    assert support == {"profiles.view_profile"}
    assert perms(roles.DEPARTMENT_STAFF) == {"profiles.view_profile", "profiles.view_mergeevent"}
    assert {"profiles.change_resolutionconflict", "ingestion.change_identifiertype"} <= steward
    assert "consent.add_consententry" not in steward
    assert {"consent.add_consententry", "consent.view_consententry", "profiles.view_profile"} <= privacy
    assert len(perms(roles.ADMINISTRATOR)) == Permission.objects.count()


def test_syncing_the_roles_again_changes_nothing_and_keeps_what_staff_added(db):
    extra = Permission.objects.get(codename="view_source")
    Group.objects.get(name=roles.SUPPORT_AGENT).permissions.add(extra)
    before = {role: perms(role) for role in ALL_ROLES}

    report = roles_sync(group_model=Group, permission_model=Permission)

    assert report.created_groups == []
    assert {role: perms(role) for role in ALL_ROLES} == before


@pytest.mark.parametrize("role", ALL_ROLES)
def test_every_role_may_read_profiles_through_the_api(jon, client_as, role):
    client = client_as(role)

    assert client.get("/api/v1/profiles").status_code == 200
    assert client.get(f"/api/v1/profiles/{jon.pk}").status_code == 200
    assert (
        client.get("/api/v1/profiles/lookup", {"type": "phone", "value": "202 555 0143"}).status_code == 200
    )


def test_staff_without_a_role_may_not_read_profiles(jon, client_as):
    client = client_as(None)

    response = client.get(f"/api/v1/profiles/{jon.pk}")

    assert response.status_code == 403
    assert client.get("/api/v1/profiles").status_code == 403
    assert client.get(f"/api/v1/profiles/{jon.pk}/timeline").status_code == 403


def test_a_source_key_reads_profiles_only_with_the_read_scope(jon, crm, source_client):
    from ingestion.services import source_key_create

    _, reader_key = source_key_create(source=crm, scopes=["records:write", "profiles:read"])
    _, writer_key = source_key_create(source=crm, scopes=["records:write"])
    reader, writer = source_client(crm), source_client(crm)
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {reader_key}")
    writer.credentials(HTTP_AUTHORIZATION=f"Bearer {writer_key}")

    assert reader.get(f"/api/v1/profiles/{jon.pk}").status_code == 200
    assert writer.get(f"/api/v1/profiles/{jon.pk}").status_code == 403


def test_the_admin_shows_each_role_only_its_pages(jon, client_as):
    support, steward = client_as(roles.SUPPORT_AGENT), client_as(roles.DATA_STEWARD)
    record = jon.records.first()
    record_page = reverse("admin:profiles_sourcerecord_change", args=[record.pk])
    profile_page = reverse("admin:profiles_profile_change", args=[jon.pk])

    assert support.get(profile_page).status_code == 200
    assert support.get(record_page).status_code == 403  # the raw payload is not for support
    assert support.get(reverse("admin:ingestion_source_changelist")).status_code == 403
    assert support.get(reverse("admin:consent_consententry_changelist")).status_code == 403
    assert steward.get(record_page).status_code == 200
    assert client_as(None).get(profile_page).status_code == 403
