"""Database helpers shared by the apps."""

from collections.abc import Sequence

from django.db import connection, models


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
    quote = connection.ops.quote_name
    sql = "UPDATE {} SET {} WHERE {} = %s".format(
        quote(meta.db_table),
        ", ".join(f"{quote(column.column)} = %s" for column in columns),
        quote(meta.pk.column),
    )
    params = [
        [column.get_db_prep_save(getattr(obj, column.attname), connection) for column in columns]
        + [meta.pk.get_db_prep_value(obj.pk, connection)]
        for obj in objs
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
