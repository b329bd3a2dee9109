"""Fast typo-tolerant name search on PostgreSQL (profiles.selectors.profile_search).

A trigram match of the whole name against a million profiles is slow for common names: a misspelt "John Smith"
makes the trigram index return every Smith. Instead the search corrects each word of the term against a
dictionary of the distinct words of all names (a small table with a trigram index), then
finds the profiles whose name holds a correction of every word, on a GIN index of the name's words.

- ``profiles_name_word``: the distinct words of ``Profile.search_name``, kept by statement-level triggers on
  profiles (insert and update, set-based through transition tables, so a COPY or a chunk of refreshed golden
  records costs one insert of the new words). Words are never removed: a word no longer used only offers a
  correction that finds nobody.
- ``profile_search_name_words``: GIN on ``regexp_split_to_array(search_name, '[^a-z0-9]+')``, the same
  split as ``profiles.selectors.name_words`` (``search_name`` is folded to lower-case ASCII).

Nothing on other databases (SQLite keeps the substring match). The index is built CONCURRENTLY, so the
migration is not atomic and does not block writes to profiles while it runs."""

from django.db import migrations, transaction

WORDS_OF = "regexp_split_to_array({}, '[^a-z0-9]+')"

CREATE = [
    "CREATE TABLE IF NOT EXISTS profiles_name_word (word text PRIMARY KEY)",
    f"""
    CREATE OR REPLACE FUNCTION profiles_name_words_add() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        -- Sorted, so two transactions adding the same new words lock them in the same order.
        INSERT INTO profiles_name_word (word)
        SELECT DISTINCT w FROM new_profiles, unnest({WORDS_OF.format("new_profiles.search_name")}) AS w
        WHERE w <> ''
        ORDER BY w
        ON CONFLICT (word) DO NOTHING;
        RETURN NULL;
    END $$
    """,
    "DROP TRIGGER IF EXISTS profiles_name_words_insert ON profiles_profile",
    """
    CREATE TRIGGER profiles_name_words_insert AFTER INSERT ON profiles_profile
    REFERENCING NEW TABLE AS new_profiles FOR EACH STATEMENT EXECUTE FUNCTION profiles_name_words_add()
    """,
    f"""
    CREATE OR REPLACE FUNCTION profiles_name_words_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO profiles_name_word (word)
        SELECT DISTINCT w
        FROM new_profiles JOIN old_profiles USING (id),
             unnest({WORDS_OF.format("new_profiles.search_name")}) AS w
        WHERE new_profiles.search_name IS DISTINCT FROM old_profiles.search_name AND w <> ''
        ORDER BY w
        ON CONFLICT (word) DO NOTHING;
        RETURN NULL;
    END $$
    """,
    "DROP TRIGGER IF EXISTS profiles_name_words_update ON profiles_profile",
    """
    CREATE TRIGGER profiles_name_words_update AFTER UPDATE ON profiles_profile
    REFERENCING OLD TABLE AS old_profiles NEW TABLE AS new_profiles
    FOR EACH STATEMENT EXECUTE FUNCTION profiles_name_words_change()
    """,
    f"""
    INSERT INTO profiles_name_word (word)
    SELECT DISTINCT w FROM profiles_profile, unnest({WORDS_OF.format("search_name")}) AS w WHERE w <> ''
    ON CONFLICT (word) DO NOTHING
    """,
    # After the backfill (a bulk build); no pending list: new words are few and must be found at once.
    "CREATE INDEX IF NOT EXISTS profiles_name_word_trgm ON profiles_name_word "
    "USING gin (word gin_trgm_ops) WITH (fastupdate = off)",
    "ANALYZE profiles_name_word",
]
INDEX = (
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS profile_search_name_words ON profiles_profile "
    f"USING gin (({WORDS_OF.format('search_name')}))"
)
DROP = [
    "DROP INDEX CONCURRENTLY IF EXISTS profile_search_name_words",
    "DROP TRIGGER IF EXISTS profiles_name_words_update ON profiles_profile",
    "DROP TRIGGER IF EXISTS profiles_name_words_insert ON profiles_profile",
    "DROP FUNCTION IF EXISTS profiles_name_words_change()",
    "DROP FUNCTION IF EXISTS profiles_name_words_add()",
    "DROP TABLE IF EXISTS profiles_name_word",
]


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    # The table, triggers and backfill in one transaction, so no name is written between the backfill and the
    # triggers; then the index, which CONCURRENTLY builds outside any transaction.
    connection = schema_editor.connection
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        for statement in CREATE:
            cursor.execute(statement)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(INDEX)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for statement in DROP:
            cursor.execute(statement)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("profiles", "0009_event_indexes_for_the_timeline"),
    ]

    operations = [migrations.RunPython(create, drop, atomic=False)]
