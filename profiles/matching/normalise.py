"""Normalisation for matching: names, addresses, postcodes, dates, emails, phones. Pure functions on strings.

These forms are for comparison only; they are never shown or stored as golden values.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache

from unidecode import unidecode

from .nicknames import nickname_groups

_NON_ALNUM = re.compile(r"[^0-9a-z ]+")
_APOSTROPHES = re.compile(r"[\u2019'`]")

# Street-type and common address abbreviations, written out (AU/UK/US usage).
STREET_TYPES = {
    "st": "street",
    "str": "street",
    "rd": "road",
    "ave": "avenue",
    "av": "avenue",
    "dr": "drive",
    "drv": "drive",
    "ln": "lane",
    "pl": "place",
    "ct": "court",
    "crt": "court",
    "cres": "crescent",
    "cr": "crescent",
    "cct": "circuit",
    "cir": "circle",
    "hwy": "highway",
    "pde": "parade",
    "tce": "terrace",
    "ter": "terrace",
    "cl": "close",
    "gr": "grove",
    "gve": "grove",
    "blvd": "boulevard",
    "bvd": "boulevard",
    "sq": "square",
    "pkwy": "parkway",
    "esp": "esplanade",
    "mt": "mount",
    "apt": "apartment",
    "bldg": "building",
    "n": "north",
    "s": "south",
    "e": "east",
    "w": "west",
}
_UNIT_WORDS = frozenset({"flat", "unit", "apartment", "suite", "no", "number"})


def fold(value: object) -> str:
    """ASCII, lower case, punctuation removed (apostrophes dropped, other marks become spaces)."""
    if value is None:
        return ""
    return _folded(value if isinstance(value, str) else str(value))


# Matching folds the same names, streets and towns again and again (every candidate of every record).
@lru_cache(maxsize=1 << 17)
def _folded(value: str) -> str:
    text = unidecode(value).casefold()
    text = _APOSTROPHES.sub("", text)
    return " ".join(_NON_ALNUM.sub(" ", text).split())


def name_key(value: object) -> str:
    """A name for comparison: folded, without spaces or hyphens ("O'Brien-Smith" -> "obriensmith")."""
    return fold(value).replace(" ", "")


def given_names(value: object) -> list[str]:
    """The folded tokens of a given-name field ("Mary-Jane" -> ["mary", "jane"])."""
    return fold(value).split()


@cache
def _nickname_index() -> dict[str, frozenset[int]]:
    index: dict[str, set[int]] = {}
    for number, group in enumerate(nickname_groups()):
        for name in group:
            index.setdefault(name, set()).add(number)
    return {name: frozenset(groups) for name, groups in index.items()}


def nickname_compatible(a: str, b: str) -> bool:
    """Whether two folded given names are variants of one another in the nickname table."""
    index = _nickname_index()
    return bool(index.get(a, frozenset()) & index.get(b, frozenset()))


@lru_cache(maxsize=1 << 16)
def nickname_variants(name: str) -> frozenset[str]:
    """The folded given name and every name it shares a nickname group with ("bob" -> robert, rob, ...)."""
    groups = nickname_groups()
    return frozenset({name}.union(*(groups[number] for number in _nickname_index().get(name, ()))))


def is_initial_of(a: str, b: str) -> bool:
    """One name is a single letter that starts the other ("J" and "John")."""
    return (len(a) == 1 and b.startswith(a)) or (len(b) == 1 and a.startswith(b))


def address_parts(value: object) -> tuple[str, str]:
    """(house number, street) of an address line, abbreviations written out.

    "Flat 3, 12a High St." -> ("12a", "high street"); the house number is the last token with a digit
    before the street words, so a flat number does not count as the house number.
    """
    return _address_parts(fold(value))


@lru_cache(maxsize=1 << 16)
def _address_parts(folded: str) -> tuple[str, str]:
    tokens = [STREET_TYPES.get(token, token) for token in folded.split()]
    number = ""
    street: list[str] = []
    for token in tokens:
        if any(ch.isdigit() for ch in token) and not street:
            number = token
        elif token in _UNIT_WORDS and not street:
            continue
        else:
            street.append(token)
    return number, " ".join(street)


def postcode_key(value: object) -> str:
    """Upper case, no spaces or punctuation ("sw1a 1aa" -> "SW1A1AA")."""
    return fold(value).replace(" ", "").upper()


def postcode_district(postcode: str) -> str:
    """The coarse part of a postcode: a UK outward code, otherwise all but the last digit."""
    if len(postcode) >= 5 and not postcode.isdigit():
        return postcode[:-3]
    return postcode[:-1] if len(postcode) > 2 else ""


def date_parts(value: object) -> tuple[str, str, str] | None:
    """(year, month, day) of "YYYY-MM-DD", "YYYYMMDD" or "YYYY/MM/DD", not validated as a calendar date
    (a source's typo such as month 13 still carries information). None when it is not date-like."""
    if value is None:
        return None
    digits = re.sub(r"\D", "", str(value))
    if len(digits) != 8:
        return None
    year, month, day = digits[:4], digits[4:6], digits[6:8]
    return year, month.lstrip("0") or "0", day.lstrip("0") or "0"


def email_parts(value: object) -> tuple[str, str]:
    """(local part without a "+tag", domain) of an email address, folded."""
    text = str(value or "").strip().casefold()
    if "@" not in text:
        return "", ""
    local, _, domain = text.rpartition("@")
    return local.split("+", 1)[0], domain


_LETTERS = re.compile(r"[a-z]+")


@lru_cache(maxsize=1 << 16)
def email_beyond_name(local: str, names: tuple[str, ...]) -> str | None:
    """What an email local part says besides the names: "james.fernandez" -> "", "d_johnson48" -> "48"
    for James Fernandez and Daniel Johnson; None when its letters are not the names (or their initials)
    put together ("thesmiths", "jfernandes")."""
    letters = "".join(_LETTERS.findall(local))
    pieces = {name for name in names if name} | {name[0] for name in names if name}
    if not letters or not pieces or len(letters) > 60:
        return None
    # Can the letters be cut into names and initials? (reachable[i]: the first i letters can.)
    reachable = [True] + [False] * len(letters)
    for end in range(1, len(letters) + 1):
        reachable[end] = any(
            reachable[end - len(piece)] and letters.endswith(piece, 0, end)
            for piece in pieces
            if len(piece) <= end
        )
    if not reachable[-1]:
        return None
    return "".join(ch for ch in local if ch.isdigit())


_LOCAL_SEPARATORS = re.compile(r"[._-]")


@lru_cache(maxsize=1 << 16)
def name_from_email(local: str, given: str, family: str) -> tuple[str, str]:
    """(given, family), a missing one read from an email local part that is two names joined by a separator
    ("jordan.johnson", "johnson_jordan"); otherwise the names as they are.

    People write their own address: "jordan.johnson" next to the given name Jordan says Johnson as plainly as
    a family-name field would. With neither name on the record, the first part is taken for the given name
    (the usual order; "johnson.jordan" then compares as names written the other way round, which the
    matcher tolerates). Digits, a single part, more than two parts or an initial ("j.johnson") say nothing
    certain, and neither does a known name that is not one of the two parts."""
    if (given and family) or not local:
        return given, family
    parts = _LOCAL_SEPARATORS.split(local)
    if len(parts) != 2 or parts[0] == parts[1] or not all(len(p) >= 2 and p.isalpha() for p in parts):
        return given, family
    if not given and not family:
        return parts[0], parts[1]
    known = given or family
    if known not in parts:
        return given, family
    other = parts[1] if parts[0] == known else parts[0]
    return (given, other) if given else (other, family)


_NON_DIGITS = re.compile(r"\D+")


def phone_digits(value: object) -> str:
    return _NON_DIGITS.sub("", str(value or ""))
