"""Training on a table larger than the sample: a random sample of records keeps a duplicate pair only with
the square of the sampling rate, so EM's sessions draw whole blocks from the whole table instead."""

import random
from collections import Counter
from io import StringIO

import pytest
from django.core.management import call_command

from profiles.matching import DEFAULT_BLOCKING_RULES, MatchRecord
from profiles.matching.model import DEFAULT_TRAINING_SESSIONS
from profiles.models import MatchModelVersion, SourceRecord
from profiles.services.matching import (
    records_estimate,
    records_session_blocks,
    session_blocks_pick,
)
from tests.profiles.population import population


def test_whole_blocks_are_drawn_at_random_until_the_budget_and_never_a_lone_record():
    sizes = {f"postcode:{n}": 2 + n % 5 for n in range(1_000)} | {"postcode:alone": 1, "postcode:city": 500}

    picked = session_blocks_pick(sizes, random.Random(1), budget=500)

    pairs = sum(sizes[key] * (sizes[key] - 1) // 2 for key in picked)
    assert 500 <= pairs < 500 + 15  # stops at the first block past the budget
    assert "postcode:alone" not in picked
    assert "postcode:city" not in picked  # a block past MAX_BLOCK_SIZE compares strangers by the thousand
    assert picked == session_blocks_pick(sizes, random.Random(1), budget=500)  # deterministic per seed
    assert picked != session_blocks_pick(sizes, random.Random(2), budget=500)  # and random


def _matchables(records: list[dict], source: str) -> list[MatchRecord]:
    return [
        MatchRecord.from_attributes(f"{source}{n}", record["attributes"], source=source)
        for n, record in enumerate(records)
    ]


def test_a_sample_keeps_a_sixteenth_of_the_duplicates_and_whole_blocks_keep_what_they_hold():
    crm, erp = population(people=600)
    everyone = _matchables(crm, "crm") + _matchables(erp, "erp")
    sample = random.Random(0).sample(everyone, len(everyone) // 4)
    full = records_estimate(everyone, rng=random.Random(0))

    # a quarter of the records holds about a sixteenth of the matching pairs
    assert records_estimate(sample, rng=random.Random(0)).expected == pytest.approx(
        full.expected / 16, rel=0.5
    )

    drawn = records_session_blocks(everyone, random.Random(0), budget=150)
    for session, records in zip(DEFAULT_TRAINING_SESSIONS, drawn, strict=True):
        keys = Counter(session.rule.key(record) for record in records)
        assert "" not in keys and all(size >= 2 for size in keys.values())
        whole = Counter(k for k in (session.rule.key(record) for record in everyone) if k in keys)
        assert keys == whole  # every block drawn comes with all its members
    assert all(len(records) < len(everyone) // 2 for records in drawn)  # samples of the blocks

    with_blocks = records_estimate(
        sample, rng=random.Random(0), session_records=drawn, population=len(everyone)
    )
    assert with_blocks.usable and full.usable
    # the matches of the whole table, as its own estimate finds them, give or take the sampling
    assert with_blocks.expected == pytest.approx(full.expected, rel=0.35)
    for mine, theirs in zip(with_blocks.model.params, full.model.params, strict=True):
        if mine.name in ("first_name", "last_name", "birth_date", "address_line1"):
            assert mine.m[0] == pytest.approx(theirs.m[0], abs=0.1), mine.name


@pytest.fixture
def population_loaded(crm, erp, ingest, settings):
    settings.CDP_MATCH_TRAIN_MIN_RECORDS = 10**9  # these tests train explicitly
    crm_records, erp_records = population(people=600)
    ingest(crm, crm_records)
    ingest(erp, erp_records)


def test_match_train_on_a_sample_of_a_larger_table_activates_a_model_learnt_from_whole_blocks(
    population_loaded,
):
    live = SourceRecord.objects.filter(deleted_at__isnull=True).count()
    out = StringIO()

    call_command("match_train", "--sample", str(live // 4), "--no-backlog", stdout=out)

    version = MatchModelVersion.objects.get()
    training = version.params["training"]
    assert version.active, training["reason"]
    assert training["sampled"] and training["records"] == live // 4
    assert all(count > 0 for count in training["session_records"])
    assert training["expected_matches"] >= 50
    assert "EM on whole blocks drawn from all the live records" in out.getvalue()


def test_every_training_session_rule_is_a_stored_blocking_rule():
    """match_train draws the sessions' blocks from the stored blocking keys (``rule:value``)."""
    stored = {rule.name: rule.key for rule in DEFAULT_BLOCKING_RULES}
    for session in DEFAULT_TRAINING_SESSIONS:
        assert stored.get(session.rule.name) is session.rule.key
