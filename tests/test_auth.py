"""Who may call what: source keys (also as Segment write keys), staff personal tokens, staff sessions."""

import base64
import io
import json
import uuid

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from cdp.models import StaffToken
from ingestion.models import Batch, SourceKey
from ingestion.services import source_key_create

RECORDS = json.dumps({"records": [{"external_id": "C1", "attributes": {"first_name": "Jon"}}]})


def bearer(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def basic(username: str, password: str = "") -> APIClient:
    client = APIClient()
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    client.credentials(HTTP_AUTHORIZATION=f"Basic {token}")
    return client


def post_records(client: APIClient, slug: str = "crm"):
    return client.post(f"/api/v1/sources/{slug}/records", data=RECORDS, content_type="application/json")


def staff_token(username: str) -> str:
    out = io.StringIO()
    call_command("token_create", username, stdout=out)
    return out.getvalue().strip().splitlines()[-1]


def scoped_key(source, *scopes: str) -> str:
    return source_key_create(source=source, scopes=scopes)[1]


ENDPOINTS = [
    ("post", "/api/v1/sources/crm/records"),
    ("delete", "/api/v1/sources/crm/records/C1"),
    ("get", f"/api/v1/batches/{uuid.UUID(int=1)}"),
    ("get", "/api/v1/profiles"),
    ("get", "/api/v1/profiles/"),
    ("get", f"/api/v1/profiles/{uuid.UUID(int=1)}"),
    ("get", "/api/v1/profiles/lookup?type=email&value=jon@example.org"),
    ("get", "/api/schema/"),
    ("get", "/api/docs/"),
]


# --- Without valid credentials -------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_every_endpoint_requires_credentials(crm, method, url):
    client = APIClient()
    if method == "post":
        response = client.post(url, data=RECORDS, content_type="application/json")
    else:
        response = getattr(client, method)(url)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param("Bearer ", id="empty-bearer"),
        pytest.param("Bearer not-a-key", id="garbage"),
        pytest.param("Bearer sk_00000000_doesnotexist", id="unknown-key"),
        pytest.param("Bearer pt_00000000_doesnotexist", id="unknown-token"),
        pytest.param("Basic %%%", id="malformed-basic"),
        pytest.param("Basic " + base64.b64encode(b"sk_000\x000000_x:").decode(), id="nul-in-basic-user"),
        pytest.param("Basic " + base64.b64encode(b"staff:staff-pass-1").decode(), id="password-is-no-key"),
    ],
)
def test_invalid_credentials_are_a_401(crm, staff_user, authorization):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=authorization)

    response = post_records(client)

    assert response.status_code == 401
    assert response.json()["detail"]
    assert not Batch.objects.exists()


def test_a_key_that_differs_from_the_issued_one_is_a_401(crm):
    tampered = crm.api_key[:-1] + ("A" if crm.api_key[-1] != "A" else "B")

    assert post_records(bearer(tampered)).status_code == 401


def test_a_revoked_source_key_is_a_401(crm):
    assert post_records(bearer(crm.api_key)).status_code == 202

    SourceKey.objects.filter(source=crm).update(revoked_at=timezone.now())

    assert post_records(bearer(crm.api_key)).status_code == 401


# --- Source keys ---------------------------------------------------------------------------------------


def test_a_source_key_writes_its_own_source(crm):
    response = post_records(bearer(crm.api_key))

    assert response.status_code == 202
    assert Batch.objects.get().source == crm


def test_a_source_key_is_accepted_as_a_basic_auth_user_name_with_an_empty_password(crm):
    response = post_records(basic(crm.api_key))

    assert response.status_code == 202


def test_a_source_key_cannot_write_another_source(crm, make_source):
    erp = make_source("erp", "erp")

    responses = [
        post_records(bearer(crm.api_key), "erp"),
        bearer(crm.api_key).delete("/api/v1/sources/erp/records/E1"),
    ]

    assert [r.status_code for r in responses] == [403, 403]
    assert "erp" in responses[0].json()["detail"]
    assert not Batch.objects.filter(source=erp).exists()


def test_a_key_without_the_records_write_scope_cannot_write_records(crm):
    reader = bearer(scoped_key(crm, SourceKey.Scope.PROFILES_READ))

    responses = [post_records(reader), reader.delete("/api/v1/sources/crm/records/C1")]

    assert [r.status_code for r in responses] == [403, 403]
    assert not Batch.objects.exists()


def test_a_source_key_cannot_read_profiles_without_the_profiles_read_scope(crm):
    writer = bearer(crm.api_key)

    assert writer.get("/api/v1/profiles").status_code == 403
    assert writer.get("/api/v1/profiles/lookup", {"type": "crm", "value": "C1"}).status_code == 403


def test_a_source_key_with_the_profiles_read_scope_reads_profiles(crm, send_records):
    send_records(crm, [{"external_id": "C1", "attributes": {"first_name": "Jon"}}])
    reader = bearer(scoped_key(crm, SourceKey.Scope.PROFILES_READ))

    listing = reader.get("/api/v1/profiles")
    found = reader.get("/api/v1/profiles/lookup", {"type": "crm", "value": "C1"})

    assert listing.status_code == 200
    assert [p["display_name"] for p in listing.json()["results"]] == ["Jon"]
    assert found.status_code == 200
    assert reader.get(f"/api/v1/profiles/{found.json()['id']}").status_code == 200


# --- Staff ---------------------------------------------------------------------------------------------


def test_a_staff_token_authenticates_as_its_user(crm, staff_user):
    client = bearer(staff_token("staff"))

    assert client.get("/api/v1/profiles").status_code == 200
    assert post_records(client).status_code == 202  # staff may write any source, e.g. to repair data


def test_a_revoked_staff_token_is_a_401(staff_user):
    token = staff_token("staff")

    StaffToken.objects.filter(user=staff_user).update(revoked_at=timezone.now())

    assert bearer(token).get("/api/v1/profiles").status_code == 401


def test_the_token_of_a_deactivated_user_is_a_401(staff_user):
    token = staff_token("staff")

    staff_user.is_active = False
    staff_user.save()

    assert bearer(token).get("/api/v1/profiles").status_code == 401


def test_the_token_of_a_user_who_is_not_staff_is_a_403(django_user_model):
    django_user_model.objects.create_user("clerk", password="clerk-pass-1")

    response = bearer(staff_token("clerk")).get("/api/v1/profiles")

    assert response.status_code == 403
    assert response.json()["detail"]


def test_a_logged_in_staff_member_uses_the_api_with_a_session(crm, staff_client):
    assert staff_client.get("/api/v1/profiles").status_code == 200
    assert post_records(staff_client).status_code == 202


def test_a_logged_in_user_who_is_not_staff_gets_a_403(django_user_model):
    client = APIClient()
    client.force_login(django_user_model.objects.create_user("clerk", password="clerk-pass-1"))

    assert client.get("/api/v1/profiles").status_code == 403


# --- API documentation ---------------------------------------------------------------------------------


def test_staff_get_an_openapi_document_of_the_api(staff_client):
    response = staff_client.get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    assert {
        "/api/v1/sources/{slug}/records",
        "/api/v1/sources/{slug}/records/{external_id}",
        "/api/v1/batches/{batch_id}",
        "/api/v1/profiles",
        "/api/v1/profiles/{id}",
        "/api/v1/profiles/lookup",
    } <= {path.rstrip("/") for path in schema["paths"]}


def test_staff_get_the_interactive_api_docs(staff_client):
    response = staff_client.get("/api/docs/")

    assert response.status_code == 200
    assert b"swagger-ui" in response.content
