"""Database helpers shared by the apps."""

from collections.abc import Sequence

from django.db import DEFAULT_DB_ALIAS, connection, connections, models


def rows_update(objs: Sequence[models.Model], fields: Sequence[str]) -> None:
    """Write ``fields`` of many rows, one parameterised UPDATE per row sent with executemany.

    Django's ``bulk_update`` builds a CASE expression per object and field in Python, which cost more than
    half of the resolver's CPU time; psycopg 3 pipelines executemany, so this is one round trip per batch.
    Values are adapted by each field exactly as ``save()`` would (JSON, UUIDs, datetimes).
    """
    if not objs:
        return
    meta = type(objs[0])._meta
    columns = [meta.get_field(name) for name in fields]
    db = connections[DEFAULT_DB_ALIAS]  # the connection itself: ``connection`` is a proxy, slow in a loop
    quote = db.ops.quote_name
    sql = "UPDATE {} SET {} WHERE {} = %s".format(
        quote(meta.db_table),
        ", ".join(f"{quote(column.column)} = %s" for column in columns),
        quote(meta.pk.column),
    )
    params = [
        [column.get_db_prep_save(getattr(obj, column.attname), db) for column in columns]
        + [meta.pk.get_db_prep_value(obj.pk, db)]
        for obj in objs
    ]
    with db.cursor() as cursor:
        cursor.executemany(sql, params)


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
            for obj in objs:
                copy.write_row([field.get_db_prep_save(field.pre_save(obj, True), db) for field in fields])
    for obj in objs:
        obj._state.adding = False
        obj._state.db = db.alias
