"""Field comparisons with agreement levels.

A comparison maps a pair of records to a level: 0 is always exact agreement, higher levels agree less, the
last level is disagreement. ``MISSING`` means one side has no value; it carries no weight either way. What a
level is worth is not decided here: the model estimates it from the data (``model.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import jellyfish
from rapidfuzz.distance import OSA, JaroWinkler, Levenshtein

from .normalise import (
    email_beyond_name,
    is_initial_of,
    nickname_compatible,
    nickname_variants,
    postcode_district,
)
from .records import MatchRecord

MISSING = -1
_CACHE = 1 << 18


@dataclass(frozen=True)
class Comparison:
    """One field comparison. ``value`` gives the record's value for exact-agreement statistics and term
    frequencies; ``term_frequency`` says whether agreeing on a common value should weigh less."""

    name: str
    levels: tuple[str, ...]
    compare: Callable[[MatchRecord, MatchRecord], int]
    value: Callable[[MatchRecord], str]
    term_frequency: bool = False


# --- Names ---------------------------------------------------------------------------------------------

GIVEN_NAME_LEVELS = (
    "exact",
    "jaro_winkler>=0.92",
    "jaro_winkler>=0.85",
    "nickname_or_initial",
    "swapped_with_last_name",
    "disagree",
)
NAME_LEVELS = ("exact", "jaro_winkler>=0.92", "jaro_winkler>=0.85", "disagree")
LAST_NAME_LEVELS = (
    "exact",
    "jaro_winkler>=0.92",
    "jaro_winkler>=0.85",
    "swapped_with_first_name",
    "disagree",
)


@lru_cache(maxsize=_CACHE)
def name_level(a: str, b: str) -> int:
    """Level of two folded names (levels of ``NAME_LEVELS``)."""
    if not a or not b:
        return MISSING
    if a == b:
        return 0
    similarity = JaroWinkler.similarity(a, b)
    if similarity >= 0.92:
        return 1
    if similarity >= 0.85:
        return 2
    return 3


@lru_cache(maxsize=_CACHE)
def given_name_level(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    """Level of two given-name token lists (levels of ``GIVEN_NAME_LEVELS``).

    The first given names are compared; a nickname or an initial of any given name counts as the
    "nickname_or_initial" level ("Bill" / "William", "J" / "John", "Jon" / "Jonathan").
    """
    if not a or not b:
        return MISSING
    level = name_level(a[0], b[0])
    if level < 3:
        return level
    if any(nickname_compatible(x, y) or is_initial_of(x, y) for x in a for y in b):
        return 3
    return 5


def _swapped(a: MatchRecord, b: MatchRecord) -> bool:
    """Given and family name exchanged between the two records ("Caleb McKane" / "McKane Caleb")."""
    return (
        bool(a.first_name and a.last_name and b.first_name and b.last_name)
        and name_level(a.first_name, b.last_name) <= 1
        and name_level(a.last_name, b.first_name) <= 1
    )


def _first_name(a: MatchRecord, b: MatchRecord) -> int:
    level = given_name_level(a.first_names, b.first_names)
    return 4 if level == 5 and _swapped(a, b) else level


def _last_name(a: MatchRecord, b: MatchRecord) -> int:
    """Names exchanged ("McKane Caleb") are one observation, weighed once, by the given-name comparison's
    "swapped_with_last_name" level. Counted here as well, a swap weighed twice what exact agreement on both
    names does, however common they are, and linked namesakes ("Smith Mary" / "Mary Smith"). The level
    "swapped_with_first_name" stays in ``LAST_NAME_LEVELS`` so that stored models still load; it is no
    longer produced."""
    level = name_level(a.last_name, b.last_name)
    if level == 3:
        return MISSING if _swapped(a, b) else 4
    return level


# --- Given names that cannot be one person's -----------------------------------------------------------
# The matcher's "disagree" level is a weight, learnt from the data, among others. The guard of deterministic
# links asks another question: may these two given names name one person at all? A shared email or phone
# is strong evidence, so only names no source slip explains count as different people: besides the
# matcher's tolerances, a nickname with a typo in it, an initial of a nickname's formal name, one typo,
# the same sound, and given and family name exchanged in one record only.


@lru_cache(maxsize=_CACHE)
def given_name_variant(a: str, b: str) -> bool:
    """Whether two folded given names, which disagree at the matcher's levels, may still be one person's
    ("Robbbie" / "Robert", "R" / "Bob", "Juyd" / "Judy", "Annie" / "Ana")."""
    if not a or not b:
        return False
    if len(a) == 1 or len(b) == 1:
        initial, name = (a, b) if len(a) == 1 else (b, a)
        return any(variant.startswith(initial) for variant in nickname_variants(name))
    if min(len(a), len(b)) >= 3 and OSA.distance(a, b, score_cutoff=1) <= 1:
        return True
    if any(JaroWinkler.similarity(variant, b) >= 0.85 for variant in nickname_variants(a)):
        return True
    if any(JaroWinkler.similarity(variant, a) >= 0.85 for variant in nickname_variants(b)):
        return True
    return jellyfish.metaphone(a) == jellyfish.metaphone(b)


def _given_compatible(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    return given_name_level(a, b) < 5 or any(given_name_variant(x, y) for x in a for y in b)


def _swap_compatible(a: MatchRecord, b: MatchRecord) -> bool:
    """``b`` holds ``a``'s names the other way round (its family-name field a form of a's given name, its
    given-name field a's family name, when a has one)."""
    return (
        bool(b.last_name)
        and _given_compatible(a.first_names[:1], (b.last_name,))
        and (not a.last_name or name_level(a.last_name, b.first_name) <= 2)
    )


def given_names_differ(a: MatchRecord, b: MatchRecord) -> bool:
    """Both records have a given name and no tolerance explains the difference: two people."""
    if not a.first_names or not b.first_names or _given_compatible(a.first_names, b.first_names):
        return False
    return not (_swap_compatible(a, b) or _swap_compatible(b, a))


# --- Dates ---------------------------------------------------------------------------------------------

DATE_LEVELS = ("exact", "day_month_swapped", "one_component_off", "year_only", "disagree")


@lru_cache(maxsize=_CACHE)
def date_level(a: tuple[str, str, str] | None, b: tuple[str, str, str] | None) -> int:
    if a is None or b is None:
        return MISSING
    if a == b:
        return 0
    if a[0] == b[0] and a[1] == b[2] and a[2] == b[1]:
        return 1
    same = (a[0] == b[0]) + (a[1] == b[1]) + (a[2] == b[2])
    if same == 2:
        return 2
    if a[0] == b[0]:
        return 3
    return 4


def _birth_date(a: MatchRecord, b: MatchRecord) -> int:
    return date_level(a.birth_date, b.birth_date)


def _date_value(record: MatchRecord) -> str:
    return "-".join(record.birth_date) if record.birth_date else ""


# --- Address -------------------------------------------------------------------------------------------

ADDRESS_LEVELS = ("exact", "same_number_similar_street", "similar_street", "disagree")


@lru_cache(maxsize=_CACHE)
def address_level(number_a: str, street_a: str, number_b: str, street_b: str) -> int:
    if not street_a or not street_b:
        return MISSING
    same_street = street_a == street_b
    if same_street and number_a == number_b:
        return 0
    similar = same_street or JaroWinkler.similarity(street_a, street_b) >= 0.88
    if similar and number_a and number_a == number_b:
        return 1
    if similar:
        return 2
    return 3


def _address_line1(a: MatchRecord, b: MatchRecord) -> int:
    level = address_level(a.house_number, a.street, b.house_number, b.street)
    if level >= 2 and _lines_swapped(a, b):
        return address_level(a.house_number, a.street, b.house_number, b.address_line2)
    return level


def _lines_swapped(a: MatchRecord, b: MatchRecord) -> bool:
    """The two address lines written the other way round: "46 Ashby Circuit" / "Moodwood Angus Stud" in
    one record, "46 Moodwood Angus Stud" / "Ashby Circuit" in the other (a building, farm or estate name
    that one form puts first). Both lines must agree crosswise, so it is the same address either way."""
    if not (a.street and b.street and a.address_line2 and b.address_line2):
        return False
    return text_level(a.street, b.address_line2) <= 1 and text_level(a.address_line2, b.street) <= 1


TEXT_LEVELS = ("exact", "jaro_winkler>=0.88", "disagree")


@lru_cache(maxsize=_CACHE)
def text_level(a: str, b: str) -> int:
    if not a or not b:
        return MISSING
    if a == b:
        return 0
    return 1 if JaroWinkler.similarity(a, b) >= 0.88 else 2


def _address_line2(a: MatchRecord, b: MatchRecord) -> int:
    level = text_level(a.address_line2, b.address_line2)
    if level == 2 and _lines_swapped(a, b):
        return text_level(a.address_line2, b.street)
    return level


def _city(a: MatchRecord, b: MatchRecord) -> int:
    return text_level(a.city, b.city)


POSTCODE_LEVELS = ("exact", "one_edit", "same_district", "disagree")


@lru_cache(maxsize=_CACHE)
def postcode_level(a: str, b: str) -> int:
    if not a or not b:
        return MISSING
    if a == b:
        return 0
    if len(a) == len(b) and Levenshtein.distance(a, b, score_cutoff=1) <= 1:
        return 1
    district = postcode_district(a)
    if district and district == postcode_district(b):
        return 2
    return 3


def _postcode(a: MatchRecord, b: MatchRecord) -> int:
    return postcode_level(a.postcode, b.postcode)


EXACT_LEVELS = ("exact", "disagree")


def _exact(a: str, b: str) -> int:
    if not a or not b:
        return MISSING
    return 0 if a == b else 1


def _region(a: MatchRecord, b: MatchRecord) -> int:
    return _exact(a.region, b.region)


def _gender(a: MatchRecord, b: MatchRecord) -> int:
    return _exact(a.gender, b.gender)


# --- Contact details and identifiers -------------------------------------------------------------------

EMAIL_LEVELS = ("exact", "same_local_part", "similar_local_part", "disagree")


@lru_cache(maxsize=_CACHE)
def email_level(a: str, local_a: str, b: str, local_b: str) -> int:
    if not a or not b:
        return MISSING
    if a == b:
        return 0
    if local_a and local_a == local_b:
        return 1
    if local_a and local_b and JaroWinkler.similarity(local_a, local_b) >= 0.88:
        return 2
    return 3


def _email(a: MatchRecord, b: MatchRecord) -> int:
    """When both local parts only spell the pair's names ("james.fernandez" at two providers), their
    agreement repeats the name comparison: two namesakes have it as often as one person, so it weighs
    nothing; what they add to the names (digits, often a birth year) is what agrees or not. The names of
    both records count: "melissa.smith" spells Melissa Smith whether this record says "Mel" or "Smih"."""
    level = email_level(a.email, a.email_local, b.email, b.email_local)
    if level not in (1, 2):
        return level
    # Worked out only here, for the few pairs whose local parts agree: most records never need it.
    names = (*a.first_names, a.last_name, *b.first_names, b.last_name)
    beyond_a = email_beyond_name(a.email_local, names)
    beyond_b = email_beyond_name(b.email_local, names)
    if beyond_a is None or beyond_b is None:
        return level
    if beyond_a != beyond_b:
        return 3
    return level if beyond_a else MISSING


PHONE_LEVELS = ("exact", "same_last_8_digits", "one_edit", "disagree")


@lru_cache(maxsize=_CACHE)
def phone_level(a: str, b: str) -> int:
    if not a or not b:
        return MISSING
    if a == b:
        return 0
    if len(a) >= 8 and len(b) >= 8 and a[-8:] == b[-8:]:
        return 1
    if Levenshtein.distance(a, b, score_cutoff=1) <= 1:
        return 2
    return 3


def _phone(a: MatchRecord, b: MatchRecord) -> int:
    return phone_level(a.phone, b.phone)


IDENTIFIER_LEVELS = ("exact", "one_edit", "disagree")
# An identifier shorter than this differing by one character is another identifier: among short ones a
# neighbour is too likely to be someone else's.
MIN_FUZZY_IDENTIFIER_LENGTH = 6


@lru_cache(maxsize=_CACHE)
def identifier_level(a: str, b: str) -> int:
    """Exact, one typo or two neighbouring characters swapped (optimal string alignment distance 1: the
    keying errors of a number typed by hand), or disagree."""
    if not a or not b:
        return MISSING
    if a == b:
        return 0
    if min(len(a), len(b)) >= MIN_FUZZY_IDENTIFIER_LENGTH and OSA.distance(a, b, score_cutoff=1) <= 1:
        return 1
    return 2


def identifier_confirms(a: str, b: str) -> bool:
    """Whether two national identifiers speak for one person: equal, or one keying error apart."""
    return bool(a and b) and identifier_level(a, b) in (0, 1)


def _national_id(a: MatchRecord, b: MatchRecord) -> int:
    if not a.national_id or not b.national_id:  # most records carry none: spare the cache lookup
        return MISSING
    return identifier_level(a.national_id, b.national_id)


FIRST_NAME = Comparison(
    "first_name", GIVEN_NAME_LEVELS, _first_name, lambda r: r.first_name, term_frequency=True
)
LAST_NAME = Comparison("last_name", LAST_NAME_LEVELS, _last_name, lambda r: r.last_name, term_frequency=True)
BIRTH_DATE = Comparison("birth_date", DATE_LEVELS, _birth_date, _date_value)
ADDRESS_LINE1 = Comparison("address_line1", ADDRESS_LEVELS, _address_line1, lambda r: r.address_line1)
ADDRESS_LINE2 = Comparison("address_line2", TEXT_LEVELS, _address_line2, lambda r: r.address_line2)
CITY = Comparison("city", TEXT_LEVELS, _city, lambda r: r.city, term_frequency=True)
POSTCODE = Comparison("postcode", POSTCODE_LEVELS, _postcode, lambda r: r.postcode, term_frequency=True)
REGION = Comparison("region", EXACT_LEVELS, _region, lambda r: r.region)
GENDER = Comparison("gender", EXACT_LEVELS, _gender, lambda r: r.gender)
EMAIL = Comparison("email", EMAIL_LEVELS, _email, lambda r: r.email)
PHONE = Comparison("phone", PHONE_LEVELS, _phone, lambda r: r.phone)
NATIONAL_ID = Comparison("national_id", IDENTIFIER_LEVELS, _national_id, lambda r: r.national_id)

# The production set. A comparison whose values the data lacks (few CRMs carry a national identifier) weighs
# nothing: its level is MISSING, and a model trained on data without it makes it neutral.
DEFAULT_COMPARISONS: tuple[Comparison, ...] = (
    FIRST_NAME,
    LAST_NAME,
    BIRTH_DATE,
    GENDER,
    ADDRESS_LINE1,
    ADDRESS_LINE2,
    CITY,
    POSTCODE,
    REGION,
    EMAIL,
    PHONE,
    NATIONAL_ID,
)


def comparison_vector(
    a: MatchRecord, b: MatchRecord, comparisons: tuple[Comparison, ...] = DEFAULT_COMPARISONS
) -> tuple[int, ...]:
    return tuple(comparison.compare(a, b) for comparison in comparisons)
