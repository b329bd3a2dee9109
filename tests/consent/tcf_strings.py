"""A minimal TCF v2 core-segment encoder for tests (the library only decodes)."""

import base64
from datetime import UTC, datetime


def _letters(text: str) -> str:
    return "".join(format(ord(c) - ord("A"), "06b") for c in text)


def tc_string(
    *,
    version: int = 2,
    created: datetime | None = None,
    updated: datetime | None = None,
    cmp_id: int = 7,
    cmp_version: int = 1,
    language: str = "EN",
    vendor_list_version: int = 150,
    policy_version: int = 4,
    purposes_consent: tuple[int, ...] = (1, 3),
    purposes_li: tuple[int, ...] = (),
    publisher_cc: str = "DE",
    vendors: tuple[int, ...] = (1, 2),
) -> str:
    created = created or datetime(2026, 1, 1, tzinfo=UTC)
    updated = updated or created
    bits = format(version, "06b")
    bits += format(int(created.timestamp() * 10), "036b") + format(int(updated.timestamp() * 10), "036b")
    bits += format(cmp_id, "012b") + format(cmp_version, "012b") + format(1, "06b")
    bits += _letters(language) + format(vendor_list_version, "012b") + format(policy_version, "06b")
    bits += "0" + "0" + "0" * 12
    bits += "".join("1" if i in purposes_consent else "0" for i in range(1, 25))
    bits += "".join("1" if i in purposes_li else "0" for i in range(1, 25))
    bits += "0" + _letters(publisher_cc)
    max_vendor = max(vendors) if vendors else 0
    bits += (
        format(max_vendor, "016b")
        + "0"
        + "".join("1" if i in vendors else "0" for i in range(1, max_vendor + 1))
    )
    bits += format(0, "016b") + "0"
    bits += format(0, "012b")
    bits += "0" * (-len(bits) % 8)
    raw = int(bits, 2).to_bytes(len(bits) // 8, "big")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
