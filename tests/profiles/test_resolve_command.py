"""``manage.py resolve --all``: every live record re-evaluated with the current identifier rules and model."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from ingestion.models import IdentifierType
from profiles.models import (
    Identity,
    MatchKey,
    MatchModelVersion,
    MatchSuggestion,
    MergeEvent,
    NeverLink,
    Profile,
    ProfileSplit,
    RecordChange,
    SourceRecord,
)
from tests.profiles.population import population


@pytest.fixture
def loaded_without_matching(crm, erp, ingest, settings):
    """The population loaded, then a model estimated but nothing matched with it yet (--no-backlog)."""
    settings.CDP_MATCH_TRAIN_MIN_RECORDS = 10**9
    crm_records, erp_records = population()
    ingest(crm, crm_records)
    ingest(erp, erp_records)
    call_command("match_train", "--no-backlog", stdout=StringIO())
    return crm_records, erp_records


def everything(snapshot) -> dict:
    return {
        **snapshot(),
        "suggestions": sorted(
            MatchSuggestion.objects.values_list("record_id", "candidate_record_id", "status")
        ),
        "never_links": sorted(NeverLink.objects.values_list("record_a_id", "record_b_id")),
        "splits": ProfileSplit.objects.count(),
        "keys": sorted(MatchKey.objects.values_list("record_id", "key")),
        "models": sorted(MatchModelVersion.objects.values_list("id", "active")),
    }


def resolve(*args) -> str:
    out = StringIO()
    call_command("resolve", "--all", *args, stdout=out)
    return out.getvalue()


def test_dry_run_reports_the_merges_and_changes_nothing(loaded_without_matching, resolution_state):
    before = everything(resolution_state)

    report = resolve("--dry-run")

    assert everything(resolution_state) == before
    assert "Dry run: nothing changed." in report
    merging = int(report.split("Would merge: ")[1].split(" profiles")[0])
    assert merging >= len(loaded_without_matching[1]) // 2  # most ERP customers are CRM customers too
    assert "resolve-all:probabilistic" in report and "Would split: 0 profiles" in report


def test_resolve_all_applies_the_plan(loaded_without_matching):
    profiles_before = Profile.objects.filter(status="active").count()

    report = resolve()

    assert "Applied:" in report
    merged = MergeEvent.objects.filter(rule="resolve-all:probabilistic")
    assert merged.exists()
    assert Profile.objects.filter(status="active").count() == profiles_before - merged.count()
    assert all(event.evidence["links"] and event.actor == "resolve --all" for event in merged)
    # a second run finds nothing left to do
    again = resolve("--dry-run")
    assert "Would merge: 0 profiles" in again and "Would split: 0 profiles" in again


def test_resolve_all_splits_a_profile_its_identifier_no_longer_justifies(crm, erp, ingest, settings):
    # given two people joined only by a shared address that staff have since blocked (a shop's email; the
    # records give no given name, which would have kept them apart)
    settings.CDP_MATCH_TRAIN_MIN_RECORDS = 10**9
    ingest(crm, [{"external_id": "C1", "attributes": {"last_name": "Lima", "email": "orders@shop.example"}}])
    ingest(erp, [{"external_id": "E1", "attributes": {"last_name": "Costa", "email": "orders@shop.example"}}])
    ana, rui = SourceRecord.objects.get(external_id="C1"), SourceRecord.objects.get(external_id="E1")
    assert ana.profile_id == rui.profile_id
    IdentifierType.objects.filter(name="email").update(blocked_values=["orders@shop.example"])

    report = resolve("--dry-run")
    assert "Would split: 1 profiles, 1 records moving" in report
    assert f"split {ana.profile_id}: keeps crm:C1; moves erp:E1" in report

    resolve()

    ana.refresh_from_db()
    rui.refresh_from_db()
    assert ana.profile_id != rui.profile_id
    assert ProfileSplit.objects.filter(profile_id=ana.profile_id, new_profile_id=rui.profile_id).exists()
    assert Profile.objects.get(pk=rui.profile_id).golden["last_name"] == "Costa"
    assert not Identity.objects.filter(profile_id=rui.profile_id, type="email").exists()
    assert RecordChange.objects.filter(record=rui).exists()


def test_resolve_needs_all():
    with pytest.raises(CommandError, match="--all"):
        call_command("resolve", stdout=StringIO())
