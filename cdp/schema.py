"""OpenAPI description of the API-key authentication (loaded by CdpConfig.ready)."""

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
