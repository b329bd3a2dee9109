"""The API's contract as a schema-driven client (schemathesis, generated SDKs) meets it: every error is JSON
and documented, and query parameters are checked against the bounds the schema states."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(staff_client):
    return staff_client.get("/api/schema/", {"format": "json"}).json()


def test_every_operation_documents_its_error_answers_as_json(schema):
    operations = [
        (path, method, operation)
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    ]

    assert operations
    for path, method, operation in operations:
        for code in ("400", "401", "403", "404"):
            content = operation["responses"].get(code, {}).get("content", {})
            assert "application/json" in content, f"{method.upper()} {path} does not document {code}"
        if "requestBody" in operation:
            assert {"413", "415"} <= operation["responses"].keys(), f"{method.upper()} {path}"


@pytest.mark.parametrize(
    "path",
    ["/api/v1/batches/not-a-uuid", "/api/v1/sources/%12/records/C-1", "/api/v1/nothing", "/v1/nothing"],
)
@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_a_path_no_api_route_names_is_a_json_404_for_any_method(path, method):
    # a browser session's cookies must not turn it into a CSRF failure page either
    client = Client(enforce_csrf_checks=True)
    client.cookies["sessionid"] = "stale"

    response = getattr(client, method)(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


def test_a_path_outside_the_api_still_gets_its_trailing_slash(staff_client):
    assert staff_client.get("/api/schema").status_code == 301


@pytest.mark.parametrize("page_size", ["0", "-5", "501", "null", "false", "1.5"])
def test_a_page_size_out_of_bounds_is_a_400_naming_it(staff_client, page_size):
    response = staff_client.get("/api/v1/profiles", {"page_size": page_size})

    assert response.status_code == 400
    assert response.json()["errors"] == [{"field": "page_size", "reason": "an integer from 1 to 500"}]


def test_a_page_size_within_bounds_pages(staff_client, ingest, crm):
    ingest(crm, [{"external_id": f"C-{n}", "attributes": {"email": f"p{n}@example.com"}} for n in range(3)])

    first = staff_client.get("/api/v1/profiles", {"page_size": "2"}).json()

    assert len(first["results"]) == 2 and first["next"]


def test_the_schema_states_the_page_size_bounds(schema):
    page_size = {
        parameter["name"]: parameter["schema"]
        for parameter in schema["paths"]["/api/v1/profiles/"]["get"]["parameters"]
    }["page_size"]

    assert (page_size["minimum"], page_size["maximum"]) == (1, 500)
