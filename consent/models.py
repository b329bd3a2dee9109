"""Consent ledger, suppression list and data-subject requests live here (see the consent issue)."""
