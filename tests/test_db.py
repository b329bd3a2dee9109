"""The bulk write helpers of cdp/db.py write what ``save()`` would, on SQLite and PostgreSQL."""

import uuid
from datetime import UTC, datetime

import pytest
from django.db import connection

from cdp.db import array_text, instance, rows_insert, rows_update, values_insert, values_update
from ingestion.models import Batch, InboundRecord
from profiles.models import MatchKey, Profile, SourceRecord

pytestmark = pytest.mark.django_db

WHEN = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)


def test_values_update_writes_json_text_choices_and_microseconds():
    # given
    one, two = Profile.objects.create(), Profile.objects.create()

    # when
    values_update(
        model=Profile,
        fields=["golden", "display_name", "status", "updated_at"],
        rows=[
            (
                one.pk,
                {"first_name": "Zoë", "quote": 'it\'s "x" \\ y', "n": [1, 2.5, None]},
                "Zoë",
                "empty",
                WHEN,
            ),
            (two.pk, {}, "", Profile.Status.MERGED, WHEN),
        ],
    )

    # then
    one.refresh_from_db()
    two.refresh_from_db()
    assert one.golden == {"first_name": "Zoë", "quote": 'it\'s "x" \\ y', "n": [1, 2.5, None]}
    assert (one.display_name, one.status, one.updated_at) == ("Zoë", "empty", WHEN)
    assert (two.golden, two.status) == ({}, "merged")


def test_values_update_a_key_given_twice_takes_its_last_values():
    profile = Profile.objects.create()

    values_update(model=Profile, fields=["display_name"], rows=[(profile.pk, "first"), (profile.pk, "last")])

    profile.refresh_from_db()
    assert profile.display_name == "last"


def test_rows_update_and_rows_insert_keep_sql_null_and_aware_times(crm):
    # given: a record stored with no payload and no processing time
    row = InboundRecord(batch=Batch.objects.create(source=crm), source=crm, index=0, received_at=WHEN)
    rows_insert([row])
    assert row.pk is not None
    assert InboundRecord.objects.filter(pk=row.pk, payload__isnull=True, processed_at__isnull=True).exists()

    # when
    row.payload, row.processed_at, row.attempts = {"external_id": "c-1"}, WHEN, 7
    rows_update([row], ["payload", "processed_at", "attempts"])
    row.payload = None
    rows_update([row], ["payload"])

    # then
    stored = InboundRecord.objects.get(pk=row.pk)
    assert stored.payload is None
    assert (stored.processed_at, stored.received_at, stored.attempts) == (WHEN, WHEN, 7)


def test_times_written_through_copy_read_back_as_the_same_instants(crm):
    from datetime import timedelta, timezone

    india = datetime(2024, 2, 19, 6, 33, 7, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    records = [
        SourceRecord(source=crm, external_id="c-1", version_at=WHEN, source_updated_at=india),
        SourceRecord(source=crm, external_id="c-2", version_at=india, source_updated_at=None),  # met before
        SourceRecord(source=crm, external_id="c-3", version_at=WHEN.replace(microsecond=0)),
    ]
    rows_insert(records)

    read = SourceRecord.objects.order_by("external_id").values_list("version_at", "source_updated_at")
    assert list(read) == [(WHEN, india), (india, None), (WHEN.replace(microsecond=0), None)]


AWKWARD_DOCUMENTS = [
    {"big": 2**70, "tab\there": "new\nline", "back\\slash": "\\N"},  # beyond orjson's integers; COPY escapes
    {"nested": [{"a": None}, [], {}], "unicode": "Zoë 東京 🙂"},
    "a plain string",
    [1, 2.5, True, None],
]


@pytest.mark.parametrize("document", AWKWARD_DOCUMENTS)
def test_json_columns_read_back_as_written_through_copy_and_update(crm, document):
    record = SourceRecord(source=crm, external_id="c-1", version_at=WHEN, attributes=document)
    rows_insert([record])
    assert SourceRecord.objects.get(pk=record.pk).attributes == document

    values_update(model=SourceRecord, fields=["identifiers"], rows=[(record.pk, document)])
    assert SourceRecord.objects.get(pk=record.pk).identifiers == document


def test_json_keys_read_on_their_own_keep_their_types(crm):
    document = {"email": "jon@example.org", "size": 44, "big": 2**70, "tags": ["vip"], "none": None}
    rows_insert([SourceRecord(source=crm, external_id="c-1", version_at=WHEN, attributes=document)])

    read = SourceRecord.objects.values_list(*(f"attributes__{key}" for key in document)).get()

    assert read == tuple(document.values())


def test_values_insert_writes_rows_without_instances(crm):
    record = SourceRecord(source=crm, external_id="c-1", version_at=WHEN)
    rows_insert([record])

    values_insert(
        model=MatchKey, fields=["record", "key"], rows=[(record.pk, "postcode:sw1a"), (record.pk, "x")]
    )

    assert sorted(MatchKey.objects.filter(record=record).values_list("key", flat=True)) == [
        "postcode:sw1a",
        "x",
    ]


def test_in_lists_mean_the_same_as_one_array_parameter_on_postgresql(crm):
    from django.test.utils import CaptureQueriesContext

    # given three profiles and a record on one of them
    one, two, three = (Profile.objects.create(display_name=name) for name in ("one", "two", "three"))
    record = SourceRecord.objects.create(source=crm, external_id="c-1", version_at=WHEN, profile=two)

    # then: values, None among them, exclusion, foreign keys and an empty list answer as IN does
    with CaptureQueriesContext(connection) as queries:
        found = set(
            Profile.objects.filter(pk__in=[one.pk, two.pk, None]).values_list("display_name", flat=True)
        )
        excluded = set(Profile.objects.exclude(pk__in=[one.pk]).values_list("display_name", flat=True))
        by_profile = list(SourceRecord.objects.filter(profile__in=[two, three]).values_list("pk", flat=True))
        by_name = Profile.objects.filter(display_name__in=["two", "three", "four"]).count()
    assert found == {"one", "two"}
    assert excluded == {"two", "three"}
    assert by_profile == [record.pk]
    assert by_name == 2
    assert list(Profile.objects.filter(pk__in=[])) == []
    array = [query["sql"] for query in queries if "= ANY(" in query["sql"]]
    assert len(array) == (4 if connection.vendor == "postgresql" else 0)


def test_instance_is_the_keyword_constructor_for_every_field(crm):
    values = {
        "id": None,
        "source_id": crm.pk,
        "external_id": "c-1",
        "profile_id": None,
        "attributes": {"first_name": "Ana"},
        "identifiers": [["email", "ana@example.com"]],
        "content_hash": "h",
        "source_updated_at": WHEN,
        "version_at": WHEN,
        "deleted_at": None,
        "inbound_seq": 7,
        "created_at": WHEN,
        "updated_at": WHEN,
    }

    built = instance(SourceRecord, dict(values))

    expected = SourceRecord(**values)
    assert [getattr(built, name) for name in values] == [getattr(expected, name) for name in values]
    assert built._state.adding and built.source == crm
    with pytest.raises(KeyError):
        instance(SourceRecord, {"id": None})
    with pytest.raises(TypeError, match="no field colour"):
        instance(SourceRecord, {**values, "colour": "red"})


@pytest.mark.parametrize(
    "values",
    [
        [1, -2, 2**62],
        [uuid.UUID(int=1), uuid.UUID(int=2**127)],
        ["plain", 'a "quoted" one', "back\\slash", "comma, brace } { and 'single'", "NULL", "", "Zoë ☃"],
    ],
    ids=["int", "uuid", "text"],
)
@pytest.mark.postgres  # PostgreSQL's array literal
def test_array_text_reads_back_as_the_values_on_postgresql(values):
    cast = {int: "bigint[]", uuid.UUID: "uuid[]", str: "text[]"}[type(values[0])]

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT %s::{cast}", [array_text(values)])
        (read,) = cursor.fetchone()

    assert read == values


def test_array_text_is_none_for_values_it_does_not_write():
    assert array_text([1, "1"]) is None
    assert array_text([True, False]) is None
    assert array_text([datetime(2026, 1, 1, tzinfo=UTC)]) is None
    assert array_text([]) == "{}"


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-02-19 01:03:07.123456+05:30", datetime(2024, 2, 18, 19, 33, 7, 123456, tzinfo=UTC)),
        ("1999-12-31 23:59:59.5-08", datetime(2000, 1, 1, 7, 59, 59, 500000, tzinfo=UTC)),
        ("2026-06-30 12:00:00+00", datetime(2026, 6, 30, 12, 0, tzinfo=UTC)),
    ],
)
def test_timestamps_are_parsed_in_c_and_read_as_django_reads_them(text, expected):
    from psycopg.pq import Format

    from cdp.timestamps import TIMESTAMPTZ, TimestamptzLoader

    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::timestamptz, NULL::timestamptz", [text])
        (read, null) = cursor.fetchone()
        loader = cursor.cursor.adapters.get_loader(TIMESTAMPTZ, Format.TEXT)

    assert issubclass(loader, TimestamptzLoader) and loader.timezone is connection.timezone
    assert (read, null) == (expected, None)
    assert read.tzinfo is connection.timezone  # Django's UTC, as its own loader gives it


@pytest.mark.postgres
def test_timestamps_read_through_the_orm_and_a_server_side_cursor_keep_their_microseconds(crm):
    at = datetime(2024, 2, 19, 1, 3, 7, 123456, tzinfo=UTC)
    Profile.objects.create(created_at=at, updated_at=at)

    assert Profile.objects.values_list("created_at", flat=True).get() == at
    assert [p.updated_at for p in Profile.objects.iterator(chunk_size=10)] == [at]
