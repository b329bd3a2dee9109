"""Erasure: after it, no table holds the person's names or identifiers; only keyed hashes remain."""

import json

import pytest
from django.apps import apps
from django.core import serializers
from django.db import connection, transaction
from django.db.utils import DatabaseError

from consent.models import ConsentEntry, DataSubjectRequest, LedgerImmutable, SuppressionEntry
from consent.suppression import suppression_hash
from profiles.matching.records import MatchRecord
from profiles.models import MatchModelVersion, Profile, ProfileSplit
from profiles.services.unmerge import profile_unmerge

from ..conftest import ON_POSTGRES
from .conftest import ANN, BOB

pytestmark = pytest.mark.django_db

NEEDLES = (
    ANN["first_name"],
    ANN["last_name"],
    ANN["email"],
    "+442079460958",
    "79460958",  # the national digits; 4 alone can turn up by chance in a uuid or a hash
    "7946 0958",
    ANN["crm_id"],
    ANN["user_id"],
    ANN["anonymous_id"],
    "shop-ann",
    "ERP-9",
    "203.0.113.9",
)


def whole_database() -> str:
    """Every row of every model, serialised, and every table read raw (the ledger and anything without a
    model included)."""
    parts = [serializers.serialize("json", model._base_manager.all()) for model in apps.get_models()]
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            parts.append(repr(cursor.fetchall()))
    return "\n".join(parts).casefold()


def erase(dsr, identifier):
    opened = dsr("post", "", {"type": "erasure", "identifier": identifier}, expect=201)
    dsr("post", f"/{opened['id']}/verify", {"method": "reply from the address on file"})
    return dsr("post", f"/{opened['id']}/execute")


def test_nothing_of_the_person_is_left_anywhere(ann_everywhere, dsr):
    before = whole_database()
    assert all(needle.casefold() in before for needle in NEEDLES)  # the fixture really put her everywhere

    done = erase(dsr, {"type": "email", "value": ANN["email"]})

    after = whole_database()
    left = [needle for needle in NEEDLES if needle.casefold() in after]
    assert left == []
    assert BOB["email"] in after and BOB["last_name"].casefold() in after  # someone else is untouched
    counts = done["outcome"]
    assert counts["profiles"] == 2 and counts["events"] == 2 and counts["consent_entries"] == 2
    assert counts["inbound_records"] >= 5 and counts["consent_rejections"] == 1


def test_the_request_log_keeps_hashes_and_the_trail(ann_everywhere, dsr):
    done = erase(dsr, {"type": "email", "value": ANN["email"]})
    request = DataSubjectRequest.objects.get(pk=done["id"])
    assert request.identifiers == [["email", "hmac:" + suppression_hash("email", ANN["email"].lower())]]
    assert [e["action"] for e in done["events"]][-1] == "executed"
    hashes = set(SuppressionEntry.objects.values_list("identifier_type", "key_hash"))
    assert ("email", suppression_hash("email", ANN["email"].lower())) in hashes
    assert ("phone", suppression_hash("phone", "+442079460958")) in hashes
    assert ("crm", suppression_hash("crm", ANN["crm_id"])) in hashes
    assert ("anonymous_id", suppression_hash("anonymous_id", ANN["anonymous_id"])) in hashes


def test_other_requests_of_the_person_lose_their_identifiers_too(ann_everywhere, dsr):
    earlier = dsr(
        "post", "", {"type": "access", "identifier": {"type": "phone", "value": ANN["phone"]}}, expect=201
    )
    erase(dsr, {"type": "email", "value": ANN["email"]})
    assert "+442079460958" not in json.dumps(dsr("get", f"/{earlier['id']}"))


def test_erasing_someone_unknown_still_suppresses_the_identifier(vocabulary, dsr):
    done = erase(dsr, {"type": "email", "value": "Nobody@Example.com"})
    assert done["outcome"]["profiles"] == 0
    assert SuppressionEntry.objects.filter(key_hash=suppression_hash("email", "nobody@example.com")).exists()


def test_the_ledger_refuses_ordinary_deletes(ann_everywhere):
    with pytest.raises(LedgerImmutable):
        ConsentEntry.objects.filter(identifier_type="email").delete()
    with pytest.raises(LedgerImmutable):
        ConsentEntry.objects.first().delete()


@pytest.mark.skipif(not ON_POSTGRES, reason="the trigger exists on PostgreSQL only")
def test_the_database_refuses_ledger_deletes_without_the_erasure_flag(ann_everywhere):
    entry = ConsentEntry.objects.filter(identifier_value=BOB["email"]).first()
    table = ConsentEntry._meta.db_table
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE id = %s", [entry.pk])
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL cdp.erasure = 'on'")
        cursor.execute(f"UPDATE {table} SET decision = 'granted' WHERE id = %s", [entry.pk])
    with transaction.atomic():
        assert ConsentEntry.objects.filter(pk=entry.pk).erase() == 1
    # The erasure path switches the flag off again (SET LOCAL would otherwise last to the end of an outer
    # transaction, as it does here inside the test's).
    other = ConsentEntry.objects.first()
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE id = %s", [other.pk])


def test_profiles_of_other_people_survive(ann_everywhere, dsr):
    erase(dsr, {"type": "email", "value": ANN["email"]})
    assert list(Profile.objects.values_list("display_name", flat=True)) == [
        f"{BOB['first_name']} {BOB['last_name']}"
    ]


def test_her_split_and_her_values_in_the_matching_model_go_too(ann_everywhere, dsr):
    hers = MatchRecord.from_attributes(None, {"last_name": ANN["last_name"]}).last_name
    his = MatchRecord.from_attributes(None, {"last_name": BOB["last_name"]}).last_name
    model = MatchModelVersion.objects.create(
        params={"comparisons": [{"name": "last_name", "frequencies": {hers: 2, his: 3}}]}
    )
    profile = next(
        p for p in Profile.objects.filter(status="active") if p.records.filter(deleted_at=None).count() > 1
    )
    with transaction.atomic():
        profile_unmerge(
            profile_id=profile.pk,
            record_ids=[profile.records.filter(deleted_at=None).first().pk],
            actor="steward",
            reason="test",
        )
    assert ProfileSplit.objects.exists()

    done = erase(dsr, {"type": "email", "value": ANN["email"]})

    assert done["outcome"]["splits"] == 1 and not ProfileSplit.objects.exists()
    model.refresh_from_db()
    assert model.params["comparisons"][0]["frequencies"] == {his: 3}
    # (the half split off is, by the steward's word, somebody else: a request about Ann does not erase it)
