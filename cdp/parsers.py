"""A JSON parser for untrusted input: what it accepts, the database can store."""

import json
import math

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:40]}")
    return value


def _no_constants(name: str):
    raise ValueError(f"{name} is not valid JSON")


def json_loads_strict(data: str | bytes):
    """json.loads, refusing NaN/Infinity and numbers that overflow to them; nesting too deep is an error."""
    try:
        return json.loads(data, parse_float=_finite_float, parse_constant=_no_constants)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json_loads_strict(stream.read().decode(encoding))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
