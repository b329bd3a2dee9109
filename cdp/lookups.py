"""``field__in=[...]`` on PostgreSQL as ``field = ANY(%s)``: one array parameter instead of one per value.

Resolution filters by lists of hundreds to thousands of ids in every chunk. As ``IN (%s, %s, ...)`` each value
is prepared by its own lookup machinery in Django, and psycopg splits the query text at every placeholder
(``_split_query``, the largest single cost of the resolver's queries in Python); PostgreSQL then parses the
long list. One array parameter avoids all three, and means the same: NULLs never match either way.

The array goes as one text literal where its values allow (``cdp.db.array_text``). Only lists of plain
values of simple column types take this path (numbers, text, UUIDs, dates and times,
and foreign keys to such); subqueries, expressions, JSON and other types keep Django's ``IN``.
"""

from __future__ import annotations

from uuid import UUID

from django.core.exceptions import EmptyResultSet
from django.db.models import Field, ForeignKey, ForeignObject
from django.db.models.fields.related_lookups import RelatedIn
from django.db.models.lookups import In

from cdp.db import array_text

ARRAY_TYPES = frozenset(
    {
        "AutoField",
        "BigAutoField",
        "SmallAutoField",
        "IntegerField",
        "BigIntegerField",
        "SmallIntegerField",
        "PositiveIntegerField",
        "PositiveBigIntegerField",
        "PositiveSmallIntegerField",
        "CharField",
        "TextField",
        "SlugField",
        "EmailField",
        "UUIDField",
        "DateField",
        "DateTimeField",
    }
)


def _array_field(lookup: In) -> Field | None:
    """The field whose type the array's values have, or None where this lookup must stay ``IN``."""
    field = getattr(lookup.lhs, "output_field", None)
    if isinstance(field, ForeignKey):
        field = field.target_field
    if field is None or field.get_internal_type() not in ARRAY_TYPES or not lookup.rhs_is_direct_value():
        return None
    return field


class ArrayInMixin:
    def as_postgresql(self, compiler, connection):
        field = _array_field(self)
        if field is None:
            return self.as_sql(compiler, connection)
        values = list(dict.fromkeys(value for value in self.rhs if value is not None))
        if not values:
            raise EmptyResultSet
        lhs_sql, lhs_params = self.process_lhs(compiler, connection)
        params = [field.get_db_prep_value(value, connection, prepared=True) for value in values]
        text = array_text(params)  # quoted in C rather than element by element
        if text is None:
            return f"{lhs_sql} = ANY(%s)", (*lhs_params, params)
        return f"{lhs_sql} = ANY(%s{_CASTS.get(type(params[0]), '')})", (*lhs_params, text)


# The type of an array literal of these values; text takes the column's type, as a list parameter did.
_CASTS = {int: "::bigint[]", UUID: "::uuid[]"}


class ArrayIn(ArrayInMixin, In):
    pass


class RelatedArrayIn(ArrayInMixin, RelatedIn):
    pass


def register() -> None:
    """Replace the ``in`` lookup of every field and foreign key (from ``CdpConfig.ready``)."""
    Field.register_lookup(ArrayIn)
    ForeignObject.register_lookup(RelatedArrayIn)
