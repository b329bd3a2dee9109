"""Validation and normalisation of incoming records: pure functions, no database."""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from ingestion.normalise import (
    InvalidValue,
    NormalisedRecord,
    RecordError,
    SourceRules,
    normalise_email,
    normalise_identifier,
    normalise_phone,
    normalise_record,
    parse_timestamp,
    record_dump,
    record_load,
    search_text,
)

RULES = SourceRules(
    slug="crm",
    default_region="US",
    field_mapping={"FirstName": "first_name"},
    identifier_normalisers={
        "crm": "text",
        "erp": "text",
        "email": "email",
        "phone": "phone",
        "loyalty_id": "casefold",
    },
)


def normalised(raw: dict, rules: SourceRules = RULES) -> NormalisedRecord:
    result = normalise_record(raw, rules)
    assert isinstance(result, NormalisedRecord), result
    return result


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Jon@Example.org", "jon@example.org"),
        ("  jon@example.org  ", "jon@example.org"),
        ("JON.DOE+shop@EXAMPLE.ORG", "jon.doe+shop@example.org"),
    ],
)
def test_emails_written_differently_normalise_to_one_value(raw, expected):
    assert normalise_email(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "jon", "jon@", "@example.org", "jon@@example.org", 42, None])
def test_things_that_are_not_email_addresses_are_refused(raw):
    with pytest.raises(InvalidValue):
        normalise_email(raw)


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("(202) 555-0143", "US", "+12025550143"),
        ("202.555.0143", "US", "+12025550143"),
        ("+1 202 555 0143", "GB", "+12025550143"),  # a country code wins over the region
        ("020 7946 0958", "GB", "+442079460958"),
        ("+44 (0)20 7946 0958", "US", "+442079460958"),
        (2025550143, "US", "+12025550143"),
    ],
)
def test_phones_in_any_format_normalise_to_e164(raw, region, expected):
    assert normalise_phone(raw, region) == expected


@pytest.mark.parametrize("raw", ["", "call me", "12", "+1 202 555 0143 0143 0143", "1" * 300, 2.5, None])
def test_impossible_phone_numbers_are_refused(raw):
    with pytest.raises(InvalidValue):
        normalise_phone(raw, "US")


@pytest.mark.parametrize(
    ("normaliser", "raw", "expected"),
    [
        ("text", "  C-1001 ", "C-1001"),
        ("text", "AB  12", "AB 12"),
        ("text", 1001, "1001"),
        ("casefold", " Gold-42 ", "gold-42"),
        ("email", "Jon@Example.org", "jon@example.org"),
        ("phone", "(202) 555-0143", "+12025550143"),
    ],
)
def test_identifiers_normalise_by_their_type(normaliser, raw, expected):
    assert normalise_identifier(normaliser, raw, "US") == expected


@pytest.mark.parametrize("raw", ["", "  ", True, None, 1.5, ["C1"], {"id": "C1"}, "x" * 321])
def test_text_identifiers_must_be_short_non_empty_strings(raw):
    with pytest.raises(InvalidValue):
        normalise_identifier("text", raw, "US")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T14:00:00+02:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01 12:00:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),  # no zone: read as UTC
    ],
)
def test_timestamps_are_read_as_iso_8601(raw, expected):
    assert parse_timestamp(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "yesterday",
        "2024-02-30T00:00:00Z",
        "2024-05-01T25:00:00Z",
        "",
        1714564800,
        None,
        "9999-12-31T23:59:59-14:00",  # after year 9999 in UTC: no database can store it
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
    ],
)
def test_timestamps_that_are_not_storable_iso_date_times_are_refused(raw):
    with pytest.raises(InvalidValue):
        parse_timestamp(raw)


def test_a_record_is_normalised_into_canonical_form():
    record = normalised(
        {
            "external_id": " C1 ",
            "updated_at": "2024-05-01T12:00:00+00:00",
            "attributes": {
                "FirstName": " Jon ",
                "last_name": "Doe",
                "email": "Jon@Example.org",
                "phone": "(202) 555-0143",
                "birth_date": "1990-01-31",
                "postcode": 12345,
                "national_id": 4137877,
                "favourite_colour": {"primary": "blue"},
                "nickname": "",
            },
            "identifiers": {"loyalty_id": "GOLD-42", "erp": ["E1", "E2"]},
        }
    )

    assert record.external_id == "C1"
    assert record.updated_at == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert record.attributes == {
        "first_name": "Jon",  # mapped from the source's own field name
        "last_name": "Doe",
        "email": "jon@example.org",
        "phone": "+12025550143",
        "birth_date": "1990-01-31",
        "postcode": "12345",
        "national_id": "4137877",
        "favourite_colour": {"primary": "blue"},  # custom attributes are kept as sent
    }
    assert record.identifiers == [
        ("crm", "C1"),
        ("email", "jon@example.org"),
        ("phone", "+12025550143"),
        ("loyalty_id", "gold-42"),
        ("erp", "E1"),
        ("erp", "E2"),
    ]


def test_the_same_identifier_given_twice_counts_once():
    record = normalised(
        {
            "external_id": "C1",
            "attributes": {"email": "jon@example.org"},
            "identifiers": {"email": ["JON@example.org", "other@example.org"]},
        }
    )

    assert record.identifiers == [("crm", "C1"), ("email", "jon@example.org"), ("email", "other@example.org")]


def test_the_same_record_written_differently_has_the_same_content_hash():
    one = normalised({"external_id": "C1", "attributes": {"email": "Jon@Example.org", "first_name": "Jon"}})
    two = normalised({"external_id": "C1", "attributes": {"first_name": " Jon", "email": "jon@example.org "}})
    changed = normalised(
        {"external_id": "C1", "attributes": {"first_name": "John", "email": "jon@example.org"}}
    )

    assert one.content_hash == two.content_hash
    assert one.content_hash != changed.content_hash


def test_a_numeric_external_id_is_read_as_text():
    assert normalised({"external_id": 1001}).external_id == "1001"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("C1", ""),
        (None, ""),
        (["C1"], ""),
        ({}, "external_id"),
        ({"external_id": ""}, "external_id"),
        ({"external_id": "   "}, "external_id"),
        ({"external_id": None}, "external_id"),
        ({"external_id": True}, "external_id"),
        ({"external_id": 1.5}, "external_id"),
        ({"external_id": {"id": 1}}, "external_id"),
        ({"external_id": "x" * 256}, "external_id"),
        ({"external_id": "C1", "name": "Jon"}, "name"),
        ({"external_id": "C1", "updated_at": "last tuesday"}, "updated_at"),
        ({"external_id": "C1", "updated_at": 1714564800}, "updated_at"),
        ({"external_id": "C1", "attributes": ["Jon"]}, "attributes"),
        ({"external_id": "C1", "attributes": "Jon"}, "attributes"),
        ({"external_id": "C1", "attributes": {"first_name": {"given": "Jon"}}}, "attributes.first_name"),
        ({"external_id": "C1", "attributes": {"FirstName": ["Jon"]}}, "attributes.FirstName"),
        ({"external_id": "C1", "attributes": {"email": "jon@"}}, "attributes.email"),
        ({"external_id": "C1", "attributes": {"phone": "12"}}, "attributes.phone"),
        ({"external_id": "C1", "attributes": {"birth_date": "soon"}}, "attributes.birth_date"),
        ({"external_id": "C1", "attributes": {"birth_date": "1990-02-30"}}, "attributes.birth_date"),
        ({"external_id": "C1", "attributes": {"birth_date": "1850-01-01"}}, "attributes.birth_date"),
        ({"external_id": "C1", "attributes": {"birth_date": "2999-01-01"}}, "attributes.birth_date"),
        ({"external_id": "C1", "attributes": {"birth_date": 19900131}}, "attributes.birth_date"),
        ({"external_id": "C1", "identifiers": ["jon@example.org"]}, "identifiers"),
        ({"external_id": "C1", "identifiers": {"twitter": "@jon"}}, "identifiers.twitter"),
        ({"external_id": "C1", "identifiers": {"email": "jon"}}, "identifiers.email"),
        ({"external_id": "C1", "identifiers": {"email": ["a@example.org", "b"]}}, "identifiers.email[1]"),
        ({"external_id": "C1", "identifiers": {"phone": {"home": "202-555-0143"}}}, "identifiers.phone"),
        (
            {"external_id": "C1", "identifiers": {"email": [f"{n}@x.org" for n in range(21)]}},
            "identifiers.email",
        ),
    ],
)
def test_an_invalid_record_is_refused_naming_the_field(raw, field):
    error = normalise_record(raw, RULES)

    assert isinstance(error, RecordError)
    assert error.field == field
    assert error.reason


def test_a_date_time_birth_date_keeps_the_date():
    record = normalised({"external_id": "C1", "attributes": {"birth_date": "1990-01-31T00:00:00Z"}})

    assert record.attributes["birth_date"] == "1990-01-31"


def test_phones_are_read_in_the_region_of_the_source():
    rules = SourceRules("shop", "GB", {}, {"shop": "text", "phone": "phone"})

    record = normalised({"external_id": "S1", "attributes": {"phone": "020 7946 0958"}}, rules)

    assert record.attributes["phone"] == "+442079460958"


def test_an_offset_timestamp_is_kept_as_the_same_instant():
    record = normalised({"external_id": "C1", "updated_at": "2024-05-01T08:00:00-04:00"})

    assert record.updated_at == datetime(2024, 5, 1, 8, tzinfo=timezone(timedelta(hours=-4)))
    assert record.updated_at == datetime(2024, 5, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("parts", "expected"),
    [(("José", "Álvarez"), "jose alvarez"), ((" ZOË  ", None, "o'Brien"), "zoe o'brien"), ((), "")],
)
def test_search_text_ignores_accents_case_and_spacing(parts, expected):
    assert search_text(*parts) == expected


# --- The normalised record intake stores -----------------------------------------------------------------


def test_a_stored_normalised_record_reads_back_as_it_was():
    record = normalised(
        {
            "external_id": "C1",
            "updated_at": "2024-05-01T14:00:00+02:00",
            "attributes": {"FirstName": "Jon", "phone": "(202) 555-0143", "tags": ["vip"], "size": 4.5},
            "identifiers": {"loyalty_id": "GOLD-42"},
        }
    )

    stored = json.loads(json.dumps(record_dump(record, RULES)))  # as a JSON column gives it back

    assert record_load(stored, RULES) == record


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param({"default_region": "GB"}, id="region"),
        pytest.param({"field_mapping": {"FirstName": "given_name"}}, id="field-mapping"),
        pytest.param({"identifier_normalisers": {**RULES.identifier_normalisers, "vat": "text"}}, id="types"),
    ],
)
def test_a_stored_normalised_record_is_not_used_once_the_rules_changed(changed):
    stored = record_dump(normalised({"external_id": "C1", "attributes": {"FirstName": "Jon"}}), RULES)

    assert record_load(stored, replace(RULES, **changed)) is None


def test_nothing_stored_is_nothing_to_load():
    assert record_load(None, RULES) is None
