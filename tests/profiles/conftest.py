"""Fixtures of the profile tests: identifier rules, and ways to look at the profiles that resolution built."""

import importlib

import pytest

from ingestion.models import IdentifierType, InboundRecord
from profiles.models import Identity, MergeEvent, Profile, RecordChange, ResolutionConflict, SourceRecord


@pytest.fixture
def seeded_identifier_rules(db):
    """The email and phone rules the data migration seeds.

    A transactional test empties every table when it ends, seeded rows included: tests that run after one (or
    are one) put the rules back first.
    """
    seed = importlib.import_module("ingestion.migrations.0002_seed_identifier_rules")
    for rule in seed.DEFAULT_RULES:
        IdentifierType.objects.get_or_create(name=rule["name"], defaults=rule)


@pytest.fixture
def identifier_rule(seeded_identifier_rules):
    """Declare an identifier type, as staff do in the admin."""

    def make(name: str, normaliser: str = "casefold", max_per_profile=None, blocked_values=()):
        return IdentifierType.objects.create(
            name=name,
            normaliser=normaliser,
            max_per_profile=max_per_profile,
            blocked_values=list(blocked_values),
        )

    return make


@pytest.fixture
def profile_of(db):
    """The profile a source record resolved to, fresh from the database."""

    def get(source, external_id: str) -> Profile:
        return Profile.objects.get(records__source=source, records__external_id=external_id)

    return get


@pytest.fixture
def identities_of(db):
    def get(profile: Profile) -> set[tuple[str, str]]:
        return set(Identity.objects.filter(profile=profile).values_list("type", "value"))

    return get


@pytest.fixture
def outcomes_of(db):
    """Outcome of each record of a batch, in request order."""

    def get(batch) -> list[str]:
        return list(
            InboundRecord.objects.filter(batch=batch).order_by("index").values_list("outcome", flat=True)
        )

    return get


@pytest.fixture
def resolution_state(db):
    """Everything resolution decides, in a comparable form (no bookkeeping timestamps of the records)."""

    def snapshot() -> dict:
        return {
            "profiles": sorted(
                Profile.objects.values_list(
                    "id", "status", "merged_into_id", "golden", "lineage", "display_name", "updated_at"
                ),
                key=lambda row: str(row[0]),
            ),
            "identities": sorted(Identity.objects.values_list("type", "value", "profile_id")),
            "records": sorted(
                SourceRecord.objects.values_list(
                    "source__slug",
                    "external_id",
                    "profile_id",
                    "attributes",
                    "identifiers",
                    "content_hash",
                    "version_at",
                    "deleted_at",
                ),
                key=lambda row: row[:2],
            ),
            "merges": sorted(
                MergeEvent.objects.values_list("survivor_id", "merged_id", "rule"),
                key=lambda row: (str(row[0]), str(row[1])),
            ),
            "conflicts": sorted(
                ResolutionConflict.objects.values_list(
                    "record__external_id", "profile_id", "identifier_type", "reason"
                ),
                key=lambda row: (row[0], str(row[1]), row[2], row[3]),
            ),
            "history": sorted(
                RecordChange.objects.values_list(
                    "record__external_id", "kind", "changed_fields", "occurred_at", "profile_id"
                ),
                key=lambda row: (row[0], row[1], row[3], str(row[4])),
            ),
        }

    return snapshot
