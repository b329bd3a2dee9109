"""IAB TCF v2.2 consent strings: decoded with the maintained ``iab-tcf`` library, then checked for the v2.2
rules the library does not enforce. Pure functions: no database here.

The library reads any v2 core segment; it accepts strings a v2.2 CMP may not produce (policy version 2,
timestamps in the future, CMP id 0, legitimate interest for purposes 3 to 6, ...). Those checks are ours.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MAX_LENGTH = 20_000
MIN_POLICY_VERSION = 4  # TCF v2.2 strings carry TcfPolicyVersion 4 (v2.0/v2.1: 2; v2.3: 5)
CLOCK_SKEW = timedelta(minutes=5)
NO_LEGITIMATE_INTEREST = (3, 4, 5, 6)  # v2.2 removed legitimate interest as a basis for purposes 3 to 6
_ALPHABET = re.compile(r"^[A-Za-z0-9_\-.]+$")
_LETTERS = re.compile(r"^[A-Z]{2}$")


class TcfInvalid(ValueError):
    """The string is not a valid TCF v2.2 string; the message is the reason shown to the sender."""


@dataclass(frozen=True)
class TcfConsent:
    """What the string says, as stored with the ledger entry's evidence."""

    string: str
    evidence: dict


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _text(value: object) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value or "")


def _ids(bits: dict) -> list[int]:
    return sorted(number for number, on in (bits or {}).items() if on)


def tcf_decode(string: object, *, now: datetime) -> TcfConsent:
    """Decode and validate a TC string; raise ``TcfInvalid`` with the reason."""
    from iab_tcf import decode_v2, version
    from iab_tcf.iab_tcf import base64_decode

    if not isinstance(string, str) or not string.strip():
        raise TcfInvalid("must be a non-empty TC string")
    string = string.strip()
    if len(string) > MAX_LENGTH:
        raise TcfInvalid(f"longer than {MAX_LENGTH} characters")
    if not _ALPHABET.match(string):
        raise TcfInvalid("not a TC string: only base64url characters and '.' between segments are allowed")
    try:
        core_version = version(base64_decode(string.split(".")[0]))
    except (ValueError, binascii.Error, IndexError) as exc:
        raise TcfInvalid(f"not decodable as base64url: {exc}") from None
    if core_version != 2:
        raise TcfInvalid(f"version {core_version}; only TCF v2 strings (version 2) are accepted")
    try:
        consent = decode_v2(string)
    except Exception as exc:  # the library raises bare errors on truncated input
        raise TcfInvalid(f"cannot be decoded (truncated or corrupt): {exc or type(exc).__name__}") from None

    created, updated = _aware(consent.created), _aware(consent.last_updated)
    language, publisher_cc = _text(consent.consent_language), _text(consent.publisher_cc)
    problems = []
    if consent.tcf_policy_version < MIN_POLICY_VERSION:
        problems.append(
            f"TCF policy version {consent.tcf_policy_version}; TCF v2.2 requires {MIN_POLICY_VERSION} or later"
        )
    if created > now + CLOCK_SKEW:
        problems.append(f"created {created.isoformat()} is in the future")
    if updated > now + CLOCK_SKEW:
        problems.append(f"last updated {updated.isoformat()} is in the future")
    if updated < created:
        problems.append("last updated before it was created")
    if consent.cmp_id <= 0:
        problems.append("CMP id 0: not a registered consent management platform")
    if consent.vendor_list_version <= 0:
        problems.append("vendor list version 0")
    if not _LETTERS.match(language):
        problems.append(f"consent language {language!r} is not two letters A-Z")
    if not _LETTERS.match(publisher_cc):
        problems.append(f"publisher country {publisher_cc!r} is not two letters A-Z")
    li = [p for p in NO_LEGITIMATE_INTEREST if consent.has_purpose_legitimate_interest(p)]
    if li:
        problems.append(
            f"legitimate interest signalled for purpose(s) {', '.join(map(str, li))}, "
            "which TCF v2.2 no longer allows"
        )
    if problems:
        raise TcfInvalid("; ".join(problems))

    vendors = (
        {"ranges": [list(r) for r in consent.consented_vendors_range]}
        if consent.is_consent_range_encoding
        else {"ids": _ids(consent.consented_vendors)}
    )
    return TcfConsent(
        string=string,
        evidence={
            "string": string,
            "version": core_version,
            "policy_version": consent.tcf_policy_version,
            "created": created.isoformat(),
            "last_updated": updated.isoformat(),
            "cmp_id": consent.cmp_id,
            "cmp_version": consent.cmp_version,
            "consent_screen": consent.consent_screen,
            "consent_language": language,
            "vendor_list_version": consent.vendor_list_version,
            "publisher_cc": publisher_cc,
            "is_service_specific": bool(consent.is_service_specific),
            "purpose_one_treatment": bool(consent.purpose_one_treatment),
            "special_features_opt_in": _ids(consent.special_features_optin),
            "purposes_consent": _ids(consent.purposes_consent),
            "purposes_legitimate_interests": _ids(consent.purposes_legitimate_interests),
            "vendors_consent": vendors,
        },
    )
