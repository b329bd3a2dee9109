"""Default identifier rules: emails and phones link people, within sensible limits, never on test values."""

from django.db import migrations

DEFAULT_RULES = [
    {
        "name": "email",
        "normaliser": "email",
        "max_per_profile": 5,
        "blocked_values": [
            "test@example.com",
            "test@test.com",
            "noreply@example.com",
            "no-reply@example.com",
            "none@none.com",
            "unknown@unknown.com",
        ],
    },
    {
        "name": "phone",
        "normaliser": "phone",
        "max_per_profile": 5,
        "blocked_values": ["0000000000", "1111111111", "1234567890", "9999999999"],
    },
]


def seed(apps, schema_editor):
    IdentifierType = apps.get_model("ingestion", "IdentifierType")
    for rule in DEFAULT_RULES:
        IdentifierType.objects.get_or_create(name=rule["name"], defaults=rule)


def unseed(apps, schema_editor):
    apps.get_model("ingestion", "IdentifierType").objects.filter(name__in=[r["name"] for r in DEFAULT_RULES]).delete()


class Migration(migrations.Migration):
    dependencies = [("ingestion", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
