"""Erasure must reach the consent ledger too. The append-only trigger now lets a DELETE through when the
transaction set ``SET LOCAL cdp.erasure = 'on'``, which only ``ConsentEntryQuerySet.erase`` (called by the
erasure service, inside its transaction, after the request was verified and audited) does. A SET LOCAL ends
with its transaction, so nothing else inherits it. UPDATE stays refused always.

This is a guard against accidents (a shell, a script, a bug), not against a database user who means harm:
such a user could set the flag too, as they could drop the trigger."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION consent_ledger_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('cdp.erasure', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'consent ledger entries are append-only: % refused on entry %', TG_OP, OLD.id
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
"""
PREVIOUS = """
CREATE OR REPLACE FUNCTION consent_ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'consent ledger entries are append-only: % refused on entry %', TG_OP, OLD.id
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def restore(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PREVIOUS, params=None)


class Migration(migrations.Migration):
    dependencies = [("consent", "0004_data_subject_requests")]
    operations = [migrations.RunPython(create, restore)]
