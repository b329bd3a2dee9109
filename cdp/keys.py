"""Secret keys shown once and stored hashed: source API keys / write keys and staff personal tokens.

A key reads ``<kind>_<prefix>_<secret>``. Only the prefix is kept in clear (to find the row and to let people
tell keys apart); the whole key is stored as a SHA-256 digest. The keys are 190 bits of randomness, so a fast
hash is enough: there is nothing to brute-force, unlike a password.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass

PREFIX_LENGTH = 8


@dataclass(frozen=True)
class NewKey:
    key: str
    prefix: str
    digest: str


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_generate(kind: str) -> NewKey:
    prefix = secrets.token_hex(PREFIX_LENGTH // 2)
    key = f"{kind}_{prefix}_{secrets.token_urlsafe(24)}"
    return NewKey(key=key, prefix=prefix, digest=key_digest(key))


def key_parse(key: str) -> tuple[str, str] | None:
    """Return (kind, prefix) of a well-formed key, else None."""
    parts = key.split("_", 2)
    if (
        len(parts) != 3
        or len(parts[1]) != PREFIX_LENGTH
        or not all(c in "0123456789abcdef" for c in parts[1])
    ):
        return None
    return parts[0], parts[1]


def key_matches(key: str, digest: str) -> bool:
    return hmac.compare_digest(key_digest(key), digest)
