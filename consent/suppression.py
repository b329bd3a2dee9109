"""The suppression list: erased identifiers as keyed hashes, and the question "is this one of them?".

A hash is HMAC-SHA256 keyed with ``CDP_SUPPRESSION_KEY`` over the identifier type and its normalised value,
so any spelling that normalises the same (``Ann@Example.com `` and ``ann@example.com``) gives the same hash,
and without the key the list cannot be matched against a list of guessed addresses.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from django.conf import settings


def suppression_hash(identifier_type: str, value: str) -> str:
    message = f"{identifier_type}\x1f{value}".encode()
    return hmac.new(settings.CDP_SUPPRESSION_KEY.encode(), message, hashlib.sha256).hexdigest()


def suppressed_hashes(keys: Iterable[tuple[str, str]]) -> dict[str, int]:
    """The suppression entries (hash -> entry id) among these normalised (type, value) pairs. One query."""
    from .models import SuppressionEntry

    hashes = {suppression_hash(kind, value) for kind, value in keys}
    if not hashes:
        return {}
    return dict(SuppressionEntry.objects.filter(key_hash__in=list(hashes)).values_list("key_hash", "id"))
