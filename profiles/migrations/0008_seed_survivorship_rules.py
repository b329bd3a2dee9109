"""Default survivorship rules of the canonical attributes; staff change them in the admin.

Why these defaults:

- Names (first, middle, last, full) and gender follow the **trust rank**: the system of record (CRM, ERP)
  holds the legal name; web forms and social profiles carry nicknames and typos, and a name is not more right
  for being newer.
- **Birth date** is the **most frequent** value: it never changes, so recency says nothing, while a typo or a
  placeholder date in one system is outvoted by the others that agree (ties: trust rank).
- **Email and phone** are the **most recent**: people change them, and the one stated last is the one that
  reaches them.
- **Address parts** (line 1 and 2, city, postcode, region, country) are the **most recent**: people move.
  Each part is decided on its own; a source that sends a new address sends its parts together, so they win
  together.
- **Company and job title** are the **most recent**: people change jobs.

Attributes without a rule (custom attributes) follow the trust rank, as before these rules existed.
"""

from django.db import migrations

DEFAULT_RULES = {
    "first_name": "trust_rank",
    "middle_name": "trust_rank",
    "last_name": "trust_rank",
    "full_name": "trust_rank",
    "gender": "trust_rank",
    "birth_date": "most_frequent",
    "email": "most_recent",
    "phone": "most_recent",
    "address_line1": "most_recent",
    "address_line2": "most_recent",
    "city": "most_recent",
    "postcode": "most_recent",
    "region": "most_recent",
    "country": "most_recent",
    "company": "most_recent",
    "job_title": "most_recent",
}


def seed(apps, schema_editor):
    SurvivorshipRule = apps.get_model("profiles", "SurvivorshipRule")
    existing = set(SurvivorshipRule.objects.values_list("attribute", flat=True))
    SurvivorshipRule.objects.bulk_create(
        SurvivorshipRule(attribute=attribute, rule=rule)
        for attribute, rule in DEFAULT_RULES.items()
        if attribute not in existing
    )


def unseed(apps, schema_editor):
    SurvivorshipRule = apps.get_model("profiles", "SurvivorshipRule")
    SurvivorshipRule.objects.filter(attribute__in=list(DEFAULT_RULES)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("profiles", "0007_matching_review_unmerge"),
    ]

    operations = [migrations.RunPython(seed, unseed)]
