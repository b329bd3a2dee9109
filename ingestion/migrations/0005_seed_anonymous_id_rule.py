"""The anonymous id of the tracking API (Segment's anonymousId) is an identifier: it stitches a visitor's
activity before they log in to the person they turn out to be."""

from django.db import migrations


def seed(apps, schema_editor):
    apps.get_model("ingestion", "IdentifierType").objects.get_or_create(
        name="anonymous_id", defaults={"normaliser": "text"}
    )


def unseed(apps, schema_editor):
    apps.get_model("ingestion", "IdentifierType").objects.filter(name="anonymous_id", source=None).delete()


class Migration(migrations.Migration):
    dependencies = [("ingestion", "0004_tracking_events")]
    operations = [migrations.RunPython(seed, unseed)]
