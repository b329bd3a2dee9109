"""The same records without the product's database, normalised exactly as intake does it: the product's
batch resolution in memory (``run_batch``, what ``resolve --all`` plans), the pure engine
(``profiles.matching.link_records``, ``run_engine``) and Splink on DuckDB (``run_splink``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from .records import data_batches, people_sources
from .scores import miss_report, partition_scores, peak_rss_mb

# --- The pure engine and Splink on the same records ---------------------------------------------------------


def _normalised(data: Path, meta: dict, rejected: Counter) -> Iterator[tuple[str, int, object]]:
    """(source, person, ``NormalisedRecord``) of every record, normalised exactly as intake does it; a record
    intake would reject never reaches resolution: it is left out and counted in ``rejected``."""
    from ingestion.normalise import EMAIL, PHONE, TEXT, RecordError, SourceRules, normalise_record

    specs = people_sources(len(meta["sources"]))
    normalisers = {"email": EMAIL, "phone": PHONE, **{spec.slug: TEXT for spec in specs}}
    rules = {
        spec.slug: SourceRules(spec.slug, spec.region, spec.field_mapping, normalisers) for spec in specs
    }
    for slug, payloads, persons in data_batches(data):
        for payload, person in zip(payloads, persons, strict=True):
            result = normalise_record(payload, rules[slug])
            if isinstance(result, RecordError):
                rejected[f"{result.field}: {result.reason}"] += 1
                continue
            yield slug, person, result


def _match_records(data: Path, meta: dict):
    """The records as the matcher sees them, their persons, and what intake would have rejected."""
    from profiles.matching import MatchRecord

    persons, records, rejected = array("l"), [], Counter()
    for slug, person, record in _normalised(data, meta, rejected):
        records.append(MatchRecord.from_attributes(len(records), record.attributes, source=slug))
        persons.append(person)
    return records, persons, dict(rejected)


def _default_identifier_rules():
    """The identifier rules a new installation starts with (ingestion migration 0002), without a database."""
    import importlib
    from types import SimpleNamespace

    from profiles.services.resolution import identifier_rules

    seed = importlib.import_module("ingestion.migrations.0002_seed_identifier_rules")
    return identifier_rules(SimpleNamespace(**rule) for rule in seed.DEFAULT_RULES)


def run_batch(data: Path, meta: dict, args: argparse.Namespace) -> dict:
    """The product's batch resolution on the records in memory: what ``resolve --all`` plans on a database
    holding them (``reevaluation.records_group``: identifiers first, under the identifier limits, blocked
    values and the deterministic guard, then probabilistic links under the guardrails), with the model the
    product's automatic training would have active (``matching.records_estimate`` on the first
    ``MAX_TRAINING_RECORDS`` records). No database: records in, profiles out, as the engine and Splink are
    timed."""
    import random

    # Django's settings and app registry (the services' modules import models); no database is opened.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only-insecure-secret-key")
    os.environ.setdefault("CDP_SUPPRESSION_KEY", "bench-only-insecure-suppression-key")
    import django

    django.setup()
    from cdp.collector import collector_tune

    collector_tune()  # as the product's commands (resolve --all) and workers run
    from profiles.matching import MatchRecord
    from profiles.services.matching import MAX_TRAINING_RECORDS, records_estimate, records_session_blocks
    from profiles.services.reevaluation import ResolutionRecord, records_group

    rules = _default_identifier_rules()
    records, persons, rejected = [], array("l"), Counter()
    for slug, person, record in _normalised(data, meta, rejected):
        position = len(records)
        records.append(
            ResolutionRecord(
                position,
                None,
                slug,
                record.external_id,
                [key for key in record.identifiers if not rules.is_blocked(key)],
                MatchRecord.from_attributes(position, record.attributes, source=slug),
            )
        )
        persons.append(person)
    rss_before = peak_rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    rng, session_records = random.Random(0), None
    training = getattr(args, "batch_training", "first")
    if training == "first":
        # The model the streaming product has active at this size: its automatic estimates stop once one
        # was made on MAX_TRAINING_RECORDS records, so the last one saw (about) the first that many.
        sample = range(min(len(records), MAX_TRAINING_RECORDS))
    else:
        # What `manage.py match_train` estimates on the whole table: a random sample of records (u, term
        # frequencies, prior) and, on a larger table, whole blocks drawn from all the records for EM.
        sample = range(len(records))
        if len(records) > MAX_TRAINING_RECORDS:
            sample = sorted(rng.sample(sample, MAX_TRAINING_RECORDS))
            session_records = records_session_blocks([record.match for record in records], rng)
    estimate = records_estimate(
        [records[n].match for n in sample],
        rng=rng,
        seed=0,
        session_records=session_records,
        population=len(records) if session_records else None,
    )
    estimated = time.perf_counter() - started
    members, _, suggestions = records_group(
        records, rules, {}, (0, estimate.model) if estimate.usable else None
    )
    seconds = time.perf_counter() - started
    clusters = array("l", bytes(array("l").itemsize * len(records)))
    for label, group in enumerate(members.values()):
        for position in group:
            clusters[position] = label
    return {
        "run": "batch",
        "stages": {"batch": partition_scores(persons, clusters)},
        "rejected_at_intake": dict(rejected),
        "model": "estimated, active" if estimate.usable else f"estimated, not used: {estimate.unusable}",
        "training_records": len(sample),
        "training": training,
        "session_records": [len(m) for m in session_records] if session_records else None,
        "estimate_seconds": estimated,
        "review_pairs": len(suggestions),
        "seconds": seconds,
        "cpu_seconds": time.process_time() - cpu,
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_mb": rss_before,
    }


def run_engine(data: Path, meta: dict, args: argparse.Namespace) -> dict:
    from profiles.matching import link_records

    records, persons, rejected = _match_records(data, meta)
    rss_before = peak_rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    result = link_records(records)
    seconds = time.perf_counter() - started
    clusters = array("l", bytes(array("l").itemsize * len(records)))
    for label, group in enumerate(result.clusters):
        for position in group:
            clusters[position] = label
    misses = miss_report(records, persons, clusters, result.model) if getattr(args, "misses", False) else None
    return {
        "run": "engine",
        "stages": {"engine": partition_scores(persons, clusters)},
        **({"misses": misses} if misses is not None else {}),
        "rejected_at_intake": rejected,
        "candidate_pairs": len(result.pairs),
        "review_pairs": len(result.suggestions()),
        "refused_joins": len(result.refused_joins),
        "oversize_blocks_skipped": result.blocking.oversize_blocks_skipped,
        "match_share": result.model.match_share,
        "seconds": seconds,
        "cpu_seconds": time.process_time() - cpu,
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_mb": rss_before,
    }


def run_splink(data: Path, meta: dict, args: argparse.Namespace) -> dict:
    """Splink (DuckDB) deduplicating the same records, with its usual person-data settings: cleaned the
    way the engine cleans them, blocking rules like the engine's, u from random pairs, m by EM, clusters at
    the same 0.99 match probability the product links at."""
    import pandas as pd
    import splink.comparison_library as cl
    from splink import Linker, SettingsCreator, block_on
    from splink.backends.duckdb import DuckDBAPI

    records, persons, rejected = _match_records(data, meta)
    frame = pd.DataFrame(
        {
            "unique_id": range(len(records)),
            "first_name": [r.first_name or None for r in records],
            "last_name": [r.last_name or None for r in records],
            "birth_date": [
                f"{r.birth_date[0]}-{int(r.birth_date[1]):02d}-{int(r.birth_date[2]):02d}"
                if r.birth_date
                else None
                for r in records
            ],
            "email": [r.email or None for r in records],
            "phone": [r.phone or None for r in records],
            "address_line1": [r.address_line1 or None for r in records],
            "city": [r.city or None for r in records],
            "postcode": [r.postcode or None for r in records],
        }
    )
    del records
    rss_before = peak_rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    db_api = DuckDBAPI()
    # DuckDB takes 80 % of the machine's memory by default; cap it (it spills to disk beyond) on a shared box.
    spill = Path(tempfile.gettempdir()) / f"cdp-bench-duckdb-{os.getpid()}"
    db_api.duckdb_con.execute(f"SET memory_limit = '{args.duckdb_memory}'")
    db_api.duckdb_con.execute(f"SET temp_directory = '{spill}'")
    table = db_api.register(frame)
    settings = SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        blocking_rules_to_generate_predictions=[
            block_on("postcode", "substr(first_name, 1, 1)", "substr(last_name, 1, 1)"),
            block_on("last_name", "substr(birth_date, 1, 4)"),
            block_on("first_name", "last_name"),
            block_on("birth_date"),
            block_on("address_line1"),
            block_on("phone"),
            block_on("email"),
        ],
        comparisons=[
            cl.NameComparison("first_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("last_name").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison("birth_date", input_is_string=True),
            cl.EmailComparison("email"),
            cl.LevenshteinAtThresholds("phone", [1, 2]),
            cl.JaroWinklerAtThresholds("address_line1", [0.9, 0.7]),
            cl.ExactMatch("city").configure(term_frequency_adjustments=True),
            cl.LevenshteinAtThresholds("postcode", [1]).configure(term_frequency_adjustments=True),
        ],
        retain_intermediate_calculation_columns=False,
    )
    linker = Linker(table, settings, log_level=40)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("first_name", "last_name", "birth_date"), block_on("email")], recall=0.7
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=5e6, seed=1)
    for rule in (block_on("birth_date"), block_on("postcode"), block_on("first_name", "last_name")):
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    predictions = linker.inference.predict(threshold_match_probability=0.5)
    clustered = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=0.99
    ).as_pandas_dataframe()
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu
    shutil.rmtree(spill, ignore_errors=True)
    labels = {}
    clusters = array("l", bytes(array("l").itemsize * len(persons)))
    for unique_id, cluster_id in zip(clustered["unique_id"], clustered["cluster_id"], strict=True):
        clusters[int(unique_id)] = labels.setdefault(cluster_id, len(labels))
    return {
        "run": "splink",
        "stages": {"splink": partition_scores(persons, clusters)},
        "rejected_at_intake": rejected,
        "predicted_pairs": _splink_count(db_api, predictions),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_mb": rss_before,
        "splink_version": __import__("splink").__version__,
    }


def _splink_count(db_api, table) -> int | None:
    try:
        return int(db_api.duckdb_con.sql(f"SELECT count(*) FROM {table.physical_name}").fetchall()[0][0])
    except Exception:  # the internals of another version: the count is a detail
        return None
