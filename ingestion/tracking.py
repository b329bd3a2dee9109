"""Messages of the Segment Spec (identify, track, page, screen, group, alias): validation and normalisation.

Pure functions on plain data, no database. A message becomes two things:

- the event itself (``NormalisedEvent``): type, name, properties, context, and its time corrected for the
  sender's clock skew the way Segment does it (``timestamp + (receivedAt - sentAt)``), the original kept;
- the identity it carries, as a record of the sending source (``NormalisedRecord``): a message with a
  ``userId`` is the source's record ``userId`` (identify traits are its attributes, its ``anonymousId`` an
  identifier); a message with only an ``anonymousId`` is the anonymous record ``anonymous:<id>``, whose only
  identifier is that anonymous id. Resolution then treats both exactly like records of the records API.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import datetime

from .normalise import (
    CANONICAL_ATTRIBUTES,
    InvalidValue,
    NormalisedRecord,
    RecordError,
    SourceRules,
    content_hash,
    normalise_identifier,
    normalise_record,
    parse_timestamp,
)

MESSAGE_TYPES = ("identify", "track", "page", "screen", "group", "alias")
MAX_MESSAGE_BYTES = 32 * 1024  # Segment's documented limits
MAX_BATCH_BYTES = 500 * 1024
MAX_ID_LENGTH = 255
ANONYMOUS_ID_TYPE = "anonymous_id"
ANONYMOUS_PREFIX = "anonymous:"

# Segment's reserved traits -> canonical attributes (both camelCase and snake_case spellings are in use).
TRAIT_ATTRIBUTES = {
    "firstName": "first_name",
    "first_name": "first_name",
    "lastName": "last_name",
    "last_name": "last_name",
    "name": "full_name",
    "email": "email",
    "phone": "phone",
    "birthday": "birth_date",
    "gender": "gender",
    "title": "job_title",
}
ADDRESS_ATTRIBUTES = {
    "street": "address_line1",
    "city": "city",
    "postalCode": "postcode",
    "postal_code": "postcode",
    "state": "region",
    "country": "country",
}
IGNORED_TRAITS = frozenset({"id", "address", "company", "createdAt", "created_at", "avatar", "age"})


@dataclass
class NormalisedEvent:
    message_id: str
    type: str
    name: str  # track: the event; page / screen: the name; otherwise empty
    user_id: str
    anonymous_id: str
    timestamp: datetime  # corrected for clock skew
    original_timestamp: datetime | None
    sent_at: datetime | None
    received_at: datetime
    properties: dict  # track/page/screen properties; identify and group traits; alias previousId
    context: dict

    def as_json(self) -> dict:
        return {
            **vars(self),
            "timestamp": self.timestamp.isoformat(),
            "original_timestamp": self.original_timestamp.isoformat() if self.original_timestamp else None,
            "sent_at": self.sent_at.isoformat() if self.sent_at else None,
            "received_at": self.received_at.isoformat(),
        }


@dataclass
class TrackedMessage:
    event: NormalisedEvent
    record: NormalisedRecord  # the identity the message carries, as a record of the source


def message_size(message: object) -> int:
    return len(json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode())


def _id(message: dict, name: str) -> str:
    value = message.get(name)
    if value is None or value == "":
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue("must be a non-empty string")
    if len(value.strip()) > MAX_ID_LENGTH:
        raise InvalidValue(f"longer than {MAX_ID_LENGTH} characters")
    return value.strip()


def _skew_corrected(original: datetime, sent_at: datetime, received_at: datetime) -> datetime:
    """The event time corrected by the sender's clock skew (sentAt against the time received), or as sent
    when the correction would leave the range of valid times (a clock off by centuries)."""
    try:
        corrected = original + (received_at - sent_at)
    except OverflowError:
        return original
    return corrected if 1900 <= corrected.year <= 9998 else original


def _time(message: dict, name: str) -> datetime | None:
    value = message.get(name)
    return None if value is None else parse_timestamp(value)


def _object(message: dict, name: str) -> dict:
    value = message.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidValue("must be a JSON object")
    return value


def traits_attributes(traits: dict) -> dict:
    """Segment traits as canonical attributes; traits without a canonical meaning are kept as custom ones."""
    attributes: dict = {}
    for name, value in traits.items():
        if name in TRAIT_ATTRIBUTES:
            attributes[TRAIT_ATTRIBUTES[name]] = value
        elif name == "address" and isinstance(value, dict):
            for part, attribute in ADDRESS_ATTRIBUTES.items():
                if value.get(part) is not None:
                    attributes[attribute] = value[part]
        elif name == "company":
            company = value.get("name") if isinstance(value, dict) else value
            if company is not None:
                attributes["company"] = company
        elif name not in IGNORED_TRAITS and name not in CANONICAL_ATTRIBUTES:
            attributes[name] = value
    if "birth_date" in attributes and isinstance(attributes["birth_date"], str):
        attributes["birth_date"] = attributes["birth_date"][:10]
    return attributes


def normalise_message(
    message: object,
    rules: SourceRules,
    *,
    received_at: datetime,
    message_type: str | None = None,
    sent_at: object = None,
) -> TrackedMessage | RecordError:
    """Validate one message of the tracking API and bring it into canonical form.

    ``message_type`` is given by the single-message endpoints (``/v1/track``...); in a batch each message
    names its own. ``sent_at`` is the batch's ``sentAt``, used when the message has none. Intake gives a
    message without a ``messageId`` one before storing it, so a replay finds the same id.
    """
    if not isinstance(message, dict):
        return RecordError("", "a message must be a JSON object")
    if message_size(message) > MAX_MESSAGE_BYTES:
        return RecordError("", f"message over {MAX_MESSAGE_BYTES // 1024} KB")
    kind = message.get("type", message_type)
    if message_type and kind != message_type:
        return RecordError("type", f"this endpoint takes {message_type} messages")
    if kind not in MESSAGE_TYPES:
        return RecordError("type", f"must be one of {', '.join(MESSAGE_TYPES)}")

    values: dict = {}
    for name, read in (
        ("userId", _id),
        ("anonymousId", _id),
        ("messageId", _id),
        ("groupId", _id),
        ("previousId", _id),
        ("timestamp", _time),
        ("originalTimestamp", _time),
        ("sentAt", _time),
        ("context", _object),
        ("traits", _object),
        ("properties", _object),
        ("integrations", _object),
    ):
        try:
            values[name] = read(message, name)
        except InvalidValue as exc:
            return RecordError(name, str(exc))
    if values["sentAt"] is None and sent_at is not None:
        try:
            values["sentAt"] = parse_timestamp(sent_at)
        except InvalidValue as exc:
            return RecordError("sentAt", str(exc))
    user_id, anonymous_id = values["userId"], values["anonymousId"]
    if not user_id and not anonymous_id:
        return RecordError("userId", "a message needs a userId or an anonymousId")

    name = ""
    if kind == "track":
        event_name = message.get("event")
        if not isinstance(event_name, str) or not event_name.strip():
            return RecordError("event", "required for track, a non-empty string")
        name = event_name.strip()
    elif kind in ("page", "screen"):
        page_name = message.get("name")
        if page_name is not None and not isinstance(page_name, str):
            return RecordError("name", "must be a string")
        name = (page_name or "").strip()
    elif kind == "group" and not values["groupId"]:
        return RecordError("groupId", "required for group")
    elif kind == "alias":
        if not values["previousId"]:
            return RecordError("previousId", "required for alias")
        if not user_id:
            return RecordError("userId", "required for alias")

    context = values["context"]
    # RudderStack's SDKs send identify traits inside context.traits, Segment's at the top level.
    traits = values["traits"] or (
        _object(context, "traits") if isinstance(context.get("traits"), dict) else {}
    )
    properties = {
        "identify": traits,
        "group": {"groupId": values["groupId"], "traits": traits},
        "alias": {"previousId": values["previousId"]},
    }.get(kind, values["properties"])

    # Skew: the sender's clock is off by sentAt - receivedAt; Segment corrects the event time by as much.
    original = values["timestamp"] or values["originalTimestamp"]
    timestamp = original or received_at
    if original is not None and values["sentAt"] is not None:
        timestamp = _skew_corrected(original, values["sentAt"], received_at)

    identifiers: dict = {}
    anonymous_ids = [anonymous_id] if anonymous_id else []
    if kind == "alias":
        anonymous_ids.append(values["previousId"])
    if anonymous_ids:
        identifiers[ANONYMOUS_ID_TYPE] = anonymous_ids
    if user_id:
        raw_record = {
            "external_id": user_id,
            "attributes": traits_attributes(traits) if kind == "identify" else {},
            "identifiers": identifiers,
        }
    else:
        raw_record = {"external_id": ANONYMOUS_PREFIX + anonymous_id, "identifiers": identifiers}
    record = normalise_record(raw_record, rules)
    if isinstance(record, RecordError):
        field = record.field.replace("attributes.", "traits.").replace(
            f"identifiers.{ANONYMOUS_ID_TYPE}", "anonymousId"
        )
        return RecordError(field, record.reason)
    if not user_id:
        # An anonymous visitor is no identifier of the source: only the anonymous id links it to a person.
        record.identifiers = [key for key in record.identifiers if key[0] != rules.slug]
        record.content_hash = content_hash(record.external_id, None, record.attributes, record.identifiers)

    event = NormalisedEvent(
        message_id=values["messageId"],
        type=kind,
        name=name,
        user_id=user_id,
        anonymous_id=anonymous_id,
        timestamp=timestamp,
        original_timestamp=original,
        sent_at=values["sentAt"],
        received_at=received_at,
        properties=properties,
        context=context,
    )
    return TrackedMessage(event=event, record=record)


def message_identifiers_salvage(message: object, rules: SourceRules) -> list[tuple[str, str]]:
    """Every identifier of an invalid message that normalises on its own (userId, anonymousId, previousId,
    the email and phone of its traits), for the checks that must hold even for invalid messages."""
    if not isinstance(message, dict):
        return []
    found: list[tuple[str, str]] = []

    def add(kind: str, normaliser: str | None, value: object) -> None:
        if normaliser is None or value is None:
            return
        with contextlib.suppress(InvalidValue):
            key = (kind, normalise_identifier(normaliser, value, rules.default_region))
            if key not in found:
                found.append(key)

    anonymous = rules.identifier_normalisers.get(ANONYMOUS_ID_TYPE, "text")
    add(rules.slug, "text", message.get("userId"))
    add(ANONYMOUS_ID_TYPE, anonymous, message.get("anonymousId"))
    add(ANONYMOUS_ID_TYPE, anonymous, message.get("previousId"))
    context = message.get("context")
    for traits in (message.get("traits"), context.get("traits") if isinstance(context, dict) else None):
        if isinstance(traits, dict):
            for name in ("email", "phone"):
                add(name, rules.identifier_normalisers.get(name), traits.get(name))
    return found
