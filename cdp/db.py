"""Database helpers shared by the apps."""

import datetime
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
from django.db import DEFAULT_DB_ALIAS, connection, connections, models


def array_text(values: Sequence[int | str | UUID]) -> str | None:
    """A PostgreSQL array literal of these integers, UUIDs or strings (``{1,2}``, ``{"a","b\\"c"}``), or None
    for any other values or a mix.

    A list parameter costs psycopg's client-side binding (Django's default) a Python call per element to quote
    it (about 1.5 ms for 1,000 UUIDs): resolution passes lists of ids, identifier values and lock keys in
    every query of every chunk. Written as one text parameter, it is quoted in C, 20 to 40 times faster. Cast
    it where the column's type is not what PostgreSQL infers (``%s::uuid[]``, ``%s::bigint[]``)."""
    if not values:
        return "{}"
    kind = type(values[0])
    if kind is int or kind is UUID:
        if any(type(value) is not kind for value in values):
            return None
        return "{" + ",".join(map(str, values)) + "}"
    if kind is str:
        if any(type(value) is not str for value in values):
            return None
        # Inside double quotes only a backslash and a double quote are special.
        return "{" + ",".join(['"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values]) + "}"
    return None


def instance(model: type[models.Model], values: dict[str, Any]) -> models.Model:
    """``model(**values)`` for a value of every concrete field (by attribute name: ``source_id``), built the
    way ``Model.from_db`` builds rows read back: positionally, which skips the keyword path's lookup of
    every field's default (three to four times faster; the resolver builds an instance per new record)."""
    names = _attnames.get(model)
    if names is None:
        names = _attnames[model] = [field.attname for field in model._meta.concrete_fields]
    instance = model(*[values.pop(name) for name in names])
    if values:
        raise TypeError(f"{model.__name__} has no field {', '.join(sorted(values))}")
    return instance


_attnames: dict[type[models.Model], list[str]] = {}


def rows_update(objs: Sequence[models.Model], fields: Sequence[str]) -> None:
    """Write ``fields`` of many rows (model instances; see ``values_update``)."""
    if not objs:
        return
    meta = type(objs[0])._meta
    attnames = [meta.get_field(name).attname for name in fields]
    values_update(
        model=type(objs[0]),
        fields=fields,
        rows=[(obj.pk, *(getattr(obj, attname) for attname in attnames)) for obj in objs],
    )


def values_update(*, model: type[models.Model], fields: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Write ``fields`` of many rows given as plain tuples ``(pk, value of each field, ...)``.

    On PostgreSQL one statement, ``UPDATE ... FROM jsonb_to_recordset(%s)``: the rows travel as one JSON
    document, serialised by the C encoder, where an UPDATE per row (executemany) cost a round of parsing and
    planning each and Django's ``bulk_update`` builds a CASE expression per object and field in Python.
    Elsewhere one parameterised UPDATE per row with executemany. Values are adapted by each field as
    ``save()`` would (JSON, UUIDs, datetimes); a primary key given twice takes its last values.
    """
    if not rows:
        return
    meta = model._meta
    columns = [meta.get_field(name) for name in fields]
    db = connections[DEFAULT_DB_ALIAS]  # the connection itself: ``connection`` is a proxy, slow in a loop
    quote = db.ops.quote_name
    if db.vendor == "postgresql" and not any(getattr(column, "encoder", None) for column in columns):
        _values_update_postgresql(meta, columns, rows, db)
        return
    sql = "UPDATE {} SET {} WHERE {} = %s".format(
        quote(meta.db_table),
        ", ".join(f"{quote(column.column)} = %s" for column in columns),
        quote(meta.pk.column),
    )
    params = [
        [column.get_db_prep_save(value, db) for column, value in zip(columns, row[1:], strict=True)]
        + [meta.pk.get_db_prep_value(row[0], db)]
        for row in rows
    ]
    with db.cursor() as cursor:
        cursor.executemany(sql, params)


_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS  # integer keys become strings, as json.dumps writes them


def json_text(value: Any) -> str:
    """``value`` as a JSON document for PostgreSQL, written by orjson (several times faster than json.dumps on
    the golden records and attributes the resolver writes). What orjson refuses (an integer beyond 64 bits, a
    lone surrogate) goes to json.dumps, which writes it or raises as before."""
    try:
        return orjson.dumps(value, default=_json_plain, option=_ORJSON_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, default=_json_plain)


def _json_plain(value: Any) -> Any:
    """What ``json.dumps`` cannot write itself, as PostgreSQL reads it back for the column's type."""
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, UUID | Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _values_update_postgresql(meta, columns: list, rows: Sequence[Sequence[Any]], db) -> None:
    quote = db.ops.quote_name
    pk = meta.pk
    prepared = [column.get_db_prep_save for column in columns]
    is_json = [isinstance(column, models.JSONField) for column in columns]
    documents = {}
    for row in rows:
        values = []
        for value, json_column, prep in zip(row[1:], is_json, prepared, strict=True):
            # A JSON column's value is the document itself (None: SQL NULL, as save() writes it).
            values.append(value if json_column else prep(value, db))
        documents[row[0]] = values
    names = [f"c{index}" for index in range(len(columns))]
    document = json_text(
        [
            {"pk": pk.get_db_prep_value(key, db), **dict(zip(names, values, strict=True))}
            for key, values in documents.items()
        ]
    )
    named = list(zip(names, columns, strict=True))
    record_type = ", ".join(
        [f"pk {pk.db_type(db)}", *(f"{name} {column.db_type(db)}" for name, column in named)]
    )
    sql = "UPDATE {table} AS t SET {sets} FROM jsonb_to_recordset(%s::jsonb) AS v({record_type}) WHERE {where}".format(
        table=quote(meta.db_table),
        sets=", ".join(f"{quote(column.column)} = v.{name}" for name, column in named),
        record_type=record_type,
        where=f"t.{quote(pk.column)} = v.pk",
    )
    with db.cursor() as cursor:
        cursor.execute(sql, [document])


# Field classes whose ``get_db_prep_save`` returns a value of these exact types (or None) unchanged on
# PostgreSQL: ``rows_insert`` hands such values to COPY as they are, and leaves every other value (and every
# other field class) to the field's own adaptation.
_UNCHANGED_TYPES = {
    models.AutoField: (int,),
    models.BigAutoField: (int,),
    models.SmallAutoField: (int,),
    models.IntegerField: (int,),
    models.BigIntegerField: (int,),
    models.SmallIntegerField: (int,),
    models.PositiveIntegerField: (int,),
    models.PositiveBigIntegerField: (int,),
    models.PositiveSmallIntegerField: (int,),
    models.CharField: (str,),
    models.TextField: (str,),
    models.SlugField: (str,),
    models.EmailField: (str,),
    models.URLField: (str,),
    models.BooleanField: (bool,),
    models.UUIDField: (UUID,),
}


def _value_adapter(field: models.Field, db):
    """value -> what ``field.get_db_prep_save(value)`` gives, without the generic path's calls for the common
    values (a few per value, for every row)."""
    prep = field.get_db_prep_save
    if isinstance(field, models.JSONField) and field.encoder is None:
        # COPY reads every column as text: the document's text is the value (None: SQL NULL, as save()).
        return lambda value: None if value is None else json_text(value)
    target = field.target_field if isinstance(field, models.ForeignKey) else field
    if type(target) is models.DateTimeField:
        return _time_adapter(prep, db)
    unchanged = _UNCHANGED_TYPES.get(type(target), ())

    def adapt(value):
        if (value is None and unchanged) or type(value) in unchanged:
            return value
        return prep(value, db)

    return adapt


def _time_adapter(prep, db):
    """An aware datetime as its ISO text, each distinct value written once: psycopg's dumper takes 1.1 µs a
    value, ``isoformat`` 0.8, a value met before (a chunk's ``now``, in three columns of every row) 0.1."""
    texts: dict[datetime.datetime, str] = {}

    def adapt(value):
        if type(value) is datetime.datetime and value.tzinfo is not None:
            text = texts.get(value)
            if text is None:
                text = texts[value] = value.isoformat()
            return text
        return None if value is None else prep(value, db)

    return adapt


def _copy_adapter(field: models.Field, db):
    """obj -> the field's value for COPY, as ``field.get_db_prep_save(field.pre_save(obj, True))``."""
    auto_time = getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
    time_pre_save = (models.DateField.pre_save, models.DateTimeField.pre_save, models.TimeField.pre_save)
    custom_pre_save = type(field).pre_save is not models.Field.pre_save and not (
        type(field).pre_save in time_pre_save and not auto_time
    )
    attname, adapt_value = field.attname, _value_adapter(field, db)
    if custom_pre_save:
        return lambda obj: adapt_value(field.pre_save(obj, True))
    return lambda obj: adapt_value(getattr(obj, attname))


def values_insert(*, model: type[models.Model], fields: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Insert many new rows given as plain tuples of ``fields`` (the primary key and any other column left
    out take their database default), where the caller needs neither the instances nor their ids: no model
    instance is built on PostgreSQL (COPY); elsewhere ``bulk_create``. The fields' ``pre_save`` is not
    called: give every value."""
    if not rows:
        return
    db = connections[DEFAULT_DB_ALIAS]
    meta = model._meta
    columns = [meta.get_field(name) for name in fields]
    if db.vendor != "postgresql":
        attnames = [column.attname for column in columns]
        model.objects.bulk_create([model(**dict(zip(attnames, row, strict=True))) for row in rows])
        return
    quote = db.ops.quote_name
    adapters = [_value_adapter(column, db) for column in columns]
    with (
        db.cursor() as cursor,
        db.wrap_database_errors,
        cursor.cursor.copy(
            f"COPY {quote(meta.db_table)} ({', '.join(quote(column.column) for column in columns)}) FROM STDIN"
        ) as copy,
    ):
        for row in rows:
            copy.write_row([adapt(value) for adapt, value in zip(adapters, row, strict=True)])


def rows_insert(objs: Sequence[models.Model], *, batch_size: int = 1000) -> None:
    """Insert many new rows of one model; like ``bulk_create`` (primary keys are set on the objects), but on
    PostgreSQL through COPY.

    Django 5.2's ``bulk_create`` on PostgreSQL sends each column as an array that psycopg escapes value by
    value in Python (regular expressions over every JSON document): that was the largest single CPU cost of
    the resolver. COPY goes through psycopg's C adapters. Serial primary keys are drawn from the table's
    sequence first, in one query, so the objects know their ids as they would after ``bulk_create``.
    Signals are not sent and ``save()`` is not called, as with ``bulk_create``.
    """
    if not objs:
        return
    model = type(objs[0])
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objs, batch_size=batch_size)
        return
    for obj in objs:  # a foreign key to an object saved since it was assigned: take its new id
        obj._prepare_related_fields_for_save(operation_name="rows_insert")
    meta = model._meta
    fields = list(meta.local_concrete_fields)
    db = connections[DEFAULT_DB_ALIAS]  # the connection itself: ``connection`` is a proxy, slow in a loop
    quote = db.ops.quote_name
    with db.cursor() as cursor:
        missing = [obj for obj in objs if obj.pk is None]
        if missing:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [meta.db_table, meta.pk.column, len(missing)],
            )
            ids = sorted(pk for (pk,) in cursor.fetchall())  # ascending, in the objects' order, as inserts
            for obj, pk in zip(missing, ids, strict=True):
                obj.pk = pk
        columns = ", ".join(quote(field.column) for field in fields)
        # COPY bypasses Django's cursor wrapper: map psycopg's errors (a unique violation of a racing
        # writer, say) to Django's, which the callers' retries catch.
        with (
            db.wrap_database_errors,
            cursor.cursor.copy(f"COPY {quote(meta.db_table)} ({columns}) FROM STDIN") as copy,
        ):
            adapters = [_copy_adapter(field, db) for field in fields]
            for obj in objs:
                copy.write_row([adapt(obj) for adapt in adapters])
    for obj in objs:
        obj._state.adding = False
        obj._state.db = db.alias
