"""Deterministic identity resolution, end to end through the ingestion services: records in, profiles out."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ingestion.models import InboundRecord
from ingestion.services import batch_process, inbound_process, record_delete_receive, records_receive
from profiles.models import Identity, MergeEvent, Profile, ResolutionConflict, SourceRecord
from profiles.selectors import profile_detail, profile_get, profile_lookup

MERGED, ACTIVE, EMPTY = Profile.Status.MERGED, Profile.Status.ACTIVE, Profile.Status.EMPTY


@pytest.fixture(autouse=True)
def _rules(seeded_identifier_rules):
    """Every test here relies on the seeded email and phone rules."""


@pytest.fixture
def delete(django_capture_on_commit_callbacks):
    """A source deleted a record: receive the deletion and run the processing it schedules."""

    def run(source, external_id):
        with django_capture_on_commit_callbacks(execute=True):
            return record_delete_receive(source=source, external_id=external_id)

    return run


def active_profiles():
    return list(Profile.objects.filter(status=ACTIVE))


# --- Normalised identifiers ----------------------------------------------------------------------------


def test_emails_match_whatever_their_case_and_surrounding_spaces(
    make_source, ingest, profile_of, identities_of
):
    crm, web = make_source("crm", "crm"), make_source("web", "web")

    ingest(crm, [{"external_id": "C1", "attributes": {"email": "  Ana.Lima@Example.ORG "}}])
    ingest(web, [{"external_id": "W1", "identifiers": {"email": "ana.lima@example.org"}}])

    profile = profile_of(crm, "C1")
    assert profile_of(web, "W1") == profile
    assert ("email", "ana.lima@example.org") in identities_of(profile)
    assert profile.golden["email"] == "ana.lima@example.org"


@pytest.mark.parametrize(
    ("region", "national", "international", "e164"),
    [
        ("GB", "020 7946 0018", "+44 20 7946 0018", "+442079460018"),
        ("US", "(202) 555-0143", "+1 202-555-0143", "+12025550143"),
        ("FR", "01 23 45 67 89", "+33 1 23 45 67 89", "+33123456789"),
    ],
)
def test_a_national_phone_matches_its_international_form_in_the_source_region(
    make_source, ingest, profile_of, identities_of, region, national, international, e164
):
    local = make_source("local", "crm", default_region=region)
    other = make_source("other", "web", default_region="US" if region != "US" else "GB")

    ingest(local, [{"external_id": "L1", "attributes": {"phone": national}}])
    ingest(other, [{"external_id": "O1", "attributes": {"phone": international}}])

    profile = profile_of(local, "L1")
    assert profile_of(other, "O1") == profile
    assert ("phone", e164) in identities_of(profile)
    assert profile_lookup(type="phone", value=national, region=region) == profile


# --- Linking -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("crm_first", [True, False], ids=["crm-first", "erp-first"])
def test_a_record_naming_another_sources_id_joins_that_record_whichever_arrives_first(
    make_source, ingest, profile_of, identities_of, crm_first
):
    crm, erp = make_source("crm", "crm"), make_source("erp", "erp")
    crm_batch = (crm, [{"external_id": "C-1", "attributes": {"first_name": "Ana"}}])
    erp_batch = (
        erp,
        [{"external_id": "E-7", "attributes": {"company": "Acme"}, "identifiers": {"crm": "C-1"}}],
    )

    for source, records in [crm_batch, erp_batch] if crm_first else [erp_batch, crm_batch]:
        ingest(source, records)

    profile = profile_of(crm, "C-1")
    assert profile_of(erp, "E-7") == profile
    assert active_profiles() == [profile]
    assert identities_of(profile) == {("crm", "C-1"), ("erp", "E-7")}
    assert profile.golden == {"company": "Acme", "first_name": "Ana"}
    assert profile_lookup(type="crm", value=" C-1 ") == profile


def test_a_declared_identifier_type_links_records_of_different_sources(
    make_source, ingest, profile_of, identities_of, identifier_rule
):
    identifier_rule("loyalty_id", normaliser="casefold")
    shop, app = make_source("shop", "web"), make_source("app", "web")

    ingest(shop, [{"external_id": "S1", "identifiers": {"loyalty_id": "LY-42"}}])
    ingest(app, [{"external_id": "A1", "identifiers": {"loyalty_id": " ly-42"}}])

    profile = profile_of(shop, "S1")
    assert profile_of(app, "A1") == profile
    assert ("loyalty_id", "ly-42") in identities_of(profile)


@pytest.mark.parametrize("same_batch", [True, False])
def test_duplicate_records_inside_one_source_merge(make_source, ingest, profile_of, same_batch):
    crm = make_source("crm", "crm")
    first = {"external_id": "C1", "attributes": {"first_name": "Ana", "email": "ana@example.org"}}
    second = {"external_id": "C2", "attributes": {"last_name": "Lima", "email": "ANA@example.org"}}

    if same_batch:
        ingest(crm, [first, second])
    else:
        ingest(crm, [first])
        ingest(crm, [second])

    profile = profile_of(crm, "C1")
    assert profile_of(crm, "C2") == profile
    assert active_profiles() == [profile]
    assert profile.golden["first_name"] == "Ana" and profile.golden["last_name"] == "Lima"


def test_a_record_linking_two_profiles_merges_them_and_leaves_a_tombstone(
    make_source, ingest, profile_of, identities_of, staff_client
):
    crm, shop = make_source("crm", "crm"), make_source("shop", "web")
    ingest(crm, [{"external_id": "C1", "attributes": {"first_name": "Ana", "email": "ana@example.org"}}])
    ingest(shop, [{"external_id": "S1", "attributes": {"phone": "+1 202 555 0143", "city": "Leeds"}}])
    by_email, by_phone = profile_of(crm, "C1"), profile_of(shop, "S1")
    assert by_email != by_phone

    ingest(shop, [{"external_id": "S2", "attributes": {"email": "ana@example.org", "phone": "2025550143"}}])

    survivor = profile_of(shop, "S2")
    assert profile_of(crm, "C1") == profile_of(shop, "S1") == survivor
    assert active_profiles() == [survivor]
    merged = by_phone if survivor == by_email else by_email
    merged.refresh_from_db()
    assert merged.status == MERGED
    assert merged.merged_into_id == survivor.pk
    assert not merged.identities.exists() and not merged.records.exists()
    assert profile_get(profile_id=merged.pk) == survivor
    assert identities_of(survivor) == {
        ("crm", "C1"),
        ("shop", "S1"),
        ("shop", "S2"),
        ("email", "ana@example.org"),
        ("phone", "+12025550143"),
    }
    assert survivor.golden["first_name"] == "Ana" and survivor.golden["city"] == "Leeds"

    event = MergeEvent.objects.get()
    assert (event.survivor_id, event.merged_id) == (survivor.pk, merged.pk)
    assert event.rule == "deterministic:email+phone"
    assert event.evidence["record"] == {"source": "shop", "external_id": "S2"}
    evidence_identifiers = {i for link in event.evidence["links"] for i in link["identifiers"]}
    assert evidence_identifiers == {"email:ana@example.org", "phone:+12025550143"}
    assert event.created_at is not None

    # An id handed out before the merge keeps working and answers with the survivor.
    response = staff_client.get(f"/api/v1/profiles/{merged.pk}")
    assert response.status_code == 200
    assert response.json()["id"] == str(survivor.pk)
    assert [m["merged"] for m in response.json()["merges"]] == [str(merged.pk)]


def test_a_merge_event_is_immutable(make_source, ingest):
    crm = make_source("crm", "crm")
    ingest(crm, [{"external_id": "C1", "attributes": {"email": "ana@example.org"}}])
    ingest(crm, [{"external_id": "C2", "attributes": {"phone": "+12025550143"}}])
    ingest(crm, [{"external_id": "C3", "attributes": {"email": "ana@example.org", "phone": "+12025550143"}}])
    event = MergeEvent.objects.get()
    rule = event.rule

    event.rule = "manual"
    with pytest.raises(ValueError, match="immutable"):
        event.save()

    assert MergeEvent.objects.get().rule == rule


@pytest.mark.parametrize("same_batch", [True, False])
def test_merges_are_transitive(make_source, ingest, profile_of, same_batch):
    crm, web = make_source("crm", "crm"), make_source("web", "web")
    a = {"external_id": "A", "attributes": {"email": "ana@example.org"}}
    c = {"external_id": "C", "attributes": {"phone": "+12025550143"}}
    b = {"external_id": "B", "attributes": {"email": "ana@example.org", "phone": "+1 (202) 555-0143"}}

    if same_batch:
        ingest(crm, [a, c])
        ingest(web, [b])
    else:
        ingest(crm, [a])
        ingest(crm, [c])
        ingest(web, [b])

    profile = profile_of(crm, "A")
    assert profile_of(web, "B") == profile_of(crm, "C") == profile
    assert active_profiles() == [profile]


def test_a_chain_of_merges_ends_on_one_profile_and_every_tombstone_points_at_the_last_survivor(
    make_source, ingest, profile_of
):
    crm, web = make_source("crm", "crm"), make_source("web", "web")
    # Created newest last, so that each merge makes the previous survivor a tombstone in turn.
    ingest(crm, [{"external_id": "C", "attributes": {"email": "c@example.org"}}])
    ingest(crm, [{"external_id": "B", "attributes": {"email": "b@example.org"}}])
    ingest(crm, [{"external_id": "A", "attributes": {"email": "a@example.org"}}])
    pa, pb, pc = profile_of(crm, "A"), profile_of(crm, "B"), profile_of(crm, "C")

    ingest(web, [{"external_id": "AB", "identifiers": {"email": ["a@example.org", "b@example.org"]}}])
    ingest(web, [{"external_id": "BC", "identifiers": {"email": ["b@example.org", "c@example.org"]}}])

    survivor = profile_of(web, "BC")
    assert active_profiles() == [survivor]
    assert {profile_of(crm, x) for x in "ABC"} == {survivor}
    tombstones = Profile.objects.filter(status=MERGED)
    assert {p.pk for p in tombstones} == {pa.pk, pb.pk, pc.pk} - {survivor.pk}
    for tombstone in tombstones:
        assert tombstone.merged_into_id == survivor.pk
        assert profile_get(profile_id=tombstone.pk) == survivor
    assert MergeEvent.objects.count() == 2


def test_records_of_one_batch_that_share_identifiers_end_on_one_profile(make_source, ingest, profile_of):
    crm = make_source("crm", "crm")
    ingest(
        crm,
        [
            {"external_id": "R1", "attributes": {"email": "a@example.org"}},
            {"external_id": "R2", "attributes": {"phone": "+12025550143"}},
            {"external_id": "R3", "attributes": {"email": "b@example.org"}},
            {"external_id": "R4", "attributes": {"email": "a@example.org", "phone": "+12025550143"}},
            {"external_id": "R5", "identifiers": {"email": "b@example.org", "phone": "202-555-0143"}},
            {"external_id": "X", "attributes": {"email": "someone.else@example.org"}},
        ],
    )

    person = profile_of(crm, "R1")
    assert {profile_of(crm, x) for x in ("R1", "R2", "R3", "R4", "R5")} == {person}
    assert profile_of(crm, "X") != person
    assert len(active_profiles()) == 2


@pytest.mark.parametrize("chunk_size", [1, 2])
def test_records_of_one_batch_end_on_one_profile_across_processing_chunks(
    make_source, ingest, profile_of, settings, chunk_size
):
    settings.CDP_RESOLVE_CHUNK_SIZE = chunk_size
    crm = make_source("crm", "crm")
    ingest(
        crm,
        [
            {"external_id": "R1", "attributes": {"email": "a@example.org"}},
            {"external_id": "R2", "attributes": {"phone": "+12025550143"}},
            {"external_id": "R3", "attributes": {"email": "b@example.org"}},
            {"external_id": "R4", "attributes": {"email": "a@example.org", "phone": "+12025550143"}},
            {"external_id": "R5", "identifiers": {"email": "b@example.org", "phone": "202-555-0143"}},
        ],
    )

    person = profile_of(crm, "R1")
    assert {profile_of(crm, x) for x in ("R1", "R2", "R3", "R4", "R5")} == {person}
    assert active_profiles() == [person]
    for tombstone in Profile.objects.filter(status=MERGED):
        assert profile_get(profile_id=tombstone.pk) == person


# --- Identifier rules ----------------------------------------------------------------------------------


def test_a_link_that_would_break_an_identifier_limit_is_refused_and_kept_for_review(
    make_source, ingest, profile_of, identities_of, identifier_rule
):
    identifier_rule("loyalty_id", max_per_profile=1)
    crm, shop = make_source("crm", "crm"), make_source("shop", "web")
    ingest(
        crm,
        [
            {
                "external_id": "C1",
                "attributes": {"email": "ana@example.org"},
                "identifiers": {"loyalty_id": "L-1"},
            },
            {
                "external_id": "C2",
                "attributes": {"email": "ben@example.org"},
                "identifiers": {"loyalty_id": "L-2"},
            },
        ],
    )
    ana, ben = profile_of(crm, "C1"), profile_of(crm, "C2")
    assert ana != ben

    ingest(shop, [{"external_id": "S1", "identifiers": {"email": ["ana@example.org", "ben@example.org"]}}])

    own = profile_of(shop, "S1")
    assert own not in (ana, ben)
    assert profile_of(crm, "C1") == ana and profile_of(crm, "C2") == ben
    assert {p.pk for p in active_profiles()} == {ana.pk, ben.pk, own.pk}
    assert not MergeEvent.objects.exists()
    assert identities_of(ana) == {("crm", "C1"), ("email", "ana@example.org"), ("loyalty_id", "l-1")}
    assert identities_of(ben) == {("crm", "C2"), ("email", "ben@example.org"), ("loyalty_id", "l-2")}
    assert identities_of(own) == {("shop", "S1")}
    conflict = ResolutionConflict.objects.get()
    assert conflict.record == SourceRecord.objects.get(source=shop, external_id="S1")
    assert conflict.profile_id == own.pk
    assert sorted(conflict.other_profiles) == sorted([str(ana.pk), str(ben.pk)])
    assert conflict.identifier_type == "loyalty_id"
    assert "loyalty_id" in conflict.reason and "limit 1" in conflict.reason
    assert conflict.status == ResolutionConflict.Status.OPEN


def test_an_existing_record_that_would_link_two_limited_profiles_stays_where_it_is(
    make_source, ingest, profile_of, identities_of, identifier_rule
):
    identifier_rule("loyalty_id", max_per_profile=1)
    crm, shop = make_source("crm", "crm"), make_source("shop", "web")
    ingest(
        crm,
        [
            {
                "external_id": "C1",
                "attributes": {"email": "ana@example.org"},
                "identifiers": {"loyalty_id": "L-1"},
            }
        ],
    )
    ingest(
        crm,
        [
            {
                "external_id": "C2",
                "attributes": {"email": "ben@example.org"},
                "identifiers": {"loyalty_id": "L-2"},
            }
        ],
    )
    ingest(shop, [{"external_id": "S1", "attributes": {"first_name": "Ana", "email": "ana@example.org"}}])
    ana, ben = profile_of(crm, "C1"), profile_of(crm, "C2")
    assert profile_of(shop, "S1") == ana

    ingest(shop, [{"external_id": "S1", "identifiers": {"email": ["ana@example.org", "ben@example.org"]}}])

    assert profile_of(shop, "S1") == ana and profile_of(crm, "C2") == ben
    assert not MergeEvent.objects.exists()
    assert ("email", "ben@example.org") in identities_of(ben)
    conflict = ResolutionConflict.objects.get()
    assert (conflict.profile_id, conflict.other_profiles, conflict.identifier_type) == (
        ana.pk,
        [str(ben.pk)],
        "loyalty_id",
    )


def test_a_merge_that_would_exceed_the_email_limit_is_refused(make_source, ingest, profile_of):
    crm, web = make_source("crm", "crm"), make_source("web", "web")
    ingest(crm, [{"external_id": "C1", "identifiers": {"email": [f"a{i}@example.org" for i in range(3)]}}])
    ingest(crm, [{"external_id": "C2", "identifiers": {"email": [f"b{i}@example.org" for i in range(3)]}}])

    ingest(web, [{"external_id": "W1", "identifiers": {"email": ["a0@example.org", "b0@example.org"]}}])

    assert len({profile_of(crm, "C1"), profile_of(crm, "C2"), profile_of(web, "W1")}) == 3
    assert not MergeEvent.objects.exists()
    assert ResolutionConflict.objects.get().identifier_type == "email"


@pytest.mark.parametrize(
    ("region", "attributes"),
    [
        ("US", {"email": "test@example.com"}),
        ("US", {"email": "  TEST@Example.COM "}),
        ("US", {"email": "noreply@example.com"}),
        ("US", {"phone": "0000000000"}),
        ("US", {"phone": "000-000-0000"}),
        ("US", {"phone": "(123) 456-7890"}),
        ("GB", {"phone": "0000000000"}),
        ("GB", {"phone": "9999999999"}),
    ],
)
def test_blocked_values_never_link_people(make_source, ingest, profile_of, region, attributes):
    crm, web = (
        make_source("crm", "crm", default_region=region),
        make_source("web", "web", default_region=region),
    )

    ingest(crm, [{"external_id": "C1", "attributes": {"first_name": "Ana", **attributes}}])
    ingest(web, [{"external_id": "W1", "attributes": {"first_name": "Ben", **attributes}}])

    assert profile_of(crm, "C1") != profile_of(web, "W1")
    assert len(active_profiles()) == 2
    (kind,) = attributes
    assert not Identity.objects.filter(type=kind).exists()
    # The record itself is kept as sent: only the link is refused.
    assert kind in SourceRecord.objects.get(source=crm, external_id="C1").attributes


def test_a_value_blocked_by_staff_stops_linking_while_other_identifiers_still_link(
    make_source, ingest, profile_of, identities_of
):
    from ingestion.models import IdentifierType

    IdentifierType.objects.filter(name="email").update(blocked_values=["info@shared-office.example"])
    crm, web = make_source("crm", "crm"), make_source("web", "web")

    ingest(crm, [{"external_id": "C1", "attributes": {"email": "info@shared-office.example"}}])
    ingest(web, [{"external_id": "W1", "attributes": {"email": "Info@Shared-Office.example"}}])
    assert profile_of(crm, "C1") != profile_of(web, "W1")

    ingest(
        crm,
        [
            {
                "external_id": "C2",
                "attributes": {"email": "info@shared-office.example", "phone": "+12025550143"},
            }
        ],
    )
    ingest(
        web,
        [{"external_id": "W2", "attributes": {"email": "info@shared-office.example", "phone": "2025550143"}}],
    )
    assert profile_of(crm, "C2") == profile_of(web, "W2")
    assert ("email", "info@shared-office.example") not in identities_of(profile_of(crm, "C2"))
    event = MergeEvent.objects.filter(survivor=profile_of(crm, "C2"))
    assert not event.exists()  # W2 joined C2's profile through the phone; nothing was merged


# --- Golden record -------------------------------------------------------------------------------------


def test_golden_values_come_from_the_most_trusted_source_with_lineage_and_every_candidate_visible(
    make_source, ingest, profile_of
):
    crm, web = make_source("crm", "crm"), make_source("web", "web")
    assert crm.trust_rank > web.trust_rank
    ingest(
        web,
        [
            {
                "external_id": "W1",
                "updated_at": "2024-06-01T10:00:00Z",
                "attributes": {"first_name": "Annie", "email": "ana@example.org", "city": "Leeds"},
            }
        ],
    )
    ingest(
        crm,
        [
            {
                "external_id": "C1",
                "updated_at": "2024-01-01T10:00:00Z",
                "attributes": {"first_name": "Ana", "email": "ana@example.org"},
            }
        ],
    )

    profile = profile_of(crm, "C1")
    crm_record = SourceRecord.objects.get(source=crm, external_id="C1")
    web_record = SourceRecord.objects.get(source=web, external_id="W1")
    assert profile.golden == {"city": "Leeds", "email": "ana@example.org", "first_name": "Ana"}
    assert profile.lineage["first_name"] == {
        "source": "crm",
        "record": crm_record.pk,
        "external_id": "C1",
        "observed_at": "2024-01-01T10:00:00+00:00",
        "rule": "trust_rank",
    }
    assert profile.lineage["city"]["source"] == "web" and profile.lineage["city"]["record"] == web_record.pk

    detail = profile_detail(profile=profile)
    first_name = detail["attributes"]["first_name"]
    assert (first_name["value"], first_name["source"]) == ("Ana", "crm")
    assert [(c["value"], c["source"]) for c in first_name["candidates"]] == [("Ana", "crm"), ("Annie", "web")]
    assert {r["external_id"] for r in detail["records"]} == {"C1", "W1"}


@pytest.mark.parametrize("newer_first", [True, False], ids=["older-arrives-late", "newer-arrives-late"])
def test_between_sources_of_the_same_rank_the_most_recent_value_wins_whatever_the_arrival_order(
    make_source, ingest, profile_of, newer_first
):
    eu, us = make_source("crm_eu", "crm", trust_rank=80), make_source("crm_us", "crm", trust_rank=80)
    newer = (
        eu,
        [
            {
                "external_id": "E1",
                "updated_at": "2024-06-01T00:00:00Z",
                "attributes": {"email": "ana@example.org", "job_title": "CTO"},
            }
        ],
    )
    older = (
        us,
        [
            {
                "external_id": "U1",
                "updated_at": "2024-01-01T00:00:00Z",
                "attributes": {"email": "ana@example.org", "job_title": "Engineer"},
            }
        ],
    )

    for source, records in [newer, older] if newer_first else [older, newer]:
        ingest(source, records)

    profile = profile_of(eu, "E1")
    assert profile_of(us, "U1") == profile
    assert profile.golden["job_title"] == "CTO"
    assert profile.lineage["job_title"]["source"] == "crm_eu"
    assert profile.lineage["job_title"]["observed_at"] == "2024-06-01T00:00:00+00:00"


def test_an_older_version_of_a_record_arriving_late_is_ignored(make_source, ingest, profile_of, outcomes_of):
    crm = make_source("crm", "crm")
    ingest(
        crm,
        [
            {
                "external_id": "C1",
                "updated_at": "2024-06-01T00:00:00Z",
                "attributes": {"first_name": "Ana", "email": "new@example.org"},
            }
        ],
    )

    receipt = ingest(
        crm,
        [
            {
                "external_id": "C1",
                "updated_at": "2024-01-01T00:00:00Z",
                "attributes": {"first_name": "Anna", "email": "old@example.org"},
            }
        ],
    )

    assert outcomes_of(receipt.batch) == ["stale"]
    profile = profile_of(crm, "C1")
    assert profile.golden == {"email": "new@example.org", "first_name": "Ana"}
    assert not Identity.objects.filter(value="old@example.org").exists()


def test_a_lower_ranked_source_fills_attributes_the_trusted_one_lacks_and_empty_values_never_win(
    make_source, ingest, profile_of
):
    crm, survey = make_source("crm", "crm"), make_source("survey", "survey")
    ingest(
        survey,
        [
            {
                "external_id": "S1",
                "attributes": {"email": "ana@example.org", "first_name": "Ana", "city": "Leeds"},
            }
        ],
    )
    ingest(
        crm,
        [{"external_id": "C1", "attributes": {"email": "ana@example.org", "first_name": "  ", "city": None}}],
    )

    profile = profile_of(crm, "C1")
    assert profile.golden["first_name"] == "Ana" and profile.golden["city"] == "Leeds"
    assert profile.lineage["first_name"]["source"] == "survey"


# --- Changes and deletions -----------------------------------------------------------------------------


def test_changing_a_records_email_drops_the_old_email_identity(
    make_source, ingest, profile_of, identities_of
):
    crm, web = make_source("crm", "crm"), make_source("web", "web")
    ingest(crm, [{"external_id": "C1", "attributes": {"first_name": "Ana", "email": "old@example.org"}}])
    profile = profile_of(crm, "C1")

    ingest(crm, [{"external_id": "C1", "attributes": {"first_name": "Ana", "email": "new@example.org"}}])

    assert profile_of(crm, "C1") == profile
    assert identities_of(profile) == {("crm", "C1"), ("email", "new@example.org")}
    assert profile_lookup(type="email", value="old@example.org") is None
    assert profile_of(crm, "C1").golden["email"] == "new@example.org"
    # The old address no longer belongs to Ana: whoever uses it next is someone else.
    ingest(web, [{"external_id": "W1", "attributes": {"email": "old@example.org"}}])
    assert profile_of(web, "W1") != profile


def test_a_record_whose_new_email_merges_it_elsewhere_leaves_its_old_email_behind(
    make_source, ingest, profile_of, identities_of
):
    crm, web = make_source("crm", "crm"), make_source("web", "web")
    ingest(crm, [{"external_id": "C1", "attributes": {"first_name": "Ana", "email": "old@example.org"}}])
    ingest(web, [{"external_id": "W1", "attributes": {"first_name": "Ana", "email": "new@example.org"}}])
    assert profile_of(crm, "C1") != profile_of(web, "W1")

    ingest(crm, [{"external_id": "C1", "attributes": {"first_name": "Ana", "email": "new@example.org"}}])

    profile = profile_of(crm, "C1")
    assert profile_of(web, "W1") == profile
    assert identities_of(profile) == {("crm", "C1"), ("web", "W1"), ("email", "new@example.org")}
    assert profile_lookup(type="email", value="old@example.org") is None


def test_changing_a_records_email_keeps_the_old_one_while_another_record_carries_it(
    make_source, ingest, profile_of, identities_of
):
    crm, web = make_source("crm", "crm"), make_source("web", "web")
    ingest(crm, [{"external_id": "C1", "attributes": {"email": "old@example.org"}}])
    ingest(web, [{"external_id": "W1", "attributes": {"email": "old@example.org"}}])
    profile = profile_of(crm, "C1")

    ingest(crm, [{"external_id": "C1", "attributes": {"email": "new@example.org"}}])

    assert profile_of(web, "W1") == profile_of(crm, "C1") == profile
    assert {("email", "old@example.org"), ("email", "new@example.org")} <= identities_of(profile)
    assert profile_lookup(type="email", value="old@example.org") == profile


def test_deleting_a_record_removes_only_what_that_record_gave(
    make_source, ingest, delete, profile_of, identities_of, outcomes_of
):
    crm, web = make_source("crm", "crm"), make_source("web", "web")
    ingest(
        crm,
        [
            {
                "external_id": "C1",
                "attributes": {"first_name": "Ana", "email": "ana@example.org", "job_title": "CTO"},
            }
        ],
    )
    ingest(
        web,
        [
            {
                "external_id": "W1",
                "attributes": {
                    "first_name": "Annie",
                    "email": "ana@example.org",
                    "phone": "+12025550143",
                    "city": "Leeds",
                },
            }
        ],
    )
    profile = profile_of(crm, "C1")
    assert profile.golden["first_name"] == "Ana"

    batch = delete(crm, "C1")

    assert outcomes_of(batch) == ["deleted"]
    profile.refresh_from_db()
    assert profile.status == ACTIVE
    assert profile.golden == {
        "city": "Leeds",
        "email": "ana@example.org",
        "first_name": "Annie",
        "phone": "+12025550143",
    }
    assert {lineage["source"] for lineage in profile.lineage.values()} == {"web"}
    assert identities_of(profile) == {("web", "W1"), ("email", "ana@example.org"), ("phone", "+12025550143")}
    deleted = SourceRecord.objects.get(source=crm, external_id="C1")
    assert deleted.deleted_at is not None and deleted.profile_id is None
    detail = profile_detail(profile=profile)
    assert [r["external_id"] for r in detail["records"]] == ["W1"]
    assert [c["value"] for c in detail["attributes"]["first_name"]["candidates"]] == ["Annie"]

    delete(web, "W1")

    profile.refresh_from_db()
    assert profile.status == EMPTY
    assert profile.golden == {}
    assert identities_of(profile) == set()
    assert profile_lookup(type="email", value="ana@example.org") is None


def test_a_deletion_received_after_the_record_wins_even_when_the_sources_clock_runs_ahead(
    make_source, ingest, delete, outcomes_of
):
    """Many systems send local times without an offset, read as UTC: a source two hours east of UTC stamps
    its changes two hours "in the future". A deletion received after the record must still delete it."""
    crm = make_source("crm", "crm")
    local_time = (timezone.now() + timedelta(hours=2)).replace(tzinfo=None, microsecond=0)
    ingest(
        crm,
        [
            {
                "external_id": "C1",
                "updated_at": local_time.isoformat(),
                "attributes": {"email": "ana@example.org"},
            }
        ],
    )

    batch = delete(crm, "C1")

    assert outcomes_of(batch) == ["deleted"]
    assert SourceRecord.objects.get(source=crm, external_id="C1").deleted_at is not None
    assert profile_lookup(type="email", value="ana@example.org") is None


@pytest.mark.parametrize("update_processed_first", [True, False])
def test_a_deletion_received_after_an_update_wins_whichever_a_worker_processes_first(
    make_source, ingest, profile_of, update_processed_first
):
    """The source changed the record, then deleted it; both wait in the queue and two workers take them in
    either order. The source's clock runs two hours ahead (local time without an offset). The record must end
    deleted: the deletion came last."""
    crm = make_source("crm", "crm")
    ingest(crm, [{"external_id": "C1", "attributes": {"email": "ana@example.org"}}])
    local_time = (timezone.now() + timedelta(hours=2)).replace(tzinfo=None, microsecond=0)
    update = _receive(
        crm,
        [
            {
                "external_id": "C1",
                "updated_at": local_time.isoformat(),
                "attributes": {"email": "ana@work.example"},
            }
        ],
    )
    deletion = record_delete_receive(source=crm, external_id="C1")  # queued, not processed

    for batch in [update, deletion] if update_processed_first else [deletion, update]:
        batch_process(batch_id=batch.pk)

    record = SourceRecord.objects.get(source=crm, external_id="C1")
    assert record.deleted_at is not None and record.profile_id is None
    assert profile_lookup(type="email", value="ana@work.example") is None


def test_a_deleted_record_sent_again_comes_back(make_source, ingest, delete, profile_of):
    crm = make_source("crm", "crm")
    ingest(crm, [{"external_id": "C1", "attributes": {"email": "ana@example.org"}}])
    delete(crm, "C1")

    ingest(crm, [{"external_id": "C1", "attributes": {"email": "ana@example.org"}}])

    profile = profile_of(crm, "C1")
    assert profile.status == ACTIVE
    assert profile_lookup(type="email", value="ana@example.org") == profile


# --- One batch -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1, 250])
@pytest.mark.parametrize("newest_first", [True, False])
def test_within_a_batch_only_the_newest_version_of_a_record_counts(
    make_source, ingest, profile_of, identities_of, outcomes_of, settings, chunk_size, newest_first
):
    settings.CDP_RESOLVE_CHUNK_SIZE = chunk_size
    crm = make_source("crm", "crm")
    old = {
        "external_id": "C1",
        "updated_at": "2024-01-01T00:00:00Z",
        "attributes": {"first_name": "Anna", "email": "old@example.org"},
    }
    new = {
        "external_id": "C1",
        "updated_at": "2024-06-01T00:00:00Z",
        "attributes": {"first_name": "Ana", "email": "new@example.org"},
    }

    receipt = ingest(crm, [new, old] if newest_first else [old, new])

    assert SourceRecord.objects.filter(source=crm).count() == 1
    profile = profile_of(crm, "C1")
    assert active_profiles() == [profile]
    assert profile.golden == {"email": "new@example.org", "first_name": "Ana"}
    assert identities_of(profile) == {("crm", "C1"), ("email", "new@example.org")}
    if chunk_size > 1:
        assert outcomes_of(receipt.batch) == (
            ["created", "superseded"] if newest_first else ["superseded", "created"]
        )


def test_within_a_batch_without_change_times_the_version_sent_last_counts(
    make_source, ingest, profile_of, outcomes_of
):
    crm = make_source("crm", "crm")

    receipt = ingest(
        crm,
        [
            {"external_id": "C1", "attributes": {"first_name": "First"}},
            {"external_id": "C1", "attributes": {"first_name": "Second"}},
            {"external_id": "C1", "attributes": {"first_name": "Third"}},
        ],
    )

    assert outcomes_of(receipt.batch) == ["superseded", "superseded", "created"]
    assert profile_of(crm, "C1").golden == {"first_name": "Third"}


# --- Idempotency ---------------------------------------------------------------------------------------


def _receive(source, records):
    """Store records without processing them (the test's transaction never commits, so nothing is scheduled)."""
    receipt = records_receive(source=source, records=records)
    assert receipt.accepted == len(records)
    return receipt.batch


def test_processing_the_same_batches_again_leaves_the_same_state(
    make_source, identifier_rule, resolution_state, outcomes_of
):
    identifier_rule("loyalty_id", max_per_profile=1)
    crm, web = make_source("crm", "crm"), make_source("web", "web")
    first = _receive(
        crm,
        [
            {
                "external_id": "C1",
                "attributes": {"first_name": "Ana", "email": "ana@example.org"},
                "identifiers": {"loyalty_id": "L-1"},
            },
            {
                "external_id": "C2",
                "attributes": {"first_name": "Ben", "email": "ben@example.org"},
                "identifiers": {"loyalty_id": "L-2"},
            },
            {"external_id": "C3", "attributes": {"phone": "+12025550143"}},
            {"external_id": "C3", "attributes": {"phone": "+12025550143", "city": "Leeds"}},
        ],
    )
    second = _receive(
        web,
        [
            {"external_id": "W1", "attributes": {"email": "ana@example.org", "phone": "2025550143"}},
            {"external_id": "W2", "identifiers": {"email": ["ana@example.org", "ben@example.org"]}},
        ],
    )
    batches = [first, second]
    for batch in batches:
        batch_process(batch_id=batch.pk)
    assert MergeEvent.objects.count() == 1 and ResolutionConflict.objects.count() == 1
    state = resolution_state()
    outcomes = [outcomes_of(first), outcomes_of(second)]

    for batch in batches:  # a task delivered twice
        assert batch_process(batch_id=batch.pk).processed == 0
    assert resolution_state() == state

    ids = list(InboundRecord.objects.filter(batch__in=batches).order_by("id").values_list("id", flat=True))
    result = inbound_process(inbound_ids=ids)  # a replay of records already processed

    assert result.processed == len(ids) and result.quarantined == 0
    assert resolution_state() == state
    # The batch status keeps telling what processing did the first time.
    assert [outcomes_of(first), outcomes_of(second)] == outcomes
    assert outcomes[0] == ["created", "created", "superseded", "created"]


def test_replaying_a_deletion_leaves_the_same_state(
    make_source, ingest, delete, resolution_state, outcomes_of
):
    crm, web = make_source("crm", "crm"), make_source("web", "web")
    ingest(crm, [{"external_id": "C1", "attributes": {"email": "ana@example.org", "job_title": "CTO"}}])
    ingest(web, [{"external_id": "W1", "attributes": {"email": "ana@example.org"}}])
    batch = delete(crm, "C1")
    state = resolution_state()

    inbound_process(inbound_ids=list(batch.records.values_list("id", flat=True)))

    assert resolution_state() == state
    assert outcomes_of(batch) == ["deleted"]  # what processing did the first time


def test_sending_identical_records_again_changes_nothing(
    make_source, send_records, staff_client, resolution_state
):
    crm = make_source("crm", "crm")
    records = [
        {
            "external_id": "C1",
            "updated_at": "2024-01-01T00:00:00Z",
            "attributes": {"first_name": "Ana", "email": "ana@example.org"},
        },
        {"external_id": "C2", "attributes": {"first_name": "Ana", "email": "ANA@example.org "}},
    ]
    send_records(crm, records)
    state = resolution_state()

    response = send_records(crm, records)

    status = staff_client.get(f"/api/v1/batches/{response.json()['batch']}").json()
    assert status["complete"] is True
    assert status["outcomes"] == {"unchanged": 2}
    assert resolution_state() == state


def test_an_older_version_earlier_in_a_large_batch_never_links_the_record(
    make_source, ingest, profile_of, outcomes_of
):
    """A request may hold 1,000 records, more than one processing chunk: the promise holds across chunks."""
    crm, web = make_source("crm", "crm"), make_source("web", "web")
    ingest(web, [{"external_id": "W1", "attributes": {"first_name": "Ben", "email": "ben@example.org"}}])
    old = {
        "external_id": "C1",
        "updated_at": "2024-01-01T00:00:00Z",
        "attributes": {"email": "ben@example.org"},
    }
    new = {
        "external_id": "C1",
        "updated_at": "2024-06-01T00:00:00Z",
        "attributes": {"email": "ana@example.org"},
    }
    filler = [{"external_id": f"F{i}", "attributes": {"email": f"f{i}@example.org"}} for i in range(300)]

    receipt = ingest(crm, [old, *filler, new])

    assert profile_of(crm, "C1") != profile_of(web, "W1")
    assert not MergeEvent.objects.exists()
    outcomes = outcomes_of(receipt.batch)
    assert (outcomes[0], outcomes[-1]) == ("superseded", "created")
