"""Probabilistic matching in the product: records without a deterministic hit are scored, as they arrive,
against the records sharing a blocking key with them, with a model estimated from the data itself."""

from io import StringIO

import pytest
from django.core.management import call_command

from ingestion.services import record_delete_receive
from profiles.models import (
    MatchKey,
    MatchModelVersion,
    MatchSuggestion,
    MergeEvent,
    NeverLink,
    Profile,
    RecordChange,
    SourceRecord,
)
from tests.profiles.population import population

JON = {
    "first_name": "Jon",
    "last_name": "Smith",
    "birth_date": "1980-04-12",
    "address_line1": "12 High St",
    "city": "Leeds",
    "postcode": "LS1 4AP",
    "email": "jon.smith@example.com",
}


@pytest.fixture
def population_loaded(crm, erp, ingest, settings):
    """A CRM and an ERP of a few hundred people, loaded before any model exists."""
    settings.CDP_MATCH_TRAIN_MIN_RECORDS = 10**9  # these tests train explicitly
    crm_records, erp_records = population()
    ingest(crm, crm_records)
    ingest(erp, erp_records)
    return crm_records, erp_records


@pytest.fixture
def trained(population_loaded):
    """The model estimated from that population with the command staff run (no hand-set weight)."""
    out = StringIO()
    call_command("match_train", stdout=out)
    return out.getvalue()


def send(ingest, source, external_id, **attributes):
    ingest(source, [{"external_id": external_id, "attributes": attributes}])
    return SourceRecord.objects.get(source=source, external_id=external_id)


def test_match_train_stores_the_model_estimated_from_the_live_records(trained):
    version = MatchModelVersion.objects.get()

    assert version.active
    assert version.records_used == SourceRecord.objects.filter(deleted_at__isnull=True).count()
    assert version.params["training"]["expected_matches"] >= 50
    # what was used and what was estimated is printed, per comparison and level
    assert f"from {version.records_used} of {version.records_used} live records" in trained
    assert "first_name      exact" in trained and "birth_date      day_month_swapped" in trained
    # a comparison no record has a value for weighs nothing, whatever EM started from
    gender = next(c for c in version.params["comparisons"] if c["name"] == "gender")
    assert gender["m"] == gender["u"]


def test_records_loaded_before_the_model_are_matched_once_it_exists(population_loaded):
    _, erp_records = population_loaded
    assert not MergeEvent.objects.exists()

    call_command("match_train", stdout=StringIO())

    merged = MergeEvent.objects.filter(rule="probabilistic")
    assert merged.count() > len(erp_records) // 2
    assert all(event.evidence["fields"] and event.evidence["record"] for event in merged)


def test_jon_and_jonathan_smith_at_the_same_address_link_with_an_explanation(trained, crm, erp, ingest):
    jon = send(ingest, crm, "C-JON", **JON)
    jonathan = send(
        ingest,
        erp,
        "E-JON",
        **{**JON, "first_name": "Jonathan", "address_line1": "12 High Street", "email": None},
    )

    jonathan.refresh_from_db()
    jon.refresh_from_db()
    assert jonathan.profile_id == jon.profile_id
    merge = MergeEvent.objects.get(
        merged__in=Profile.objects.filter(status="merged"),
        rule="probabilistic",
        evidence__record__external_id="E-JON",
    )
    evidence = merge.evidence
    assert evidence["outcome"] == "link" and evidence["probability"] >= 0.99
    assert evidence["candidate_record"]["external_id"] == "C-JON"
    levels = {field["field"]: field["level"] for field in evidence["fields"]}
    assert levels["address_line1"] == "exact" and levels["birth_date"] == "exact"
    assert levels["first_name"] != "disagree" and levels["email"] == "missing"
    total = evidence["prior_weight"] + sum(field["weight"] for field in evidence["fields"])
    assert evidence["total_weight"] == pytest.approx(total, abs=0.01)


def test_a_record_that_joins_a_profile_by_its_email_is_matched_too(trained, crm, erp, web, ingest):
    """The ERP account waits alone; a thin web sign-up shares nothing with it; the CRM contact joins the
    sign-up by its email and brings the name, birth date and address the ERP account matches."""
    jonathan = send(
        ingest,
        erp,
        "E-JON",
        **{**JON, "first_name": "Jonathan", "address_line1": "12 High Street", "email": None},
    )
    signup = send(ingest, web, "W-JON", email=JON["email"])
    assert signup.profile_id != jonathan.profile_id

    jon = send(ingest, crm, "C-JON", **JON)

    signup.refresh_from_db()
    jonathan.refresh_from_db()
    assert jon.profile_id == signup.profile_id == jonathan.profile_id
    assert MergeEvent.objects.filter(rule="probabilistic", evidence__record__external_id="C-JON").exists()


def test_a_record_bringing_its_profile_no_new_blocking_key_is_not_matched_again(
    trained, crm, erp, web, ingest, monkeypatch
):
    """Its candidates are those its profile's other records met already: scoring them again is pure cost.
    A record that brings a key the profile lacked (here an address) is matched."""
    from profiles.services import matching

    matched, keys = [], {}
    rows_link = matching._rows_link

    def spy(rows, *model):
        matched.extend(row.external_id for row in rows)
        keys.update({row.external_id: set(row.keys) for row in rows})
        return rows_link(rows, *model)

    monkeypatch.setattr(matching, "_rows_link", spy)
    jon = send(ingest, crm, "C-JON", **JON)
    signup = send(ingest, web, "W-JON", first_name="Jon", last_name="Smith", email=JON["email"])
    account = send(ingest, erp, "E-JON", email=JON["email"], address_line1="3 Park Road", city="Bradford")

    assert jon.profile_id == signup.profile_id == account.profile_id
    assert MatchKey.objects.filter(record=signup).exists()  # its keys are kept, only not matched again
    assert matched == ["C-JON", "E-JON"]
    # The ERP account looks candidates up through the keys it brings, not through the email Jon had.
    account_keys = set(MatchKey.objects.filter(record=account).values_list("key", flat=True))
    assert keys["E-JON"] < account_keys
    assert not keys["E-JON"] & set(MatchKey.objects.filter(record=jon).values_list("key", flat=True))


def test_a_household_member_is_not_linked(trained, crm, erp, ingest):
    anna = send(
        ingest,
        crm,
        "C-ANNA",
        first_name="Anna",
        last_name="Okonkwo",
        birth_date="1975-03-02",
        address_line1="7 Mill Lane",
        city="York",
        postcode="YO1 7HH",
    )
    peter = send(
        ingest,
        erp,
        "E-PETER",
        first_name="Peter",
        last_name="Okonkwo",
        birth_date="1948-11-23",
        address_line1="7 Mill Lane",
        city="York",
        postcode="YO1 7HH",
    )

    assert peter.profile_id != anna.profile_id
    suggestion = MatchSuggestion.objects.filter(record=peter, candidate_record=anna).first()
    if suggestion is not None:  # strong everywhere else: a steward may look, but nothing is merged
        assert "birth dates and given names disagree" in suggestion.explanation["reason"]


def test_a_record_confirmed_by_one_record_of_a_profile_joins_it_despite_another_unconfirmed(
    trained, crm, erp, ingest
):
    # one Matthew Green, known twice (one email): the ERP's record has no birth date, the national id says
    # it is the CRM's Matthew. A record "Holly Green" with his birth date, address and a typo-free surname
    # is him under another given name (FEBRL's duplicates): nothing contradicts it on the profile.
    home = {"last_name": "Okafor", "address_line1": "3 Larpent Street", "city": "York", "postcode": "YO1 7HH"}
    crm_matthew = send(
        ingest,
        crm,
        "C-MATT",
        first_name="Matthew",
        birth_date="1941-01-14",
        national_id="8051408",
        email="m.okafor@example.com",
        **home,
    )
    send(
        ingest,
        erp,
        "E-MATT",
        first_name="Matthew",
        national_id="8051408",
        email="m.okafor@example.com",
        **home,
    )
    holly = send(ingest, erp, "E-HOLLY", first_name="Holly", birth_date="1941-01-14", **home)

    crm_matthew.refresh_from_db()
    assert holly.profile_id == crm_matthew.profile_id
    assert SourceRecord.objects.filter(profile_id=holly.profile_id).count() == 3
    # the evidence says which objection a third record lifted
    erp_matthew = SourceRecord.objects.get(source=erp, external_id="E-MATT")
    merge = MergeEvent.objects.get(rule="probabilistic", evidence__record__external_id="E-HOLLY")
    assert merge.evidence["guard_bridged"] == [
        {
            "records": [holly.pk, erp_matthew.pk],
            "confirmed_by": crm_matthew.pk,
            "objection": "given names disagree and no birth date or identifier confirms one person",
        }
    ]


def test_a_mid_score_pair_goes_to_review_with_its_explanation(trained, crm, erp, ingest):
    # a nickname, a mistyped common surname, the town and postcode: likely, not certain
    william = send(
        ingest,
        crm,
        "C-WILL",
        first_name="William",
        last_name="Johnson",
        birth_date="1966-02-14",
        city="Leeds",
        postcode="LS1 4AP",
        email="w.johnson@example.com",
    )
    bill = send(
        ingest, erp, "E-BILL", first_name="Bill", last_name="Jonson", city="Leeds", postcode="LS1 4AP"
    )

    assert bill.profile_id != william.profile_id
    suggestion = MatchSuggestion.objects.get(record=bill, candidate_record=william)
    assert suggestion.status == "open"
    assert 0.5 <= suggestion.probability < 0.99
    assert suggestion.profile_id == bill.profile_id and suggestion.candidate_profile_id == william.profile_id
    explanation = suggestion.explanation
    assert explanation["outcome"] == "review" and "between the thresholds" in explanation["reason"]
    assert {f["field"]: f["level"] for f in explanation["fields"]}["first_name"] == "nickname_or_initial"


def test_a_never_link_pair_is_respected(trained, crm, erp, ingest):
    # given two records a steward said are different people (arrived while no model was active)
    MatchModelVersion.objects.update(active=False)
    jon = send(ingest, crm, "C-JON", **JON)
    other = send(ingest, erp, "E-JON", **{**JON, "email": None, "first_name": "Jonathan"})
    NeverLink.objects.create(record_a=jon, record_b=other, reason="review:rejected", actor="steward")
    MatchModelVersion.objects.update(active=True)

    # when the second changes and is matched again
    send(ingest, erp, "E-JON", **{**JON, "email": None, "first_name": "Jonathan", "middle_name": "Peter"})
    assert RecordChange.objects.filter(record=other, kind="updated").exists()

    other.refresh_from_db()
    assert other.profile_id != SourceRecord.objects.get(pk=jon.pk).profile_id
    assert not MatchSuggestion.objects.filter(record=other).exists()  # the steward already answered


def test_match_keys_follow_updates_and_deletions(crm, ingest, settings, django_capture_on_commit_callbacks):
    settings.CDP_MATCH_TRAIN_MIN_RECORDS = 10**9
    record = send(ingest, crm, "C-1", **JON)
    keys = set(MatchKey.objects.filter(record=record).values_list("key", flat=True))
    assert {"postcode:LS14AP", "birth_date:1980-4-12", "address:12|highstreet"} <= keys

    send(ingest, crm, "C-1", **{**JON, "postcode": "YO1 7HH", "address_line1": "3 Mill Lane"})

    keys = set(MatchKey.objects.filter(record=record).values_list("key", flat=True))
    assert "postcode:YO17HH" in keys and "address:3|milllane" in keys
    assert "postcode:LS14AP" not in keys and "address:12|highstreet" not in keys

    with django_capture_on_commit_callbacks(execute=True):
        record_delete_receive(source=crm, external_id="C-1")

    assert not MatchKey.objects.filter(record=record).exists()


def test_a_model_is_trained_automatically_once_enough_records_exist(crm, erp, ingest, settings):
    # the CRM alone holds no duplicates to learn from; with the ERP the data has enough
    settings.CDP_MATCH_TRAIN_MIN_RECORDS = 400
    crm_records, erp_records = population()

    ingest(crm, crm_records)
    ingest(erp, erp_records)

    version = MatchModelVersion.objects.filter(active=True).get()
    assert version.params["training"]["live_records"] >= 400
    assert MergeEvent.objects.filter(rule="probabilistic").exists()


def test_matching_a_chunk_takes_a_fixed_number_of_queries(trained, crm, erp, ingest):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def twins(prefix: str, count: int) -> int:
        people = [
            {"first_name": f"Zed{chr(97 + n % 26)}{chr(97 + n // 26)}", "last_name": f"Quorn{prefix}",
             "birth_date": f"19{50 + n}-0{1 + n % 9}-1{n % 9}", "address_line1": f"{n + 1} Kiln Road",
             "city": "Derby", "postcode": "DE1 2FS"}
            for n in range(count)
        ]  # fmt: skip
        ingest(crm, [{"external_id": f"C-{prefix}{n}", "attributes": p} for n, p in enumerate(people)])
        with CaptureQueriesContext(connection) as queries:
            ingest(erp, [{"external_id": f"E-{prefix}{n}", "attributes": p} for n, p in enumerate(people)])
        assert (
            MergeEvent.objects.filter(evidence__record__external_id__startswith=f"E-{prefix}").count()
            == count
        )
        return len(queries)

    # ten times the records and links in one chunk: the same queries (give or take a bulk insert split
    # by the database's limit on parameters), not one more per record or per merge
    assert twins("B", 40) <= twins("A", 4) + 4


def test_the_matchable_form_of_a_record_is_reused_until_the_record_changes(crm, ingest, settings):
    from profiles.services import matching

    settings.CDP_MATCH_TRAIN_MIN_RECORDS = 10**9
    record = send(ingest, crm, "C-1", **JON)
    records = SourceRecord.objects.filter(pk=record.pk)
    (first,) = matching._matchable_load(records)
    (again,) = matching._matchable_load(records)
    assert again[4] is first[4]  # unchanged: the same object, nothing parsed again

    # when the source changes the record, the next load sees the change
    send(ingest, crm, "C-1", **{**JON, "first_name": "Jonathan", "postcode": "LS2 9JT"})
    (changed,) = matching._matchable_load(records)

    assert changed[4] is not first[4]
    assert (changed[4].first_name, changed[4].postcode) == ("jonathan", "LS29JT")
