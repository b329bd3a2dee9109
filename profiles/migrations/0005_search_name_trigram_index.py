"""Typo-tolerant name search on PostgreSQL: the pg_trgm extension and a trigram GIN index on search_name, which
answers profiles.selectors.profile_search's word-similarity operator. Nothing on other databases (SQLite falls
back to a substring match); the index is not in the model state, as it exists on PostgreSQL only."""

from django.db import migrations

INDEX = "profile_search_name_trgm"


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {INDEX} ON profiles_profile USING gin (search_name gin_trgm_ops)"
    )


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [
        ("profiles", "0004_event"),
    ]

    operations = [migrations.RunPython(create_index, drop_index)]
