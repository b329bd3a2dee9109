"""The OpenAPI schema's additions: the API-key authentication (loaded by CdpConfig.ready) and the error
answers every operation may give (``error_responses``, a postprocessing hook)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "cdp.auth.ApiKeyAuthentication"
    name = ["apiKey", "writeKey"]

    def get_security_definition(self, auto_schema):
        return [
            {
                "type": "http",
                "scheme": "bearer",
                "description": "A source key (sk_...) or a staff personal token (pt_...).",
            },
            {
                "type": "http",
                "scheme": "basic",
                "description": "A source key as the user name with an empty password, as Segment SDKs send it.",
            },
        ]


ERROR_SCHEMA = {
    "type": "object",
    "description": "Every 4xx answer: what went wrong and, for bad input, each field with its reason.",
    "properties": {
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
                "required": ["field", "reason"],
            },
        },
    },
    "required": ["detail"],
}
ERRORS = {
    "400": "Bad input: the fields and the reasons.",
    "401": "No credentials, or not valid ones.",
    "403": "Valid credentials without the right to do this.",
    "404": "Nothing of that id here, or an invalid cursor.",
}
BODY_ERRORS = {"413": "The request body is over the limit.", "415": "Not a JSON body."}


def error_responses(result, generator, request, public):
    """Document on every operation the error answers any of them may give (validation, authentication,
    permission, not found; and, with a request body, too large and wrong media type), as ``Error``, unless
    the operation describes its own."""
    result.setdefault("components", {}).setdefault("schemas", {}).setdefault("Error", ERROR_SCHEMA)
    reference = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            errors = {**ERRORS, **(BODY_ERRORS if "requestBody" in operation else {})}
            for code, description in errors.items():
                operation["responses"].setdefault(code, {"description": description, "content": reference})
    return result
