"""The survivorship rule of the new canonical attribute ``national_id``: the **most frequent** value, as for
the birth date. A national identifier never changes, so recency says nothing, while a typo in one system is
outvoted by the others that agree (ties: trust rank). Staff change it in the admin."""

from django.db import migrations


def seed(apps, schema_editor):
    SurvivorshipRule = apps.get_model("profiles", "SurvivorshipRule")
    SurvivorshipRule.objects.get_or_create(attribute="national_id", defaults={"rule": "most_frequent"})


def unseed(apps, schema_editor):
    SurvivorshipRule = apps.get_model("profiles", "SurvivorshipRule")
    SurvivorshipRule.objects.filter(attribute="national_id").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("profiles", "0016_history_and_keys_without_constraints"),
    ]

    operations = [migrations.RunPython(seed, unseed)]
