"""PII masking per role and attribute: one set of pure functions, used by the API and the admin alike.

Which role sees what is configuration (``CDP_PII_MASKING`` in the settings, defaulting to
``DEFAULT_PII_MASKING``): a mapping of role (group name) to ``{attribute: mode}``. A user sees an attribute in
clear if any of their roles shows it in clear, so adding a role never hides more. Superusers see everything.
Staff with none of the configured roles get the ``"*"`` entry: masking fails closed.

Identities and identifiers of a type named like an attribute (``email``, ``phone``) are masked like it,
everywhere in a profile: golden values, candidates, source records, identities and event properties.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from cdp.roles import ADMINISTRATOR, DATA_STEWARD, DEPARTMENT_STAFF, PRIVACY_OFFICER, SUPPORT_AGENT

HIDDEN = "hidden"  # replaced entirely
YEAR = "year"  # a date: only its year (1984-**-**)
LAST4 = "last4"  # a phone or id: only its last four characters
EMAIL = "email"  # the first letter of the local part and the domain (m***@example.com)
MODES = (HIDDEN, YEAR, LAST4, EMAIL)

MASK = "•"
MASK_RUN = MASK * 3

_SUPPORT_AGENT_RULES = {
    "birth_date": YEAR,
    "phone": LAST4,
    "email": EMAIL,
    "address_line1": HIDDEN,
    "national_id": LAST4,  # the last four digits: what a caller is asked to confirm
}
DEFAULT_PII_MASKING: dict[str, dict[str, str]] = {
    SUPPORT_AGENT: _SUPPORT_AGENT_RULES,
    DEPARTMENT_STAFF: {"birth_date": YEAR, "phone": LAST4, "address_line1": HIDDEN, "national_id": LAST4},
    DATA_STEWARD: {},
    PRIVACY_OFFICER: {},
    ADMINISTRATOR: {},
    "*": _SUPPORT_AGENT_RULES,
}


def mask_value(value: Any, mode: str) -> Any:
    """One value under one mode. ``None`` and empty values stay as they are (nothing to hide)."""
    if value is None or value == "":
        return value
    text = str(value)
    if mode == YEAR:
        return f"{text[:4]}-**-**" if len(text) >= 4 and text[:4].isdigit() else MASK_RUN
    if mode == LAST4:
        digits_or_chars = "".join(ch for ch in text if ch.isalnum())
        return f"{MASK_RUN}{digits_or_chars[-4:]}" if len(digits_or_chars) > 4 else MASK_RUN
    if mode == EMAIL:
        local, at, domain = text.rpartition("@")
        return f"{local[:1]}{MASK_RUN}@{domain}" if at and local else MASK_RUN
    return MASK_RUN


def masking_rules(
    *, roles: Iterable[str], is_superuser: bool = False, config: Mapping[str, Mapping[str, str]]
) -> dict[str, str]:
    """The attributes a user with these roles sees masked, and how: the intersection over their roles."""
    if is_superuser:
        return {}
    configured = [config[role] for role in roles if role in config]
    if not configured:
        configured = [config.get("*", {})]
    rules = dict(configured[0])
    for other in configured[1:]:
        rules = {name: mode for name, mode in rules.items() if name in other}
    return rules


def mask_attributes(attributes: Mapping[str, Any], rules: Mapping[str, str]) -> dict[str, Any]:
    return {
        name: mask_value(value, rules[name]) if name in rules else value for name, value in attributes.items()
    }


def _mask_identifier(item: Mapping[str, Any], rules: Mapping[str, str]) -> dict[str, Any]:
    mode = rules.get(item["type"])
    return {**item, "value": mask_value(item["value"], mode)} if mode else dict(item)


def mask_profile_detail(detail: Mapping[str, Any], rules: Mapping[str, str]) -> dict[str, Any]:
    """``profiles.selectors.profile_detail`` with every occurrence of a masked attribute masked."""
    if not rules:
        return dict(detail)
    attributes = {}
    for name, golden in detail["attributes"].items():
        mode = rules.get(name)
        if mode is None:
            attributes[name] = golden
            continue
        attributes[name] = {
            **golden,
            "value": mask_value(golden["value"], mode),
            "candidates": [
                {**candidate, "value": mask_value(candidate["value"], mode)}
                for candidate in golden["candidates"]
            ],
        }
    return {
        **detail,
        "attributes": attributes,
        "identities": [_mask_identifier(identity, rules) for identity in detail["identities"]],
        "records": [
            {
                **record,
                "attributes": mask_attributes(record["attributes"], rules),
                "identifiers": [_mask_identifier(item, rules) for item in record["identifiers"]],
            }
            for record in detail["records"]
        ],
    }


_EMAIL_IN_TEXT = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")


def _mask_all(value: Any, mode: str) -> Any:
    if isinstance(value, Mapping):
        return {key: _mask_all(item, mode) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask_all(item, mode) for item in value]
    return mask_value(value, mode)


def mask_payload(
    payload: Any, rules: Mapping[str, str], field_mapping: Mapping[str, str] | None = None
) -> Any:
    """A payload exactly as a source sent it (a record of the records API, a tracking message) with every value
    of a masked attribute masked, wherever it sits: attributes under the source's own field names (read through
    its field mapping), identifiers by type, Segment traits (``firstName``, ``birthday``, ``address.street``,
    ...), and, when emails are masked, every email address inside any text (a ``userId``, a note).
    Keys and structure stay as sent, so staff still see what arrived."""
    if not rules:
        return payload
    from ingestion.tracking import ADDRESS_ATTRIBUTES, TRAIT_ATTRIBUTES

    names = {**TRAIT_ATTRIBUTES, **(field_mapping or {})}
    email_mode = rules.get("email")

    def walk(value: Any, canonical: Mapping[str, str]) -> Any:
        if isinstance(value, Mapping):
            masked = {}
            for key, item in value.items():
                name = canonical.get(key, key)
                if name in rules:
                    masked[key] = _mask_all(item, rules[name])
                elif key == "address" and isinstance(item, Mapping):
                    masked[key] = walk(item, {**names, **ADDRESS_ATTRIBUTES})
                else:
                    masked[key] = walk(item, names)
            return masked
        if isinstance(value, list):
            return [walk(item, canonical) for item in value]
        if email_mode and isinstance(value, str) and "@" in value:
            return _EMAIL_IN_TEXT.sub(lambda found: mask_value(found[0], email_mode), value)
        return value

    return walk(payload, names)


def mask_identifier_pairs(pairs: Iterable, rules: Mapping[str, str]) -> list:
    """Stored ``[type, value]`` identifier pairs, each masked like the attribute its type is named after."""
    return [[kind, mask_value(value, rules[kind]) if kind in rules else value] for kind, value in pairs]


def mask_timeline_entries(entries: Iterable[Mapping[str, Any]], rules: Mapping[str, str]) -> list[dict]:
    """Event properties (identify traits carry emails and phones) masked like the attributes they name."""
    if not rules:
        return [dict(entry) for entry in entries]
    return [
        {**entry, "properties": mask_attributes(entry["properties"], rules)}
        if isinstance(entry.get("properties"), Mapping)
        else dict(entry)
        for entry in entries
    ]


def masking_rules_fail_closed() -> dict[str, str]:
    """The rules of staff with no configured role: what to apply when the viewer is unknown."""
    from django.conf import settings

    config = getattr(settings, "CDP_PII_MASKING", DEFAULT_PII_MASKING)
    return masking_rules(roles=[], config=config)


def masking_rules_for(user) -> dict[str, str]:
    """The rules for a request's user, from the settings. Source systems (no roles, not staff) see what their
    ``profiles:read`` scope grants: the data they exist to sync, unmasked."""
    from django.conf import settings

    if not getattr(user, "is_staff", False) and getattr(user, "source", None) is not None:
        return {}
    config = getattr(settings, "CDP_PII_MASKING", DEFAULT_PII_MASKING)
    roles = list(user.groups.values_list("name", flat=True)) if getattr(user, "pk", None) else []
    return masking_rules(roles=roles, is_superuser=user.is_superuser, config=config)
