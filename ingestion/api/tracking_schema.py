"""The OpenAPI description of the tracking API's bodies (Segment Spec messages), one per endpoint: what
``ingestion.tracking.message_normalise`` accepts, so the interactive docs show the fields and a schema-driven
client sends messages the API takes. A postprocessing hook (``tracking_bodies``): one view serves every
message type, and each path gets the schema of its type."""

from ingestion.tracking import MAX_ID_LENGTH, MESSAGE_TYPES

from .tracking import MAX_MESSAGES_PER_BATCH

_ID = {
    "anyOf": [
        {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH, "pattern": r"\S"},
        {"type": "number"},
    ]
}
_TIME = {
    "type": "string",
    "format": "date-time",
    "description": "ISO 8601, with or without a time zone (UTC if none), years 1900 to 9998.",
}
_OBJECT = {"type": "object", "additionalProperties": True}
_COMMON = {
    "userId": {**_ID, "description": "Your id of the person: the source's external id of the record."},
    "anonymousId": {**_ID, "description": "A device or visitor id, linked to the person once identified."},
    "messageId": {**_ID, "description": "Deduplicates retries (per source)."},
    "timestamp": _TIME,
    "originalTimestamp": _TIME,
    "sentAt": _TIME,
    "context": {**_OBJECT, "description": "context.consent.categoryPreferences is recorded as consent."},
    "integrations": _OBJECT,
}
_BY_TYPE: dict[str, tuple[dict, list[str]]] = {
    "identify": ({"traits": {**_OBJECT, "description": "email, phone, firstName, lastName, address..."}}, []),
    "track": (
        {
            "event": {"type": "string", "minLength": 1, "pattern": r"\S"},
            "properties": _OBJECT,
        },
        ["event"],
    ),
    "page": ({"name": {"type": "string"}, "properties": _OBJECT}, []),
    "screen": ({"name": {"type": "string"}, "properties": _OBJECT}, []),
    "group": ({"groupId": _ID, "traits": _OBJECT}, ["groupId"]),
    "alias": ({"previousId": _ID}, ["previousId", "userId"]),
}
_WHO = [{"required": ["userId"]}, {"required": ["anonymousId"]}]


def message_schema(kind: str, *, in_batch: bool) -> dict:
    properties, required = _BY_TYPE[kind]
    schema = {
        "type": "object",
        "properties": {"type": {"type": "string", "enum": [kind]}, **_COMMON, **properties},
        "anyOf": _WHO,
    }
    required = ["type", *required] if in_batch else required
    if required:  # OpenAPI 3.0: "required" is never an empty list
        schema["required"] = required
    return schema


def batch_schema() -> dict:
    return {
        "type": "object",
        "properties": {
            "batch": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_MESSAGES_PER_BATCH,
                "items": {"oneOf": [message_schema(kind, in_batch=True) for kind in MESSAGE_TYPES]},
                "description": "Valid messages are accepted even when others are not: see `rejected`.",
            },
            "sentAt": _TIME,
            "context": _OBJECT,
            "writeKey": {"type": "string"},
        },
        "required": ["batch"],
    }


def tracking_bodies(result, generator, request, public):
    """Replace the free-form bodies of ``/v1/batch`` and ``/v1/<type>`` with their messages' schemas."""
    for path, operations in result.get("paths", {}).items():
        name = path.removeprefix("/v1/")
        if path == name or "post" not in operations:
            continue
        if name == "batch":
            schema = batch_schema()
        elif name in MESSAGE_TYPES:
            schema = message_schema(name, in_batch=False)
        else:
            continue
        operations["post"]["requestBody"] = {
            "content": {"application/json": {"schema": schema}},
            "required": True,
        }
    return result
