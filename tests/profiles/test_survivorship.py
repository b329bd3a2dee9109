"""Survivorship rules per attribute: trust rank, most recent (by the source's own change time), most frequent,
most complete; chosen in the admin, applied by resolution and by ``golden_refresh``; named in the lineage."""

import importlib
import itertools
from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from cdp import roles
from ingestion.normalise import CANONICAL_ATTRIBUTES
from ingestion.services import events_receive, records_receive
from profiles.golden import Candidate, golden_record
from profiles.models import Profile, SourceRecord, SurvivorshipRule
from profiles.selectors import profile_detail
from profiles.services import profiles_refresh

JAN, MAR, JUN = (datetime(2024, month, 1, tzinfo=UTC) for month in (1, 3, 6))
SEED = importlib.import_module("profiles.migrations.0008_seed_survivorship_rules")


def candidate(record_id, source, rank, observed_at, source_time=True, **attributes):
    return Candidate(
        record_id=record_id,
        source=source,
        external_id=f"{source}-{record_id}",
        trust_rank=rank,
        observed_at=observed_at,
        attributes=attributes,
        source_time=source_time,
    )


def chosen(candidates, rule, attribute="value"):
    """The golden value and the source it came from, whatever order the candidates come in."""
    results = []
    for order in itertools.permutations(candidates):
        golden, lineage = golden_record(order, {attribute: rule})
        assert lineage[attribute]["rule"] == rule
        result = (golden[attribute], lineage[attribute]["source"], lineage[attribute]["record"])
        if result not in results:
            results.append(result)
    assert len(results) == 1, f"depends on the order: {results}"
    return results[0][:2]


# --- The rules, as pure functions ----------------------------------------------------------------------


def test_trust_rank_takes_the_most_trusted_source_even_when_older():
    crm = candidate(1, "crm", 80, JAN, value="Ana")
    web = candidate(2, "web", 40, JUN, value="Annie")

    assert chosen([crm, web], "trust_rank") == ("Ana", "crm")


def test_most_recent_takes_the_latest_source_change_whatever_the_trust():
    crm = candidate(1, "crm", 80, JAN, value="ana@old.example")
    web = candidate(2, "web", 40, JUN, value="ana@new.example")
    erp = candidate(3, "erp", 70, MAR, value="ana@mid.example")

    assert chosen([crm, web, erp], "most_recent") == ("ana@new.example", "web")


def test_most_recent_ranks_a_record_without_a_source_time_after_every_record_with_one():
    # the CRM said when its value changed; the survey's import carries no time, only when it reached us
    crm = candidate(1, "crm", 80, MAR, value="Leeds")
    survey = candidate(2, "survey", 30, JUN, source_time=False, value="York")

    assert chosen([crm, survey], "most_recent") == ("Leeds", "crm")


def test_most_recent_orders_records_without_a_source_time_by_receipt_then_trust():
    older = candidate(1, "crm", 80, MAR, source_time=False, value="Leeds")
    newer = candidate(2, "web", 40, JUN, source_time=False, value="York")
    same_time = candidate(3, "erp", 70, JUN, source_time=False, value="Hull")

    assert chosen([older, newer], "most_recent") == ("York", "web")
    assert chosen([older, newer, same_time], "most_recent") == ("Hull", "erp")  # tie: the more trusted


def test_most_recent_breaks_a_tie_on_the_trust_rank():
    web = candidate(1, "web", 40, JUN, value="CTO")
    crm = candidate(2, "crm", 80, JUN, value="Chief Technology Officer")

    assert chosen([web, crm], "most_recent") == ("Chief Technology Officer", "crm")


def test_most_frequent_compares_values_ignoring_case_and_spacing():
    crm = candidate(1, "crm", 80, JUN, value="1984-03-12")
    erp = candidate(2, "erp", 70, JAN, value="1984-12-03")
    web = candidate(3, "web", 40, JAN, value="  1984-12-03 ")
    names = [
        candidate(4, "crm", 80, JUN, value="McDonald"),
        candidate(5, "erp", 70, JAN, value="MACDONALD"),
        candidate(6, "web", 40, JAN, value="macdonald "),
    ]

    assert chosen([crm, erp, web], "most_frequent") == ("1984-12-03", "erp")
    # the agreeing group's value is spelled as its most trusted record spells it
    assert chosen(names, "most_frequent") == ("MACDONALD", "erp")


def test_most_frequent_ties_go_to_the_most_trusted_source():
    crm = candidate(1, "crm", 80, JAN, value="F")
    web = candidate(2, "web", 40, JUN, value="M")

    assert chosen([crm, web], "most_frequent") == ("F", "crm")


def test_most_frequent_counts_sources_before_duplicate_records_of_one_source():
    duplicates = [candidate(n, "erp", 70, JUN, value="1900-01-01") for n in (1, 2, 3)]
    crm = candidate(4, "crm", 80, JAN, value="1984-03-12")
    web = candidate(5, "web", 40, JAN, value="1984-03-12")

    assert chosen([*duplicates, crm, web], "most_frequent") == ("1984-03-12", "crm")
    # within one source, more records win
    assert chosen([*duplicates, candidate(6, "erp", 70, JUN, value="1984-03-12")], "most_frequent")[0] == (
        "1900-01-01"
    )


def test_most_complete_takes_the_most_informative_value():
    crm = candidate(1, "crm", 80, JUN, value="12 High St.")
    web = candidate(2, "web", 40, JAN, value="12 High Street")
    initial = candidate(3, "crm", 80, JUN, value="J.")
    full = candidate(4, "web", 40, JAN, value="Jonathan")

    assert chosen([crm, web], "most_complete") == ("12 High Street", "web")
    assert chosen([initial, full], "most_complete") == ("Jonathan", "web")


def test_most_complete_ties_go_to_the_most_trusted_source_and_counts_entries_of_structures():
    crm = candidate(1, "crm", 80, JAN, value="Acme")
    web = candidate(2, "web", 40, JUN, value="ACME")
    short = candidate(3, "crm", 80, JUN, value={"street": "1 Main St", "city": ""})
    long = candidate(4, "web", 40, JAN, value={"street": "1 Main St", "city": "Springfield"})

    assert chosen([crm, web], "most_complete") == ("Acme", "crm")
    assert chosen([short, long], "most_complete")[1] == "web"


@pytest.mark.parametrize("rule", ["trust_rank", "most_recent", "most_frequent", "most_complete"])
def test_an_empty_value_never_wins_under_any_rule(rule):
    crm = candidate(1, "crm", 80, JUN, value="")
    web = candidate(2, "web", 40, JAN, value="Leeds")
    erp = candidate(3, "erp", 70, JUN, value=None)

    assert chosen([crm, web, erp], rule) == ("Leeds", "web")


def test_attributes_without_a_rule_or_with_an_unknown_one_follow_the_trust_rank():
    crm = candidate(1, "crm", 80, JAN, city="Leeds", plan="gold")
    web = candidate(2, "web", 40, JUN, city="York", plan="silver")

    golden, lineage = golden_record([crm, web], {"city": "coin_toss"})

    assert golden == {"city": "Leeds", "plan": "gold"}
    assert lineage["city"]["rule"] == lineage["plan"]["rule"] == "trust_rank"


def test_each_attribute_follows_its_own_rule_and_the_lineage_names_it():
    crm = candidate(
        1, "crm", 80, JAN, first_name="Jonathan", email="jon@old.example", birth_date="1984-03-12"
    )
    erp = candidate(2, "erp", 70, MAR, first_name="Jon", birth_date="1984-03-12")
    web = candidate(3, "web", 40, JUN, first_name="Jonny", email="jon@new.example", birth_date="1984-12-03")
    rules = {"first_name": "trust_rank", "email": "most_recent", "birth_date": "most_frequent"}

    golden, lineage = golden_record([crm, erp, web], rules)

    assert golden == {"birth_date": "1984-03-12", "email": "jon@new.example", "first_name": "Jonathan"}
    assert lineage["email"] == {
        "source": "web",
        "record": 3,
        "external_id": "web-3",
        "observed_at": JUN.isoformat(),
        "rule": "most_recent",
    }
    assert {name: entry["rule"] for name, entry in lineage.items()} == rules


# --- Through ingestion and resolution ------------------------------------------------------------------


@pytest.fixture
def default_rules(db):
    """The rules the data migration seeds (a transactional test elsewhere may have emptied the table)."""
    for attribute, rule in SEED.DEFAULT_RULES.items():
        SurvivorshipRule.objects.update_or_create(attribute=attribute, defaults={"rule": rule})


def receive(django_capture_on_commit_callbacks, source, records, received_at=None):
    with django_capture_on_commit_callbacks(execute=True):
        records_receive(source=source, records=records, received_at=received_at)


def test_every_canonical_attribute_has_a_default_rule(db):
    rules = dict(SurvivorshipRule.objects.values_list("attribute", "rule"))

    assert set(rules) == set(CANONICAL_ATTRIBUTES)
    assert rules["email"] == rules["phone"] == rules["city"] == rules["company"] == "most_recent"
    assert rules["first_name"] == rules["last_name"] == "trust_rank"
    assert rules["birth_date"] == rules["national_id"] == "most_frequent"


@pytest.mark.usefixtures("default_rules", "seeded_identifier_rules")
def test_a_late_arriving_old_record_never_overwrites_newer_data(
    crm, web, profile_of, django_capture_on_commit_callbacks
):
    # given the web shop's record of a change made in June
    receive(
        django_capture_on_commit_callbacks,
        web,
        [
            {
                "external_id": "W1",
                "updated_at": "2024-06-01T10:00:00Z",
                "attributes": {"email": "ana@new.example", "city": "York"},
                "identifiers": {"crm": "C1"},
            }
        ],
    )
    # when the CRM, more trusted, delivers afterwards a record it last changed in January
    receive(
        django_capture_on_commit_callbacks,
        crm,
        [
            {
                "external_id": "C1",
                "updated_at": "2024-01-01T10:00:00Z",
                "attributes": {"first_name": "Ana", "email": "ana@old.example", "city": "Leeds"},
            }
        ],
    )
    # and a backfill of an old CRM export without any change time arrives later still
    receive(
        django_capture_on_commit_callbacks,
        crm,
        [{"external_id": "C2", "attributes": {"email": "ana@new.example", "city": "Hull"}}],
    )

    # then the newer values stay golden, from the record that holds them
    profile = profile_of(web, "W1")
    assert profile_of(crm, "C1") == profile_of(crm, "C2") == profile
    assert (profile.golden["email"], profile.golden["city"]) == ("ana@new.example", "York")
    assert profile.lineage["city"] == {
        "source": "web",
        "record": SourceRecord.objects.get(external_id="W1").pk,
        "external_id": "W1",
        "observed_at": "2024-06-01T10:00:00+00:00",
        "rule": "most_recent",
    }
    # while the name still comes from the most trusted source, and every candidate stays visible
    assert (profile.golden["first_name"], profile.lineage["first_name"]["rule"]) == ("Ana", "trust_rank")
    cities = profile_detail(profile=profile)["attributes"]["city"]
    assert cities["rule"] == "most_recent"
    assert sorted((c["value"], c["source"]) for c in cities["candidates"]) == [
        ("Hull", "crm"),
        ("Leeds", "crm"),
        ("York", "web"),
    ]


@pytest.mark.usefixtures("default_rules", "seeded_identifier_rules")
def test_a_newer_change_of_a_less_trusted_source_wins_under_most_recent(crm, web, profile_of, ingest):
    ingest(
        crm,
        [
            {
                "external_id": "C1",
                "updated_at": "2024-01-01T00:00:00Z",
                "attributes": {"phone": "2025550143", "city": "Leeds"},
            }
        ],
    )
    ingest(
        web,
        [
            {
                "external_id": "W1",
                "updated_at": "2024-06-01T00:00:00Z",
                "attributes": {"phone": "202-555-0143", "city": "York"},
            }
        ],
    )

    profile = profile_of(crm, "C1")
    assert profile.golden["city"] == "York"
    assert (profile.lineage["city"]["source"], profile.lineage["city"]["rule"]) == ("web", "most_recent")


@pytest.mark.usefixtures("default_rules", "seeded_identifier_rules")
def test_a_tracking_message_time_counts_as_the_source_change_time(
    crm, make_source, profile_of, django_capture_on_commit_callbacks
):
    shop = make_source("shop", "web")
    # given a CRM record sent without a change time, received now
    receive(
        django_capture_on_commit_callbacks,
        crm,
        [{"external_id": "C1", "attributes": {"email": "ann@example.com", "job_title": "Engineer"}}],
    )
    # when the shop's identify call of last June, delivered later, names a new job title
    with django_capture_on_commit_callbacks(execute=True):
        events_receive(
            source=shop,
            messages=[
                {
                    "type": "identify",
                    "userId": "u-1",
                    "messageId": "m1",
                    "timestamp": "2024-06-01T10:00:00Z",
                    "traits": {"email": "ann@example.com", "title": "CTO"},
                }
            ],
        )

    # then the message's own time beats the CRM's receipt time
    profile = profile_of(crm, "C1")
    assert (profile.golden["job_title"], profile.lineage["job_title"]["source"]) == ("CTO", "shop")


@pytest.mark.usefixtures("default_rules", "seeded_identifier_rules")
def test_a_new_profile_is_written_with_the_golden_record_a_refresh_computes(
    crm, make_source, django_capture_on_commit_callbacks
):
    """Resolution derives a new profile's golden record from the records in memory; reading them back from
    the database must give the same values, lineage (change times in UTC) and name."""
    shop = make_source("shop", "web")
    receive(
        django_capture_on_commit_callbacks,
        crm,
        [
            # two records of one new person in one request, one with a change time in another offset
            {
                "external_id": "C1",
                "updated_at": "2024-03-01T10:00:00+02:00",
                "attributes": {"first_name": "Ann", "last_name": "Lee", "email": "ann@example.com"},
            },
            {
                "external_id": "C2",
                "attributes": {"first_name": "Annie", "city": "York", "email": "ANN@example.com"},
            },
            {"external_id": "C3", "attributes": {"full_name": "Bo Ek", "postcode": "YO1 7HH"}},
        ],
    )
    with django_capture_on_commit_callbacks(execute=True):
        events_receive(
            source=shop,
            messages=[
                {
                    "type": "identify",
                    "userId": "u-9",
                    "messageId": "m9",
                    "timestamp": "2024-06-01T10:00:00Z",
                    "traits": {"email": "cy@example.com", "title": "CTO"},
                }
            ],
        )
    fields = ("golden", "lineage", "display_name", "search_name", "status")
    profiles = Profile.objects.filter(status="active").order_by("pk")
    written = list(profiles.values_list("pk", *fields))
    assert len(written) == 3
    assert {row[3] for row in written} >= {"Ann Lee", "Bo Ek"}

    profiles_refresh(profile_ids=[row[0] for row in written])

    assert list(profiles.values_list("pk", *fields)) == written


@pytest.mark.usefixtures("default_rules")
def test_refresh_loads_the_rules_once_however_many_profiles(crm, ingest, django_assert_max_num_queries):
    ingest(
        crm,
        [{"external_id": f"C{n}", "attributes": {"first_name": f"P{n}", "city": "Leeds"}} for n in range(30)],
    )
    one = [Profile.objects.filter(status="active").values_list("pk", flat=True).first()]
    many = list(Profile.objects.filter(status="active").values_list("pk", flat=True))

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as single:
        profiles_refresh(profile_ids=one)
    with CaptureQueriesContext(connection) as batch:
        profiles_refresh(profile_ids=many)

    assert len(batch.captured_queries) == len(single.captured_queries)
    assert sum("survivorshiprule" in q["sql"] for q in batch.captured_queries) == 1


# --- Staff change a rule; golden_refresh applies it ----------------------------------------------------


@pytest.fixture
def steward_client(user_in_role):
    client = Client()
    client.force_login(user_in_role(roles.DATA_STEWARD))
    return client


@pytest.fixture
def user_in_role(django_user_model):
    from django.contrib.auth.models import Group

    def make(role):
        user = django_user_model.objects.create_user(
            role.replace(" ", "_"), password="pass-word-1", is_staff=True
        )
        user.groups.add(Group.objects.get(name=role))
        return user

    return make


@pytest.fixture
def ana(crm, web, ingest, default_rules, seeded_identifier_rules, profile_of):
    """Ana: the CRM (trusted) knows her job title from January, the web shop a newer one."""
    ingest(
        crm,
        [
            {
                "external_id": "C1",
                "updated_at": "2024-01-01T00:00:00Z",
                "attributes": {"first_name": "Ana", "email": "ana@example.org", "job_title": "Engineer"},
            }
        ],
    )
    ingest(
        web,
        [
            {
                "external_id": "W1",
                "updated_at": "2024-06-01T00:00:00Z",
                "attributes": {
                    "first_name": "Annie",
                    "email": "ana@example.org",
                    "job_title": "Engineering Manager",
                },
            }
        ],
    )
    return profile_of(crm, "C1")


def rule_change(client, attribute: str, rule: str):
    obj = SurvivorshipRule.objects.get(attribute=attribute)
    return client.post(
        reverse("admin:profiles_survivorshiprule_change", args=[obj.pk]), {"rule": rule}, follow=True
    )


def test_a_rule_changed_in_the_admin_applies_after_golden_refresh(ana, steward_client, capsys):
    assert (ana.golden["job_title"], ana.golden["first_name"]) == ("Engineering Manager", "Ana")

    # when a data steward switches job titles to trust rank and first names to most recent
    response = rule_change(steward_client, "job_title", "trust_rank")
    assert response.status_code == 200
    assert "golden_refresh" in response.content.decode()  # the page says how to recompute
    rule_change(steward_client, "first_name", "most_recent")
    ana.refresh_from_db()
    assert ana.golden["job_title"] == "Engineering Manager"  # nothing recomputed yet

    call_command("golden_refresh")

    ana.refresh_from_db()
    assert (ana.golden["job_title"], ana.lineage["job_title"]["rule"]) == ("Engineer", "trust_rank")
    assert (ana.golden["first_name"], ana.lineage["first_name"]["rule"]) == ("Annie", "most_recent")
    assert ana.display_name == "Annie"
    assert "Recomputed the golden records of 1 profile(s)." in capsys.readouterr().out


def test_golden_refresh_redoes_only_stale_profiles_unless_told_all(ana, crm, ingest, capsys):
    call_command("golden_refresh")  # nothing changed since the profiles were computed
    assert "of 0 profile(s)" in capsys.readouterr().out

    SurvivorshipRule.objects.filter(attribute="job_title").delete()  # back to the trust rank
    call_command("golden_refresh", "--all", "--chunk-size", "1")

    ana.refresh_from_db()
    assert "of 1 profile(s)" in capsys.readouterr().out
    assert ana.golden["job_title"] == "Engineer"


def test_the_admin_action_recomputes_golden_records(ana, steward_client, django_capture_on_commit_callbacks):
    SurvivorshipRule.objects.filter(attribute="job_title").update(rule="most_complete")
    SurvivorshipRule.objects.filter(attribute="email").update(rule="trust_rank")
    rule = SurvivorshipRule.objects.get(attribute="job_title")
    rule.save()  # updated_at: the latest rule change

    with django_capture_on_commit_callbacks(execute=True):  # the task is sent once the request commits
        response = steward_client.post(
            reverse("admin:profiles_survivorshiprule_changelist"),
            {"action": "recompute_golden_records", "_selected_action": [rule.pk]},
            follow=True,
        )

    assert response.status_code == 200
    ana.refresh_from_db()
    assert (ana.golden["job_title"], ana.lineage["job_title"]["rule"]) == (
        "Engineering Manager",
        "most_complete",
    )


def test_the_admin_offers_the_canonical_attributes_and_the_profile_page_names_the_rule(
    ana, steward_client, user_in_role
):
    admin_client = Client()
    admin_client.force_login(user_in_role(roles.ADMINISTRATOR))
    form = admin_client.get(reverse("admin:profiles_survivorshiprule_add")).content.decode()
    assert '<datalist id="canonical-attributes">' in form and '<option value="postcode">' in form

    response = admin_client.post(
        reverse("admin:profiles_survivorshiprule_add"), {"attribute": " loyalty_tier ", "rule": "most_recent"}
    )
    assert response.status_code == 302
    assert SurvivorshipRule.objects.get(attribute="loyalty_tier").rule == "most_recent"

    page = steward_client.get(reverse("admin:profiles_profile_change", args=[ana.pk])).content.decode()
    assert "rule: Most recent (by the source&#x27;s own change time)" in page


def test_the_profile_api_names_the_rule_of_each_golden_value(ana, staff_client):
    response = staff_client.get(f"/api/v1/profiles/{ana.pk}")

    assert response.status_code == 200, response.content
    attributes = response.json()["attributes"]
    assert attributes["job_title"]["rule"] == "most_recent"
    assert attributes["first_name"]["rule"] == "trust_rank"
    assert {c["value"] for c in attributes["job_title"]["candidates"]} == {"Engineer", "Engineering Manager"}


# --- The address survives as a unit --------------------------------------------------------------------


def test_a_newer_town_alone_does_not_join_an_older_street():
    old = candidate(1, "erp", 5, JAN, address_line1="12 High St", city="Leeds", postcode="LS1 4AP")
    new = candidate(2, "web", 5, JUN, city="York")

    for order in itertools.permutations([old, new]):
        golden, lineage = golden_record(order, {"address_line1": "most_recent", "city": "most_recent"})
        assert (golden["address_line1"], golden["city"], golden["postcode"]) == (
            "12 High St",
            "Leeds",
            "LS1 4AP",
        )
        assert {lineage[part]["record"] for part in ("address_line1", "city", "postcode")} == {1}


def test_the_newest_full_address_wins_whole_and_only_agreeing_records_complete_it():
    old = candidate(
        1, "crm", 9, JAN, address_line1="1 Old Road", city="Leeds", postcode="LS2 9JT", region="WY"
    )
    new = candidate(2, "erp", 1, JUN, address_line1="12 High St", postcode="YO1 7HH")
    same_place = candidate(3, "web", 1, MAR, postcode="yo1 7hh", city="York")

    golden, lineage = golden_record([old, new, same_place], {"address_line1": "most_recent"})

    assert golden["address_line1"] == "12 High St" and golden["postcode"] == "YO1 7HH"
    assert golden["city"] == "York" and lineage["city"]["record"] == 3  # agrees with the chosen postcode
    assert "region" not in golden  # the old address's region belongs to another place
