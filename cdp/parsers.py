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


def text_problem(value: str) -> str | None:
    """Why a string cannot be stored as text (PostgreSQL refuses NUL and unpaired surrogates), or None."""
    if "\x00" in value:
        return "NUL characters (\\u0000) are not allowed in text"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "unpaired UTF-16 surrogates are not valid text"
    return None


def _check_strings(document) -> None:
    stack = [document]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            problem = text_problem(value)
            if problem:
                raise ValueError(problem)
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def json_loads_strict(data: str | bytes):
    """json.loads for what a database can store: no NaN/Infinity or numbers that overflow to them, no NUL
    or unpaired surrogates in strings; nesting too deep is an error, not a crash."""
    try:
        document = json.loads(data, parse_float=_finite_float, parse_constant=_no_constants)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    _check_strings(document)
    return document


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json_loads_strict(stream.read().decode(encoding))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
