"""The command line, ``python -m bench.people`` (see the package's docstring): generates the data of each
size, does every run in a child process of its own (``python -m bench.people --only RUN --data PATH``, so
its peak memory is its own) and prints the report.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .engines import run_batch, run_engine, run_splink
from .product import run_product
from .records import data_write

RUNNERS = {"product": run_product, "batch": run_batch, "engine": run_engine, "splink": run_splink}


# --- Orchestration and report -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.people",
        description="Identity resolution on synthetic, realistically corrupted person records: the product's "
        "own path, the pure engine and Splink, with profile precision / recall, over-merge rate, pairwise "
        "scores, time and memory.",
    )
    parser.add_argument("--records", type=int, default=100_000, help="records to generate (default 100000)")
    parser.add_argument(
        "--sizes", help="several sizes, e.g. 10000,100000,1000000: every run at each, and a growth table"
    )
    parser.add_argument("--sources", type=int, default=4, help="crm, erp, web, support, survey, other1, ...")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument("--batch-size", type=int, default=1000, help="records per intake call (max 1000)")
    parser.add_argument("--engine", action="store_true", help="also run the pure engine on the same data")
    parser.add_argument(
        "--engine-only", action="store_true", help="run the pure engine instead of the product path"
    )
    parser.add_argument(
        "--batch",
        action="store_true",
        help="also run the product's batch resolution (what `resolve --all` plans) on the records in memory",
    )
    parser.add_argument(
        "--batch-only",
        action="store_true",
        help="run the batch resolution instead of the product path (no database: for large sizes)",
    )
    parser.add_argument(
        "--batch-training",
        choices=("first", "table"),
        default="first",
        help="the batch's model: 'first' estimated on the first 50,000 records, as the automatic training "
        "leaves it (default); 'table' as `manage.py match_train` estimates it on the whole table (a random "
        "sample of 50,000 records, and whole blocks drawn from all of them for EM)",
    )
    parser.add_argument(
        "--splink", action="store_true", help="also run Splink on the same data (if installed)"
    )
    parser.add_argument(
        "--train-after",
        type=float,
        default=0.25,
        help="share of the records sent before `manage.py match_train` runs (default 0.25; above 1: after all)",
    )
    parser.add_argument(
        "--no-resolve-all", action="store_true", help="do not run `manage.py resolve --all` at the end"
    )
    parser.add_argument(
        "--chunk-size", type=int, help="override CDP_RESOLVE_CHUNK_SIZE (records per resolution transaction)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the product run's database")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="product run: resolve in N Celery worker processes from the broker (CELERY_BROKER_URL), as in "
        "production, instead of in this process (default 0: eager)",
    )
    parser.add_argument(
        "--misses",
        action="store_true",
        help="also say why the people still split are split (the closest pair of their records on two "
        "profiles: no blocking key shared, a guard, the review band, scored too low), for the product and the "
        "engine",
    )
    parser.add_argument(
        "--duckdb-memory",
        default="8GB",
        help="memory limit of Splink's DuckDB (default 8GB; it spills beyond)",
    )
    parser.add_argument("--data-dir", help="where the generated data goes (default: a temporary directory)")
    parser.add_argument("--json", metavar="PATH", help="also write every figure as JSON to PATH")
    parser.add_argument("--only", choices=sorted(RUNNERS), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.size_list = [int(size) for size in args.sizes.split(",")] if args.sizes else [args.records]
    if any(size < 1 for size in args.size_list):
        parser.error("sizes must be at least 1")
    if not 1 <= args.batch_size <= 1000:
        parser.error("--batch-size must be between 1 and 1000 (the API's limit per request)")
    if args.sources < 1:
        parser.error("--sources must be at least 1")
    return args


def _child(run: str, data: Path, args: argparse.Namespace) -> dict | None:
    command = [sys.executable, "-m", "bench.people", "--only", run, "--data", str(data)]
    if args.chunk_size:
        command += ["--chunk-size", str(args.chunk_size)]
    command += ["--train-after", str(args.train_after)]
    if args.no_resolve_all:
        command.append("--no-resolve-all")
    if args.keep:
        command.append("--keep")
    if args.workers:
        command += ["--workers", str(args.workers)]
    if args.misses:
        command.append("--misses")
    command += ["--duckdb-memory", args.duckdb_memory, "--batch-training", args.batch_training]
    started = time.perf_counter()
    process = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if process.returncode != 0:
        print(f"{run}: failed (exit status {process.returncode})", file=sys.stderr)
        return None
    result = json.loads(process.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - started
    return result


def _runs(args: argparse.Namespace) -> list[str]:
    runs = ["engine"] if args.engine_only else ["batch"] if args.batch_only else ["product"]
    if args.batch and "batch" not in runs:
        runs.append("batch")
    if args.engine and "engine" not in runs:
        runs.append("engine")
    if args.splink:
        try:
            import splink  # noqa: F401
        except ImportError:
            print("splink is not installed (pip install splink): the Splink run is skipped", file=sys.stderr)
        else:
            runs.append("splink")
    return runs


def _data_report(meta: dict) -> list[str]:
    records = meta["records"]
    lines = [
        f"data: {records:,} records of {meta['people']:,} people in {meta['households']:,} households "
        f"({meta['people_in_shared_households'] / meta['people']:.0%} of the people share their address with "
        f"another customer); seed {meta['seed']}; generated in {meta['generate_seconds']:.1f} s",
        "  per source: " + ", ".join(f"{slug} {count:,}" for slug, count in meta["per_source"].items()),
        "  corruptions (share of records): "
        + ", ".join(f"{kind} {count / records:.1%}" for kind, count in meta["corruptions"].items()),
        "  missing (share of records): "
        + ", ".join(f"{name} {count / records:.0%}" for name, count in meta["missing"].items()),
    ]
    return lines


def _result_rows(size: int, result: dict) -> list[str]:
    rows = []
    seconds = result["seconds"]
    for stage, s in result["stages"].items():
        rows.append(
            f"{size:>9,} {stage:<24} {s['profile_precision']:7.4f} {s['profile_recall']:7.4f} "
            f"{s['over_merge_rate']:8.4f} | {s['pair_precision']:7.4f} {s['pair_recall']:7.4f} "
            f"{s['pair_f1']:7.4f} | {s['profiles']:>9,} {s['people']:>9,} | {seconds:8.1f} "
            f"{size / seconds if seconds else 0:8,.0f} {result['peak_rss_mb']:8,.0f}"
        )
    return rows


HEADER = (
    f"{'records':>9} {'run / stage':<24} {'prof P':>7} {'prof R':>7} {'overmrg':>8} | {'pair P':>7} "
    f"{'pair R':>7} {'pair F1':>7} | {'profiles':>9} {'people':>9} | {'time s':>8} {'rec/s':>8} {'peak MB':>8}"
)


def _miss_lines(name: str, size: int, result: dict) -> list[str]:
    misses = result["misses"]
    split = sum(entry["people"] for entry in misses.values())
    lines = [
        f"  {name} at {size:,}: why {split:,} people are split (their closest pair of records on two profiles)"
    ]
    for category, entry in misses.items():
        evidence = ", ".join(f"{what} {n}" for what, n in list(entry["evidence"].items())[:5])
        lines.append(f"    {entry['people']:>6,}  {category:<56} agreeing on: {evidence}")
    return lines


def report(results: dict[int, dict[str, dict]], metas: dict[int, dict]) -> str:
    lines = [""]
    for meta in metas.values():
        lines += _data_report(meta)
    lines += ["", HEADER, "-" * len(HEADER)]
    for size, runs in results.items():
        for name, result in runs.items():
            label = {"product": "product: ", "batch": "", "engine": "", "splink": ""}[name]
            for row in _result_rows(size, result):
                lines.append(row.replace(" after", f" {label}after", 1) if label else row)
    lines.append(
        "prof P: share of profiles holding one person; prof R: share of people whose records are all on one "
        "profile; overmrg: share of people sharing a profile with another person; pair: pairs of records on "
        "one profile; time: the run's resolution work (product: intake + training + resolve --all; batch, "
        "engine and Splink: records in, clusters out); peak MB: the run's own process (maximum RSS)."
    )
    for size, runs in results.items():
        for name, result in runs.items():
            if name == "product":
                t = result["timings"]
                lines.append(
                    f"  product at {size:,}: {result['database']}; intake {t['ingest']:.1f} s, match_train "
                    f"{t['train']:.1f} s, resolve --all {t['resolve_all']:.1f} s; CPU of the process "
                    f"{result['cpu_seconds']:.1f} s"
                )
                for stage, outcome in result["outcome"].items():
                    lines.append(
                        f"    {stage}: {outcome['profiles_active']:,} active profiles, {outcome['merges']:,} "
                        f"merges, {outcome['conflicts']:,} conflicts, suggestions {outcome['suggestions']}"
                    )
                    for problem in outcome["problems"]:
                        lines.append(f"    PROBLEM: {problem}")
                for note in result["notes"]:  # a command's first and last lines (all of it is in --json)
                    parts = note.strip().splitlines() or [""]
                    lines.append(f"    note: {parts[0]}" + (f" [...] {parts[-1]}" if len(parts) > 1 else ""))
            elif name == "batch":
                blocks = result.get("session_records")
                drawn = (
                    f"; EM on whole blocks of {'/'.join(f'{n:,}' for n in blocks)} records" if blocks else ""
                )
                lines.append(
                    f"  batch at {size:,}: model {result['model']} (training '{result.get('training', 'first')}':"
                    f" {result['training_records']:,} records{drawn}, {result['estimate_seconds']:.1f} s), "
                    f"{result['review_pairs']:,} pairs to review"
                )
            elif name == "engine":
                lines.append(
                    f"  engine at {size:,}: {result['candidate_pairs']:,} candidate pairs, "
                    f"{result['review_pairs']:,} pairs to review, {result['refused_joins']:,} refused joins, "
                    f"{result['oversize_blocks_skipped']:,} oversize blocks skipped"
                )
            elif name == "splink":
                lines.append(f"  splink {result['splink_version']} at {size:,} (DuckDB)")
            if "misses" in result:
                lines += _miss_lines(name, size, result)
    if len(results) > 1:
        lines += ["", "How the cost grows (exponent k in time ~ records^k against the previous size):"]
        names = sorted({name for runs in results.values() for name in runs})
        for name in names:
            previous = None
            for size, runs in results.items():
                result = runs.get(name)
                if result is None:
                    continue
                growth = ""
                if previous is not None:
                    k_time = math.log(result["seconds"] / previous[1]) / math.log(size / previous[0])
                    k_mem = math.log(result["peak_rss_mb"] / previous[2]) / math.log(size / previous[0])
                    growth = f"  time k={k_time:.2f}, memory k={k_mem:.2f}"
                lines.append(
                    f"  {name:<8} {size:>9,} records: {result['seconds']:8.1f} s, "
                    f"{size / result['seconds']:8,.0f} rec/s, peak {result['peak_rss_mb']:7,.0f} MB{growth}"
                )
                previous = (size, result["seconds"], result["peak_rss_mb"])
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.only:
        data = Path(args.data)
        meta = json.loads(Path(f"{data}.meta.json").read_text())
        result = RUNNERS[args.only](data, meta, args)
        print(json.dumps(result, default=str))
        return 0
    runs = _runs(args)
    results: dict[int, dict[str, dict]] = {}
    metas: dict[int, dict] = {}
    with tempfile.TemporaryDirectory(prefix="cdp-people-", dir=args.data_dir) as directory:
        for size in args.size_list:
            data = Path(directory) / f"people-{size}-{args.sources}-{args.seed}.jsonl"
            print(f"generating {size:,} records ...", file=sys.stderr)
            metas[size] = data_write(
                data, records=size, sources=args.sources, seed=args.seed, batch_size=args.batch_size
            )
            results[size] = {}
            for run in runs:
                print(f"{run} at {size:,} records ...", file=sys.stderr)
                result = _child(run, data, args)
                if result is not None:
                    results[size][run] = result
            data.unlink()
    print(report(results, metas))
    if args.json:
        Path(args.json).write_text(json.dumps({"data": metas, "results": results}, indent=2, default=str))
    failed = any(
        run not in results[size] or any(o["problems"] for o in results[size][run].get("outcome", {}).values())
        for size in results
        for run in runs
    )
    return 1 if failed else 0
