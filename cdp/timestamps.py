"""``timestamptz`` columns read by psycopg's C parser, not the pure-Python one Django's loader inherits.

Django reads every ``timestamptz`` through its own loader (``BaseTzLoader``), a subclass of psycopg's
*Python* ``TimestamptzLoader``: a regular expression and a few Python calls per value, about 2.8 µs. psycopg's
C extension (psycopg-binary) parses the same text in 0.2 µs, but a C loader cannot be subclassed. Reading a
chunk's records, profiles and identities, the resolver loads hundreds of thousands of timestamps a minute:
the Python parser was 3.6 % of a worker's CPU.

``install`` registers, on each new PostgreSQL connection, a loader that calls psycopg's default (C where
installed) text loader and gives the value Django's time zone exactly as ``BaseTzLoader`` does (both parse in
the session's ``TimeZone``, which Django sets to its own; the value is then given Django's ``tzinfo``). It
keeps the ``timezone`` attribute ``create_cursor`` compares, so Django keeps it as the connection's loader.
"""

from __future__ import annotations

import datetime

import psycopg
from psycopg.adapt import Loader
from psycopg.pq import Format

TIMESTAMPTZ = psycopg.adapters.types["timestamptz"].oid
_default = psycopg.adapters.get_loader(TIMESTAMPTZ, Format.TEXT)  # the C loader with psycopg-binary


class TimestamptzLoader(Loader):
    timezone: datetime.tzinfo | None = None  # Django's: set on a subclass per time zone (see ``install``)

    def __init__(self, oid: int, context=None):
        super().__init__(oid, context)
        self._parse = _default(oid, context).load

    def load(self, data):
        value = self._parse(data)
        return value if value.tzinfo is self.timezone else value.replace(tzinfo=self.timezone)


_loaders: dict[datetime.tzinfo | None, type[TimestamptzLoader]] = {}


def install(sender, connection, **kwargs) -> None:
    """``connection_created`` receiver: read this connection's ``timestamptz`` values with the C parser."""
    if connection.vendor != "postgresql":
        return
    timezone = connection.timezone
    loader = _loaders.get(timezone)
    if loader is None:
        loader = _loaders[timezone] = type(
            "DjangoTimestamptzLoader", (TimestamptzLoader,), {"timezone": timezone}
        )
    connection.connection.adapters.register_loader(TIMESTAMPTZ, loader)
