"""Default purposes and channels. Staff edit them in the admin; what needs consent is a legal decision each
deployment should review (these defaults follow the GDPR/ePrivacy reading: marketing, personalisation and
profiling need consent; analytics rests on legitimate interest and can be objected to; sale/sharing is the
CCPA opt-out model)."""

from django.db import migrations

DEFAULT_PURPOSES = [
    {
        "slug": "marketing",
        "name": "Direct marketing",
        "requires_consent": True,
        "direct_marketing": True,
        "sale_sharing": False,
    },
    {
        "slug": "analytics",
        "name": "Analytics",
        "requires_consent": False,
        "direct_marketing": False,
        "sale_sharing": False,
    },
    {
        "slug": "personalisation",
        "name": "Personalisation",
        "requires_consent": True,
        "direct_marketing": False,
        "sale_sharing": False,
    },
    {
        "slug": "profiling",
        "name": "Profiling",
        "requires_consent": True,
        "direct_marketing": False,
        "sale_sharing": False,
    },
    {
        "slug": "sale_sharing",
        "name": "Sale or sharing of personal data",
        "requires_consent": False,
        "direct_marketing": False,
        "sale_sharing": True,
    },
]
DEFAULT_CHANNELS = [
    {"slug": "email", "name": "Email"},
    {"slug": "sms", "name": "SMS"},
    {"slug": "phone", "name": "Phone call"},
    {"slug": "post", "name": "Post"},
    {"slug": "push", "name": "Push notification"},
    {"slug": "web", "name": "Web / in-app"},
]


def seed(apps, schema_editor):
    Purpose = apps.get_model("consent", "Purpose")
    Channel = apps.get_model("consent", "Channel")
    for purpose in DEFAULT_PURPOSES:
        Purpose.objects.get_or_create(slug=purpose["slug"], defaults=purpose)
    for channel in DEFAULT_CHANNELS:
        Channel.objects.get_or_create(slug=channel["slug"], defaults=channel)


def unseed(apps, schema_editor):
    apps.get_model("consent", "Purpose").objects.filter(
        slug__in=[p["slug"] for p in DEFAULT_PURPOSES], entries__isnull=True
    ).delete()
    apps.get_model("consent", "Channel").objects.filter(
        slug__in=[c["slug"] for c in DEFAULT_CHANNELS], entries__isnull=True
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("consent", "0001_ledger")]
    operations = [migrations.RunPython(seed, unseed)]
