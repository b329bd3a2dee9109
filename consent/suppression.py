"""The suppression list: erased identifiers as keyed hashes, and the question "is this one of them?".

A hash is HMAC-SHA256 keyed with ``CDP_SUPPRESSION_KEY`` over the identifier type and its normalised value,
so any spelling that normalises the same (``Ann@Example.com `` and ``ann@example.com``) gives the same hash,
and without the key the list cannot be matched against a list of guessed addresses.

A national identifier follows the person too, though sources send it as the canonical attribute
``national_id`` rather than as an identifier: it is suppressed under the type ``national_id`` in the form
matching compares it (``national_id_key``). A source may also declare an identifier type named
``national_id``; its values are then suppressed and checked in that form as well (besides their own), so one
hash covers the number whichever way it came. The two cannot collide on different numbers: the form is lower
case letters and digits only, and a declared value equal to it is already in that form, the same number.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping

from django.conf import settings

from profiles.matching.normalise import fold

NATIONAL_ID = "national_id"
Key = tuple[str, str]


def suppression_hash(identifier_type: str, value: str) -> str:
    message = f"{identifier_type}\x1f{value}".encode()
    return hmac.new(settings.CDP_SUPPRESSION_KEY.encode(), message, hashlib.sha256).hexdigest()


# A national identifier has at least this many digits (an SSN 9, a UK National Insurance number 6, an
# Italian codice fiscale 7); a placeholder such as "unknown", "n/a" or "0" has fewer.
MIN_NATIONAL_ID_DIGITS = 5


def national_id_key(value: object) -> str:
    """A national identifier as matching compares it (``MatchRecord.national_id``): folded, without spaces,
    so "AB 12-34-56 c" and "ab123456C" are one number. Empty when it cannot be one: fewer than
    ``MIN_NATIONAL_ID_DIGITS`` digits (a placeholder), which is never suppressed nor checked."""
    if value is None or isinstance(value, bool) or not isinstance(value, str | int | float):
        return ""
    key = fold(value).replace(" ", "")
    return key if sum(c.isdigit() for c in key) >= MIN_NATIONAL_ID_DIGITS else ""


def suppression_keys(identifiers: Iterable[Key], attributes: Mapping | None = None) -> set[Key]:
    """The keys a record (or a person) is checked against the list with: its normalised identifiers, and its
    national identifier, from the ``national_id`` attribute or a declared identifier of that type, in the
    form of ``national_id_key``."""
    keys = {(kind, value) for kind, value in identifiers}
    nationals = [value for kind, value in keys if kind == NATIONAL_ID]
    if attributes and attributes.get(NATIONAL_ID) is not None:
        nationals.append(attributes[NATIONAL_ID])
    for value in nationals:
        folded = national_id_key(value)
        if folded:
            keys.add((NATIONAL_ID, folded))
    return keys


def suppressed_hashes(keys: Iterable[Key]) -> dict[str, int]:
    """The suppression entries (hash -> entry id) among these normalised (type, value) pairs. One query."""
    from .models import SuppressionEntry

    hashes = {suppression_hash(kind, value) for kind, value in keys}
    if not hashes:
        return {}
    return dict(SuppressionEntry.objects.filter(key_hash__in=list(hashes)).values_list("key_hash", "id"))
