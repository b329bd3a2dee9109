"""Sections of the Customer 360 page that belong to apps above ``profiles``.

The profile admin renders the callables named in ``CDP_PROFILE_PANELS`` (``(*, request, profile) -> dict or
None``) without importing them: ``profiles`` stays below ``consent``, and the wiring lives here in ``cdp``,
which may know both. A panel is a titled table: ``{"title", "columns", "rows", "empty"}``; it returns None when
the user may not see it.
"""

from __future__ import annotations


def consent_state(*, request, profile) -> dict | None:
    """The effective consent of every purpose x channel, as the ledger stands now, for whoever may read the
    profile: it holds no identifiers (the ledger rows do; the privacy officer reads them in the consent admin)."""
    if not request.user.has_perm("profiles.view_profile"):
        return None
    from consent.selectors import profile_consents

    consents = profile_consents(profile=profile)
    rows = [
        {
            "cells": [
                state["purpose"],
                state["channel"] or "every channel",
                "allowed" if state["allowed"] else "not allowed",
                state["explanation"],
            ],
            "css_class": "consent-allowed" if state["allowed"] else "consent-denied",
        }
        for state in consents["state"]
    ]
    return {
        "id": "consent",
        "title": f"Consent state ({len(consents['history'])} ledger entries behind it)",
        "columns": ["Purpose", "Channel", "State", "Why"],
        "rows": rows,
        "empty": "No purposes or channels are defined.",
    }
