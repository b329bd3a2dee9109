"""Model fields shared by the apps."""

import orjson
from django.db import models


class JSONField(models.JSONField):
    """Django's ``JSONField``, its documents read by orjson.

    Resolution reads the attributes, identifiers and payloads of thousands of records a second; orjson parses
    them several times faster than ``json.loads``. A document orjson refuses (an integer beyond 64 bits) and
    every other value (a key transform's text, a field with its own decoder) take Django's own path, which
    reads it or returns it as before.
    """

    def from_db_value(self, value, expression, connection):
        if type(value) is str and self.decoder is None:
            try:
                return orjson.loads(value)
            except orjson.JSONDecodeError:
                pass
        return super().from_db_value(value, expression, connection)
