"""The synthetic people benchmark (bench/people/): its generator, its scores and its run through the product."""

import argparse
import importlib
import json
import random
from collections import Counter, defaultdict
from datetime import date

import pytest
from rapidfuzz.distance import Levenshtein

from bench.people import (
    CORRUPTIONS,
    NICKNAMES,
    GenerationStats,
    Truth,
    _email_typo,
    data_batches,
    data_write,
    generate,
    partition_scores,
    people_sources,
    product_run,
    run_batch,
    run_engine,
)
from bench.synthetic import ERP_MAPPING

SAMPLE = 2000


@pytest.fixture(scope="module")
def sample():
    stats = GenerationStats()
    records = list(generate(records=SAMPLE, sources=4, seed=7, stats=stats))
    return records, stats


def canonical(record) -> dict:
    """The record's attributes under their canonical names (the ERP sends its own field names)."""
    mapping = ERP_MAPPING if record.source == "erp" else {}
    attributes = {mapping.get(name, name): value for name, value in record.payload["attributes"].items()}
    if "full_name" in attributes:
        tokens = attributes.pop("full_name").split(" ")
        if "middle_initial" in record.corruptions and "swapped_names" not in record.corruptions:
            attributes.update(first_name=" ".join(tokens[:-1]), last_name=tokens[-1])
        else:
            attributes.update(first_name=tokens[0], last_name=" ".join(tokens[1:]))
    return attributes


def given(record) -> str:
    value = canonical(record).get("first_name") or ""
    return value.split(" ")[0].strip(".").lower()


def surname(record) -> str:
    return (canonical(record).get("last_name") or "").lower()


def digits(value) -> str:
    return "".join(ch for ch in str(value or "") if ch.isdigit())


def near(a: str, b: str, edits: int = 2) -> bool:
    return Levenshtein.distance(a, b) <= edits


# --- The generator ------------------------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_records_and_another_seed_others():
    def run(seed):
        return [
            (r.source, json.dumps(r.payload, sort_keys=True), r.person.id)
            for r in generate(records=600, sources=4, seed=seed)
        ]

    first, again, other = run(3), run(3), run(4)

    assert first == again
    assert len(first) == 600
    assert first != other


def test_every_corruption_kind_it_claims_occurs_at_a_plausible_share(sample):
    records, stats = sample
    shares = {kind: stats.corruptions[kind] / SAMPLE for kind in CORRUPTIONS}
    # (low, high) share of the records; wide bands, but each kind must be there and none may dominate.
    expected = {
        "first_name_typo": (0.01, 0.06),
        "last_name_typo": (0.01, 0.06),
        "nickname": (0.02, 0.12),
        "initial": (0.003, 0.04),
        "middle_initial": (0.01, 0.08),
        "swapped_names": (0.003, 0.03),
        "maiden_name": (0.001, 0.03),
        "moved_address": (0.005, 0.06),
        "address_typo": (0.003, 0.04),
        "address_abbreviated": (0.15, 0.40),
        "zip_variant": (0.01, 0.05),
        "changed_email": (0.01, 0.06),
        "email_typo": (0.001, 0.03),
        "family_email": (0.001, 0.03),
        "home_phone": (0.02, 0.12),
        "phone_typo": (0.001, 0.02),
        "phone_formatted": (0.25, 0.55),
        "birth_date_day_month_swap": (0.001, 0.02),
        "birth_date_typo": (0.001, 0.02),
        "case_change": (0.05, 0.25),
    }
    assert set(expected) == set(CORRUPTIONS)
    for kind, (low, high) in expected.items():
        assert low <= shares[kind] <= high, (kind, shares[kind])
    # The tally is the records' own claims.
    assert Counter(kind for r in records for kind in r.corruptions) == +stats.corruptions


def test_each_claimed_corruption_is_really_in_the_record(sample):
    records, _ = sample
    checked = Counter()
    for r in records:
        p, attributes = r.person, canonical(r)
        first, last = given(r), surname(r)
        email = (attributes.get("email") or "").strip().lower()
        phone = digits(attributes.get("phone"))
        kinds = set(r.corruptions)
        for kind in kinds:
            checked[kind] += 1
        if "swapped_names" in kinds:  # the surname field holds the given name(s) and the other way round
            first = last.split(" ")[0].strip(".")
            last = (attributes.get("first_name") or "").lower()
        if "nickname" in kinds:
            assert any(near(first, nick) for nick in NICKNAMES[p.first]), (r.payload, p)
        if "initial" in kinds:
            assert first == p.first[0], (r.payload, p)
        if "swapped_names" in kinds:
            assert near(first, p.first) or "nickname" in kinds or "initial" in kinds, (r.payload, p)
            assert near(last, p.maiden or p.last) or near(last, p.last), (r.payload, p)
        if "first_name_typo" in kinds and "nickname" not in kinds and "swapped_names" not in kinds:
            assert first != p.first and near(first, p.first), (r.payload, p)
        if "last_name_typo" in kinds and "swapped_names" not in kinds:
            assert last not in {p.last, p.maiden} and (near(last, p.last) or near(last, p.maiden)), r.payload
        if "maiden_name" in kinds and "last_name_typo" not in kinds and "swapped_names" not in kinds:
            assert last == p.maiden != p.last, (r.payload, p)
        if "middle_initial" in kinds:
            given_field = "last_name" if "swapped_names" in kinds else "first_name"
            assert attributes[given_field].endswith(f" {p.middle.upper()}."), r.payload
        if "changed_email" in kinds and "email_typo" not in kinds:
            assert email == p.old_email != p.email
        if "family_email" in kinds and "email_typo" not in kinds:
            assert email == p.family_email != p.email
        if "email_typo" in kinds:
            assert email not in {p.email, p.old_email, p.family_email}
            assert any(near(email, known, 3) for known in (p.email, p.old_email, p.family_email) if known)
        if "home_phone" in kinds:
            assert p.landline and near(phone[-10:], p.landline, 1), (r.payload, p)
        if "phone_typo" in kinds:
            assert phone[-10:] not in {p.mobile, p.landline}
            assert any(near(phone[-10:], n, 1) for n in (p.mobile, p.landline) if n)
        if "phone_formatted" in kinds:
            assert attributes["phone"] != f"+1{phone[-10:]}"
        if "moved_address" in kinds:
            assert p.old_address is not None
            assert digits(attributes["postcode"])[:5].lstrip("0") == p.old_address.zip.lstrip("0")
        if "zip_variant" in kinds:
            zips = {p.address.zip, p.old_address.zip if p.old_address else None}
            assert attributes["postcode"] not in zips
        if "birth_date_day_month_swap" in kinds:
            swapped = p.birth.replace(month=p.birth.day, day=p.birth.month)
            assert attributes["birth_date"] == swapped.isoformat()
        if "birth_date_typo" in kinds:
            value = date.fromisoformat(attributes["birth_date"])
            assert (
                value != p.birth
                and sum((value.year != p.birth.year, value.month != p.birth.month, value.day != p.birth.day))
                <= 2
            )

        # What a record does not claim, it does not carry: the clean fields are the person's own.
        if not kinds & {"changed_email", "family_email", "email_typo"} and email:
            assert email == p.email
        if not kinds & {"birth_date_day_month_swap", "birth_date_typo"} and attributes.get("birth_date"):
            assert attributes["birth_date"] == p.birth.isoformat()
        if not kinds & {"nickname", "initial", "first_name_typo", "swapped_names"} and first:
            assert first == p.first, (r.payload, p)
        if not kinds & {"last_name_typo", "maiden_name", "swapped_names"} and last:
            assert last == p.last, (r.payload, p)
        if not kinds & {"moved_address", "zip_variant"} and attributes.get("postcode"):
            assert attributes["postcode"] == p.address.zip
        if not kinds & {"home_phone", "phone_typo"} and phone:
            assert phone[-10:] == p.mobile
    assert set(checked) == set(CORRUPTIONS)


def test_sources_cover_different_fields_and_missing_values_are_common(sample):
    records, stats = sample
    by_source = defaultdict(list)
    for r in records:
        by_source[r.source].append(canonical(r))
    assert set(by_source) == {"crm", "erp", "web", "support"}

    def share(source, field):
        return sum(field in a for a in by_source[source]) / len(by_source[source])

    assert share("web", "address_line1") == 0 and share("web", "email") > 0.95
    assert share("erp", "address_line1") > 0.9 and share("erp", "birth_date") == 0
    assert share("support", "address_line1") == 0 and share("support", "phone") > 0.3
    assert share("crm", "birth_date") > 0.3
    # The ERP sends its own field names, which the source's field mapping translates.
    assert all("FirstName" in r.payload["attributes"] for r in records if r.source == "erp" and given(r))
    for field_name in ("birth_date", "phone", "address_line1"):
        assert stats.missing[field_name] / SAMPLE > 0.3


def test_every_record_passes_intake_validation(sample):
    """A record intake rejects never reaches resolution: the benchmark would measure something else."""
    from ingestion.normalise import EMAIL, PHONE, TEXT, RecordError, SourceRules, normalise_record

    records, _ = sample
    specs = people_sources(4)
    normalisers = {"email": EMAIL, "phone": PHONE, **{spec.slug: TEXT for spec in specs}}
    rules = {s.slug: SourceRules(s.slug, s.region, s.field_mapping, normalisers) for s in specs}

    errors = [normalise_record(r.payload, rules[r.source]) for r in records]

    assert [e for e in errors if isinstance(e, RecordError)] == []


@pytest.mark.parametrize("email", ["j.welley1958@acme.com", "a.b@gmail.com", "patricia.warwood@stark.com"])
def test_a_typo_in_an_email_keeps_it_a_valid_address(email):
    from email_validator import validate_email

    rng = random.Random(1)
    typos = {_email_typo(rng, email) for _ in range(300)}

    assert email not in typos and len(typos) > 10
    for typo in typos:
        validate_email(typo, check_deliverability=False)


def test_households_and_common_names_are_realistic(sample):
    records, stats = sample
    people = {r.person.id: r.person for r in records}
    households = defaultdict(list)
    for person in people.values():
        households[person.household].append(person)
    shared = [members for members in households.values() if len(members) > 1]
    # A share of the people live with another customer: same address, mostly the same surname.
    assert 0.15 <= stats.people_in_shared_households / stats.people <= 0.5
    for members in shared:
        assert len({m.address for m in members}) == 1
        assert len({m.id for m in members}) == len(members)
    same_surname = sum(len({m.last for m in members}) < len(members) for members in shared)
    assert same_surname / len(shared) > 0.5
    # Common names are common (term frequencies), and there is a long tail of rare surnames.
    surnames = Counter(p.last for p in people.values())
    firsts = Counter(p.first for p in people.values())
    assert surnames.most_common(1)[0][1] >= 5
    assert firsts.most_common(1)[0][1] / len(people) > 0.01
    assert sum(count == 1 for count in surnames.values()) / len(surnames) > 0.5


def test_ground_truth_is_consistent_through_the_data_file(tmp_path, sample):
    path = tmp_path / "people.jsonl"
    meta = data_write(path, records=SAMPLE, sources=4, seed=7, batch_size=300)
    records, stats = sample

    truth = Truth()
    sent = []
    for slug, payloads, persons in data_batches(path):
        assert 1 <= len(payloads) <= 300 and len(payloads) == len(persons)
        for payload, person in zip(payloads, persons, strict=True):
            truth.add(slug, payload["external_id"], person)
            sent.append((slug, payload["external_id"], person))

    # The file holds exactly what the generator made, each record once, with its person.
    assert sorted(sent) == sorted((r.source, r.payload["external_id"], r.person.id) for r in records)
    assert len({(slug, eid) for slug, eid, _ in sent}) == SAMPLE
    assert all(truth.person(slug, eid) == person for slug, eid, person in sent)
    assert meta["records"] == SAMPLE and meta["people"] == stats.people == len({p for *_, p in sent})
    assert json.loads((tmp_path / "people.jsonl.meta.json").read_text())["corruptions"] == meta["corruptions"]
    with pytest.raises(KeyError):
        truth.person("crm", "CRM-99999999")


def test_the_stream_is_lazy_and_its_buffers_bounded():
    stats = GenerationStats()
    stream = generate(records=1_000_000, sources=4, seed=1, window=200, stats=stats)

    pulled = [next(stream) for _ in range(1000)]

    assert len(pulled) == 1000
    # Only the records pulled plus the per-source shuffle buffers exist so far, not a million.
    assert stats.people < 1000 + 4 * 200
    stream.close()


# --- The scores ---------------------------------------------------------------------------------------------


def test_a_perfect_partition_scores_one():
    scores = partition_scores([0, 0, 1, 2, 2], [5, 5, 6, 7, 7])

    assert scores["profile_precision"] == scores["profile_recall"] == 1.0
    assert scores["pair_precision"] == scores["pair_recall"] == scores["pair_f1"] == 1.0
    assert scores["over_merge_rate"] == 0.0
    assert (scores["profiles"], scores["people"], scores["records"]) == (3, 3, 5)


def test_an_over_merge_costs_precision_not_recall():
    # Persons 0 and 1 on one profile; person 2 alone.
    scores = partition_scores([0, 0, 1, 1, 2], [0, 0, 0, 0, 1])

    assert scores["profile_precision"] == 1 / 2
    assert scores["profile_recall"] == 1.0
    assert scores["over_merge_rate"] == pytest.approx(2 / 3)
    assert scores["people_over_merged"] == 2 and scores["mixed_profiles"] == 1
    assert (scores["pairs_predicted"], scores["pairs_true"]) == (6, 2)
    assert scores["pair_precision"] == pytest.approx(2 / 6)
    assert scores["pair_recall"] == 1.0
    assert scores["pair_f1"] == pytest.approx(0.5)


def test_a_split_costs_recall_not_precision():
    # Person 0's three records on two profiles.
    scores = partition_scores([0, 0, 0, 1], [0, 0, 1, 2])

    assert scores["profile_precision"] == 1.0
    assert scores["profile_recall"] == 1 / 2
    assert scores["people_split"] == 1 and scores["over_merge_rate"] == 0.0
    assert scores["pair_precision"] == 1.0
    assert scores["pair_recall"] == pytest.approx(1 / 3)
    assert scores["pair_f1"] == pytest.approx(0.5)


def test_split_and_over_merge_together():
    # Profile 10: persons 0, 0, 1; profile 11: person 1; profile 12: person 2; profile 13: persons 3, 4.
    scores = partition_scores([0, 0, 1, 1, 2, 3, 4], [10, 10, 10, 11, 12, 13, 13])

    assert scores["profiles"] == 4 and scores["people"] == 5
    assert scores["profile_precision"] == 2 / 4  # 11 and 12 are pure
    assert scores["profile_recall"] == 4 / 5  # person 1 is split
    assert scores["over_merge_rate"] == 4 / 5  # everyone but person 2 shares a profile
    # Predicted pairs: 3 in profile 10, 1 in 13; true pairs: (0,0) and (1,1); hits: (0,0).
    assert scores["pair_precision"] == pytest.approx(1 / 4)
    assert scores["pair_recall"] == pytest.approx(1 / 2)


def test_scores_need_one_label_per_record():
    with pytest.raises(ValueError):
        partition_scores([0, 1], [0])


# --- Runs ---------------------------------------------------------------------------------------------------


def test_the_engine_run_scores_the_same_records(tmp_path):
    path = tmp_path / "people.jsonl"
    meta = data_write(path, records=300, sources=3, seed=2)

    result = run_engine(path, meta, argparse.Namespace())

    scores = result["stages"]["engine"]
    assert scores["records"] == 300 and scores["people"] == meta["people"]
    assert 0 < scores["profile_precision"] <= 1 and 0 < scores["profile_recall"] <= 1
    assert result["candidate_pairs"] > 0 and result["peak_rss_mb"] > 0


def test_the_batch_run_joins_what_identifiers_join_before_matching(tmp_path):
    path = tmp_path / "people.jsonl"
    meta = data_write(path, records=1000, sources=4, seed=2)

    batch = run_batch(path, meta, argparse.Namespace())
    engine = run_engine(path, meta, argparse.Namespace())

    scores = batch["stages"]["batch"]
    assert scores["records"] == 1000 and scores["people"] == meta["people"]
    assert scores["profile_precision"] >= 0.97
    # emails and phones join records before any scoring: more people end whole than the engine alone finds
    assert scores["profile_recall"] > engine["stages"]["engine"]["profile_recall"]
    assert batch["training_records"] == 1000


@pytest.fixture
def identifier_rules(transactional_db):
    """The email and phone rules of the data migration (a transactional test empties every table)."""
    from ingestion.models import IdentifierType

    seed = importlib.import_module("ingestion.migrations.0002_seed_identifier_rules")
    for rule in seed.DEFAULT_RULES:
        IdentifierType.objects.get_or_create(name=rule["name"], defaults=rule)


@pytest.mark.django_db(transaction=True)
def test_a_small_run_through_the_product_path(tmp_path, identifier_rules):
    from ingestion.models import InboundRecord, Source
    from profiles.models import SourceRecord

    path = tmp_path / "people.jsonl"
    meta = data_write(path, records=200, sources=4, seed=5, batch_size=50)

    result = product_run(data_batches(path), specs=people_sources(4), records=200, log=lambda message: None)

    # Every record went through intake and resolution: none waiting, none quarantined.
    assert list(InboundRecord.objects.exclude(status="processed").values_list("error")[:1]) == []
    assert set(InboundRecord.objects.values_list("status", flat=True)) == {"processed"}
    assert SourceRecord.objects.count() == 200
    assert Source.objects.get(slug="erp").field_mapping == ERP_MAPPING
    scores = result["stages"]["after intake"]
    assert scores["records"] == 200 and scores["people"] == meta["people"]
    assert scores["without_profile"] == 0
    assert 0 < scores["profile_precision"] <= 1 and 0 < scores["profile_recall"] <= 1
    # Records sharing an email are on one profile, whatever else resolution does: pairs are found.
    assert scores["pair_recall"] > 0.3
    assert result["outcome"]["after intake"]["problems"] == []
    assert result["timings"]["ingest"] > 0
    for command in ("match_train", "resolve"):
        from django.core.management import get_commands

        if command not in get_commands():
            assert any(f"manage.py {command}" in note for note in result["notes"])


@pytest.mark.django_db(transaction=True)
def test_with_workers_the_run_waits_for_them_before_training_and_scoring(tmp_path, identifier_rules):
    path = tmp_path / "people.jsonl"
    data_write(path, records=100, sources=2, seed=5, batch_size=50)
    drained = []

    product_run(
        data_batches(path),
        specs=people_sources(2),
        records=100,
        resolve_all=False,
        log=lambda message: None,
        drain=lambda: drained.append(True),
    )

    assert len(drained) == 2  # before match_train (after a quarter of the records) and at the end
