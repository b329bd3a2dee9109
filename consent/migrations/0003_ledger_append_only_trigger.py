"""On PostgreSQL the database itself refuses UPDATE and DELETE of consent ledger rows, whoever connects (a
shell, a script, a bug). TRUNCATE is left to the table owner: test runners and a future, audited erasure path
need it. SQLite relies on the model and admin guards."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION consent_ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'consent ledger entries are append-only: % refused on entry %', TG_OP, OLD.id
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS consent_ledger_append_only ON consent_consententry;
CREATE TRIGGER consent_ledger_append_only
    BEFORE UPDATE OR DELETE ON consent_consententry
    FOR EACH ROW EXECUTE FUNCTION consent_ledger_append_only();
"""
DROP = """
DROP TRIGGER IF EXISTS consent_ledger_append_only ON consent_consententry;
DROP FUNCTION IF EXISTS consent_ledger_append_only();
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("consent", "0002_seed_purposes_channels")]
    operations = [migrations.RunPython(create, drop)]
