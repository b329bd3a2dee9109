"""Validation and normalisation of incoming records. Pure functions on plain data: no database here.

A record that fails is reported with the field and the reason, so the source system can fix it.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import phonenumbers
from django.utils.dateparse import parse_date, parse_datetime
from email_validator import EmailNotValidError, validate_email

EMAIL, PHONE, TEXT, CASEFOLD = "email", "phone", "text", "casefold"

# Canonical attributes with a known meaning; any other attribute a source sends is kept as a custom one.
CANONICAL_ATTRIBUTES = (
    "first_name",
    "middle_name",
    "last_name",
    "full_name",
    "birth_date",
    "gender",
    "email",
    "phone",
    "address_line1",
    "address_line2",
    "city",
    "postcode",
    "region",
    "country",
    "company",
    "job_title",
    # A national identifier (social security, tax or passport number) where a source has one: matching
    # compares it, up to one keying error (``profiles.matching.comparisons.identifier_level``).
    "national_id",
)
# "consents" are validated and recorded by the hooks of CDP_RECORD_CHECKS and the pipeline (consent.intake).
RECORD_FIELDS = frozenset({"external_id", "updated_at", "attributes", "identifiers", "consents"})
MAX_EXTERNAL_ID_LENGTH = 255
MAX_IDENTIFIER_LENGTH = 320
MAX_VALUES_PER_IDENTIFIER = 20
MAX_CLOCK_AHEAD = timedelta(days=1)
# Bump whenever a change of this module would normalise a stored record differently: records stored with an
# older version are normalised again when processed, not taken as intake left them (``record_load``).
NORMALISATION_VERSION = 2  # 2: national_id is canonical (a string)


class InvalidValue(ValueError):
    """A value that cannot be normalised; the message is the reason shown to the sender."""


@dataclass(frozen=True)
class RecordError:
    field: str
    reason: str


@dataclass(frozen=True)
class SourceRules:
    """What normalisation needs to know about the sending source and the declared identifier types."""

    slug: str
    default_region: str
    field_mapping: Mapping[str, str]
    identifier_normalisers: Mapping[str, str]  # identifier type -> normaliser

    @functools.cached_property
    def fingerprint(self) -> str:
        """Everything that decides how a record normalises under these rules, hashed (with the version of
        this module's rules): equal fingerprints, equal results."""
        blob = json.dumps(
            [
                NORMALISATION_VERSION,
                self.slug,
                self.default_region,
                sorted(self.field_mapping.items()),
                sorted(self.identifier_normalisers.items()),
            ],
            separators=(",", ":"),
        )
        return hashlib.blake2b(blob.encode(), digest_size=8).hexdigest()


@dataclass
class NormalisedRecord:
    external_id: str
    updated_at: datetime | None
    attributes: dict
    identifiers: list[tuple[str, str]]  # (type, normalised value), the source's own id first
    content_hash: str = field(default="")


# Intake validates every record and processing normalises it again; a person's email and phone come back
# in every source and every update. email-validator and phonenumbers are pure but cost tens of microseconds
# a value: each process keeps the most recent results (failures are not kept: they raise).
_CACHE_SIZE = 65_536


def normalise_email(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue("must be a non-empty string")
    return _email_normalised(value.strip())


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _email_normalised(value: str) -> str:
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidValue(f"not a valid email address: {exc}") from None
    return result.normalized.lower()


def normalise_phone(value: object, region: str) -> str:
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue("must be a non-empty string")
    return _phone_normalised(value, region)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _phone_normalised(value: str, region: str) -> str:
    try:
        number = phonenumbers.parse(value, region.upper() if region else None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidValue(f"not a phone number: {exc._msg}") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidValue("not a possible phone number (wrong length for its country)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_identifier(normaliser: str, value: object, region: str) -> str:
    if normaliser == EMAIL:
        return normalise_email(value)
    if normaliser == PHONE:
        return normalise_phone(value, region)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue("must be a non-empty string")
    value = " ".join(value.split())
    if len(value) > MAX_IDENTIFIER_LENGTH:
        raise InvalidValue(f"longer than {MAX_IDENTIFIER_LENGTH} characters")
    return value.casefold() if normaliser == CASEFOLD else value


def parse_timestamp(value: object) -> datetime:
    if not isinstance(value, str):
        raise InvalidValue("must be an ISO 8601 date-time string")
    try:
        parsed = parse_datetime(value.strip())
    except ValueError:
        parsed = None
    if parsed is None:
        raise InvalidValue("not an ISO 8601 date-time, e.g. 2024-05-01T12:00:00Z")
    try:
        parsed = parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except OverflowError:
        parsed = None
    if parsed is None or not 1900 <= parsed.year <= 9998:
        raise InvalidValue("out of range: a date-time between the years 1900 and 9998")
    return parsed


def _clean_attribute(name: str, value: object) -> object:
    if name == "birth_date":
        if not isinstance(value, str):
            raise InvalidValue("must be a date string YYYY-MM-DD")
        try:
            parsed = parse_date(value.strip()[:10])
        except ValueError:
            parsed = None
        if parsed is None or parsed > date.today() or parsed.year < 1900:
            raise InvalidValue("not a plausible date YYYY-MM-DD")
        return parsed.isoformat()
    if name in CANONICAL_ATTRIBUTES:
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise InvalidValue("must be a string")
        return " ".join(value.split())
    return value  # custom attributes are kept as sent


def _is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def content_hash(external_id: str, updated_at: datetime | None, attributes: dict, identifiers: list) -> str:
    blob = json.dumps(
        [external_id, updated_at.isoformat() if updated_at else None, attributes, identifiers],
        sort_keys=True,
        default=str,
        separators=(",", ":"),
    )
    return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


def normalise_record(raw: object, rules: SourceRules) -> NormalisedRecord | RecordError:
    """Validate one record of the records API and bring it into canonical form."""
    if not isinstance(raw, dict):
        return RecordError("", "a record must be a JSON object")
    unknown = sorted(set(raw) - RECORD_FIELDS)
    if unknown:
        return RecordError(unknown[0], f"unknown field; a record has only {', '.join(sorted(RECORD_FIELDS))}")

    external_id = raw.get("external_id")
    if isinstance(external_id, int) and not isinstance(external_id, bool):
        external_id = str(external_id)
    if not isinstance(external_id, str) or not external_id.strip():
        return RecordError("external_id", "required, a non-empty string")
    external_id = external_id.strip()
    if len(external_id) > MAX_EXTERNAL_ID_LENGTH:
        return RecordError("external_id", f"longer than {MAX_EXTERNAL_ID_LENGTH} characters")

    updated_at = None
    if raw.get("updated_at") is not None:
        try:
            updated_at = parse_timestamp(raw["updated_at"])
        except InvalidValue as exc:
            return RecordError("updated_at", str(exc))
        # A change time far ahead would freeze the record: every real later change would look older.
        if updated_at > datetime.now(UTC) + MAX_CLOCK_AHEAD:
            return RecordError("updated_at", "in the future; check the source system's clock")

    raw_attributes = raw.get("attributes")
    raw_attributes = {} if raw_attributes is None else raw_attributes
    if not isinstance(raw_attributes, dict):
        return RecordError("attributes", "must be a JSON object")
    attributes: dict = {}
    for raw_name, value in raw_attributes.items():
        name = rules.field_mapping.get(raw_name, raw_name)
        if _is_blank(value):
            continue
        try:
            attributes[name] = _clean_attribute(name, value)
        except InvalidValue as exc:
            return RecordError(f"attributes.{raw_name}", str(exc))

    # The source's own id is an identifier like any other, normalised as another source's reference to it is.
    identifiers: list[tuple[str, str]] = [(rules.slug, normalise_identifier(TEXT, external_id, ""))]
    seen = set(identifiers)

    def add(kind: str, value: object, field_name: str) -> str | RecordError:
        """Normalise one identifier and add it; return the normalised value or the error."""
        normaliser = rules.identifier_normalisers.get(kind)
        if normaliser is None:
            return RecordError(
                field_name, f"unknown identifier type {kind!r}; declare it in the identifier rules"
            )
        try:
            value = normalise_identifier(normaliser, value, rules.default_region)
        except InvalidValue as exc:
            return RecordError(field_name, str(exc))
        if (kind, value) not in seen:
            seen.add((kind, value))
            identifiers.append((kind, value))
        return value

    # Email and phone attributes are identifiers too; the attribute keeps the normalised form.
    for kind in (EMAIL, PHONE):
        if kind in attributes:
            result = add(kind, attributes[kind], f"attributes.{kind}")
            if isinstance(result, RecordError):
                return result
            attributes[kind] = result

    raw_identifiers = raw.get("identifiers")
    raw_identifiers = {} if raw_identifiers is None else raw_identifiers
    if not isinstance(raw_identifiers, dict):
        return RecordError("identifiers", 'must be a JSON object such as {"email": ["a@b.com"]}')
    for kind, values in raw_identifiers.items():
        values = values if isinstance(values, list) else [values]
        if len(values) > MAX_VALUES_PER_IDENTIFIER:
            return RecordError(f"identifiers.{kind}", f"more than {MAX_VALUES_PER_IDENTIFIER} values")
        for position, value in enumerate(values):
            if _is_blank(value):
                continue
            field_name = f"identifiers.{kind}[{position}]" if len(values) > 1 else f"identifiers.{kind}"
            result = add(kind, value, field_name)
            if isinstance(result, RecordError):
                return result

    return NormalisedRecord(
        external_id=external_id,
        updated_at=updated_at,
        attributes=attributes,
        identifiers=identifiers,
        content_hash=content_hash(external_id, updated_at, attributes, identifiers),
    )


def record_dump(record: NormalisedRecord, rules: SourceRules) -> dict:
    """A normalised record as a JSON document, stamped with the fingerprint of the rules that made it.

    Intake stores it beside the payload, so processing (another process, whose caches of emails and phones
    are cold) does not normalise the record a second time; ``record_load`` reads it back."""
    return {
        "rules": rules.fingerprint,
        "external_id": record.external_id,
        "updated_at": record.updated_at.isoformat() if record.updated_at else None,
        "attributes": record.attributes,
        "identifiers": record.identifiers,
        "content_hash": record.content_hash,
    }


def record_load(document: object, rules: SourceRules) -> NormalisedRecord | None:
    """The record ``record_dump`` stored, or None when the rules changed since (a field mapping, a region,
    an identifier type, this module's version): the payload must then be normalised again."""
    if not isinstance(document, dict) or document.get("rules") != rules.fingerprint:
        return None
    updated_at = document["updated_at"]
    return NormalisedRecord(
        external_id=document["external_id"],
        updated_at=datetime.fromisoformat(updated_at) if updated_at else None,
        attributes=document["attributes"],
        identifiers=[(kind, value) for kind, value in document["identifiers"]],
        content_hash=document["content_hash"],
    )


def search_text(*parts: object) -> str:
    """Folded text for search: accents removed, case-insensitive, single spaces."""
    from unidecode import unidecode

    return " ".join(unidecode(" ".join(str(p) for p in parts if p)).casefold().split())
