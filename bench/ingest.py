"""Ingestion benchmark: synthetic overlapping records through the product's own intake and resolution path.

Run from the repository root::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python -m bench.ingest [--records 100000]
        [--batch-size 1000] [--sources 4] [--seed 1] [--mode both|e2e|split] [--keep]

The command owns its database: on PostgreSQL it creates ``cdp_bench_<pid>`` next to the database named in
``DATABASE_URL`` (the role needs CREATEDB), migrates it, and drops it at the end unless ``--keep``; without
``DATABASE_URL`` (or with a SQLite one) it uses a throwaway SQLite file in the temporary directory. The
configured database itself is never written to.

What it measures, in one process, with Celery in eager mode (no broker):

- end to end: every batch is POSTed as JSON to ``/api/v1/sources/{slug}/records`` with the source's key,
  in-process through ``django.test.Client``; the request stores the records and, once its transaction
  commits, the scheduled task resolves them, all before the response returns. The clock runs from the first
  POST until the last record is processed.
- split (what happens with real workers, where intake and processing are different processes): the same
  POSTs with the task deferred (the scheduled batch ids are collected), then every batch's task is run.
- the raw-copy baseline: psycopg 3 ``COPY ... FROM STDIN`` of the same payload JSON strings into a plain
  ``(id bigserial, payload jsonb)`` table, one COPY in one transaction (PostgreSQL only).

At the end every record must be processed (none pending or quarantined) and the number of profiles formed is
compared with the number expected from the generated identifiers. Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import logging
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench.synthetic import Dataset, generate

POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql", "postgis"}


class BenchError(RuntimeError):
    pass


# --- Arguments ----------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest",
        description="Load synthetic overlapping records through the CDP's intake and resolution path and "
        "report records/s end to end, peak memory and the ratio to a raw PostgreSQL COPY.",
    )
    parser.add_argument("--records", type=int, default=100_000, help="records to send (default 100000)")
    parser.add_argument("--batch-size", type=int, default=1000, help="records per request (max 1000)")
    parser.add_argument("--sources", type=int, default=4, help="source systems (crm, erp, web, social, ...)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic data")
    parser.add_argument(
        "--mode",
        choices=["both", "e2e", "split", "workers"],
        default="both",
        help="e2e: intake and processing in each request; split: all intake, then all processing; "
        "workers: the production shape, intake in this process while --workers Celery worker processes "
        "resolve from the broker (CELERY_BROKER_URL); both (default): e2e, then split, then workers when "
        "CELERY_BROKER_URL is set, each on an emptied database",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="workers mode: processes of the Celery worker (celery -A cdp worker -c N; default 2)",
    )
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        help="override CDP_RESOLVE_CHUNK_SIZE (records per resolution transaction)",
    )
    parser.add_argument(
        "--analyze",
        choices=["auto", "on", "off"],
        default="auto",
        help="ANALYZE the tables resolution reads each time the requests / batch tasks of a phase double "
        "(1, 2, 4, 8, ...), standing in for autovacuum; auto (default): on when the server runs with "
        "autovacuum off",
    )
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database at the end")
    parser.add_argument("--no-copy", action="store_true", help="skip the raw COPY baseline")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="write a cProfile of each phase to DIR/<phase>.prof (slows the run; figures are then inflated)",
    )
    parser.add_argument(
        "--tracemalloc", action="store_true", help="also report the peak of Python allocations (slow)"
    )
    args = parser.parse_args(argv)
    if args.records < 1:
        parser.error("--records must be at least 1")
    if not 1 <= args.batch_size <= 1000:
        parser.error("--batch-size must be between 1 and 1000 (the API's limit per request)")
    if args.sources < 1:
        parser.error("--sources must be at least 1")
    if args.mode == "workers" and not os.environ.get("CELERY_BROKER_URL"):
        parser.error("--mode workers needs CELERY_BROKER_URL (e.g. redis://127.0.0.1:6379/15)")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


# --- The benchmark's own database ---------------------------------------------------------------------------


@dataclass
class BenchDatabase:
    vendor: str  # postgresql / sqlite
    name: str
    url: str
    admin_conninfo: str | None = None
    path: Path | None = None


def _libpq_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql"))


def database_create() -> BenchDatabase:
    """Create an empty database for this run, next to the configured one."""
    url = os.environ.get("DATABASE_URL", "")
    parts = urlsplit(url)
    name = f"cdp_bench_{os.getpid()}"
    if parts.scheme in POSTGRES_SCHEMES:
        import psycopg
        from psycopg import sql

        candidates = [_libpq_url(url), _libpq_url(urlunsplit(parts._replace(path="/postgres")))]
        last_error: Exception | None = None
        for admin in candidates:
            try:
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except psycopg.OperationalError as exc:
                last_error = exc
                continue
            return BenchDatabase(
                "postgresql", name, urlunsplit(parts._replace(path="/" + name)), admin_conninfo=admin
            )
        raise BenchError(f"cannot create the benchmark database {name}: {last_error}")
    if url and parts.scheme not in {"sqlite", ""}:
        raise BenchError(f"unsupported DATABASE_URL scheme {parts.scheme!r} (PostgreSQL or SQLite)")
    path = Path(tempfile.gettempdir()) / f"{name}.sqlite3"
    return BenchDatabase("sqlite", str(path), f"sqlite:///{path}", path=path)


def database_drop(db: BenchDatabase) -> None:
    try:
        from django.db import connections

        connections.close_all()
    except Exception:  # Django never got configured (a settings error): there is nothing to close
        pass
    if db.vendor == "postgresql":
        import psycopg
        from psycopg import sql

        with psycopg.connect(db.admin_conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db.name)))
    elif db.path is not None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{db.path}{suffix}").unlink(missing_ok=True)


def django_setup(db: BenchDatabase, args: argparse.Namespace) -> None:
    os.environ["DATABASE_URL"] = db.url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
    # DEBUG stays off unless set: with DEBUG on, Django keeps every query in memory and the figures suffer.
    os.environ.setdefault("SECRET_KEY", "bench-only-insecure-secret-key")
    os.environ.setdefault("CDP_SUPPRESSION_KEY", "bench-only-insecure-suppression-key")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from cdp.collector import collector_tune

    collector_tune()  # as a web process does (cdp/wsgi.py): this process stands in for one
    # Eager mode still builds a broker connection object once; its "no hostname" notice is noise here.
    logging.getLogger("kombu.connection").setLevel(logging.ERROR)
    from django.conf import settings

    from cdp.celery import app

    # The in-process test client sends Host: testserver.
    if "*" not in settings.ALLOWED_HOSTS and "testserver" not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    app.conf.task_always_eager = True  # processing in this process, whatever CELERY_BROKER_URL says
    app.conf.task_eager_propagates = True  # (the workers phase turns it off while it runs)
    if args.chunk_size:
        settings.CDP_RESOLVE_CHUNK_SIZE = args.chunk_size
        os.environ["CDP_RESOLVE_CHUNK_SIZE"] = str(args.chunk_size)  # the workers' setting too


# --- Measuring ----------------------------------------------------------------------------------------------

_FROM = re.compile(r'\bFROM\s+"?(\w+)"?', re.IGNORECASE)
_TARGET = re.compile(r'^\s*(?:UPDATE|INSERT\s+INTO|DELETE\s+FROM|COPY)\s+"?(\w+)"?', re.IGNORECASE)


def _sql_kind(sql: str) -> str:
    """A short label for a statement: verb and table, e.g. ``INSERT profiles_identity``."""
    words = sql.split(None, 1)
    verb = words[0].upper() if words else "?"
    if verb == "SELECT":
        if "pg_advisory" in sql:
            return "SELECT pg_advisory_xact_lock"
        match = _FROM.search(sql)
        suffix = " FOR UPDATE" if sql.rstrip().endswith("FOR UPDATE") else ""
        return f"SELECT {match.group(1) if match else '-'}{suffix}"
    if verb in {"INSERT", "UPDATE", "DELETE", "COPY"}:
        match = _TARGET.search(sql)
        table = match.group(1) if match else "?"
        if verb == "UPDATE" and "CASE WHEN" in sql:
            return f"UPDATE {table} (bulk_update)"
        return f"{verb} {table}"
    return verb


class QueryStats:
    """Counts the queries Django runs and the time spent waiting for them (execute, round trip, fetch)."""

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self.by_kind: dict[str, list] = defaultdict(lambda: [0, 0.0])

    def __call__(self, execute, sql, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = time.perf_counter() - start
            self.count += 1
            self.seconds += elapsed
            entry = self.by_kind[_sql_kind(sql)]
            entry[0] += 1
            entry[1] += elapsed


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def current_rss_mb() -> float | None:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Phase:
    name: str
    records: int
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # this process's CPU (user + system): the Python side, whatever the load
    queries: int = 0
    db_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    traced_peak_mb: float | None = None
    by_kind: dict = field(default_factory=dict)
    # The matching model's training: a task of its own (on a worker in production) that eager mode runs
    # inline when a chunk finds it due. Measured apart and left out of the phase's rate and CPU figures.
    training_runs: int = 0
    training_seconds: float = 0.0
    training_cpu_seconds: float = 0.0
    training_queries: int = 0
    training_db_seconds: float = 0.0

    @property
    def net_seconds(self) -> float:
        return self.seconds - self.training_seconds

    @property
    def net_cpu_seconds(self) -> float:
        return self.cpu_seconds - self.training_cpu_seconds

    @property
    def net_queries(self) -> int:
        return self.queries - self.training_queries

    @property
    def rate(self) -> float:
        return self.records / self.net_seconds if self.net_seconds else 0.0

    def as_dict(self) -> dict:
        return {
            "records": self.records,
            "seconds": round(self.net_seconds, 3),
            "cpu_seconds": round(self.net_cpu_seconds, 3),
            "records_per_second": round(self.rate, 1),
            "queries": self.net_queries,
            "training": {
                "runs": self.training_runs,
                "seconds": round(self.training_seconds, 3),
                "cpu_seconds": round(self.training_cpu_seconds, 3),
                "queries": self.training_queries,
                "db_seconds": round(self.training_db_seconds, 3),
            },
            "db_seconds": round(self.db_seconds - self.training_db_seconds, 3),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "traced_peak_mb": None if self.traced_peak_mb is None else round(self.traced_peak_mb, 1),
            "queries_by_kind": {
                kind: {"count": count, "seconds": round(seconds, 3)}
                for kind, (count, seconds) in sorted(self.by_kind.items(), key=lambda kv: -kv[1][1])
            },
        }


@contextlib.contextmanager
def training_measured(phase: Phase, stats: QueryStats):
    """Time the matching model's training apart from the phase it runs in (see ``Phase.training_runs``)."""
    from unittest import mock

    from profiles.services import matching

    train = matching.match_model_train_if_due

    def timed():
        start, cpu, queries, waited = time.perf_counter(), time.process_time(), stats.count, stats.seconds
        try:
            return train()
        finally:
            phase.training_runs += 1
            phase.training_seconds += time.perf_counter() - start
            phase.training_cpu_seconds += time.process_time() - cpu
            phase.training_queries += stats.count - queries
            phase.training_db_seconds += stats.seconds - waited

    with mock.patch.object(matching, "match_model_train_if_due", timed):
        yield


@contextlib.contextmanager
def measured(phase: Phase, args: argparse.Namespace):
    import tracemalloc

    from django.db import connection

    stats = QueryStats()
    profiler = cProfile.Profile() if args.profile else None
    if args.tracemalloc:
        tracemalloc.start()
    with connection.execute_wrapper(stats), training_measured(phase, stats):
        start, cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        try:
            yield phase
        finally:
            if profiler:
                profiler.disable()
            phase.seconds = time.perf_counter() - start
            phase.cpu_seconds = time.process_time() - cpu
    if profiler:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(Path(args.profile) / f"{phase.name}.prof")
    if args.tracemalloc:
        phase.traced_peak_mb = tracemalloc.get_traced_memory()[1] / (1024 * 1024)
        tracemalloc.stop()
    phase.queries, phase.db_seconds, phase.by_kind = stats.count, stats.seconds, dict(stats.by_kind)
    phase.peak_rss_mb = peak_rss_mb()


# --- The product's path -------------------------------------------------------------------------------------


def sources_create(dataset: Dataset) -> dict[str, str]:
    """Create the sources through the product's services; return each one's API key."""
    from ingestion.services import source_create, source_key_create

    keys = {}
    for spec in dataset.sources:
        source = source_create(
            slug=spec.slug, kind=spec.kind, default_region=spec.region, field_mapping=spec.field_mapping
        )
        _, keys[spec.slug] = source_key_create(source=source)
    return keys


def post_all(dataset: Dataset, keys: dict[str, str], analyzer: Analyzer) -> None:
    """POST every batch as its source, through the whole HTTP stack in-process."""
    from django.test import Client

    client = Client()
    headers = {slug: {"Authorization": f"Bearer {key}"} for slug, key in keys.items()}
    for slug, payloads in dataset.batches:
        body = b'{"records":[' + b",".join(payloads) + b"]}"
        response = client.generic(
            "POST",
            f"/api/v1/sources/{slug}/records",
            body,
            content_type="application/json",
            headers=headers[slug],
        )
        if response.status_code != 202:
            raise BenchError(f"POST {slug}: HTTP {response.status_code}: {response.content[:500]!r}")
        answer = json.loads(response.content)
        if answer["accepted"] != len(payloads) or answer["rejected"]:
            raise BenchError(
                f"POST {slug}: {answer['accepted']}/{len(payloads)} accepted: {answer['rejected'][:3]}"
            )
        analyzer.tick()


@contextlib.contextmanager
def processing_deferred(scheduled: list[str]):
    """Collect the batches intake schedules (once its transaction commits) instead of processing them."""
    from unittest import mock

    from django.db import transaction

    def collect(batch) -> None:
        batch_id = str(batch.pk)
        transaction.on_commit(lambda: scheduled.append(batch_id))

    from ingestion import services

    if not hasattr(services, "_schedule"):
        raise BenchError("ingestion.services._schedule is gone: update bench.ingest.processing_deferred")
    with mock.patch.object(services, "_schedule", collect):
        yield


def process_scheduled(scheduled: list[str], analyzer: Analyzer) -> None:
    """Run each batch's task the way a worker would (in eager mode: ``apply``)."""
    from ingestion.tasks import batch_process_task

    for batch_id in scheduled:
        batch_process_task.apply(args=(batch_id,)).get()
        analyzer.tick()


class Analyzer:
    """Stands in for autovacuum's ANALYZE on a server that runs without it.

    The benchmark starts from empty tables; without statistics PostgreSQL keeps planning for empty tables
    (sequential scans for ``profile_id IN (...)``, slower with every chunk) and the run measures a server
    nobody runs in production. Autovacuum analyses a table once a tenth of it changed; analysing when the
    work done doubles keeps the estimates within a factor of two at a cost of about twice one final ANALYZE.
    """

    TABLES = ("profiles_profile", "profiles_identity", "profiles_sourcerecord", "ingestion_inboundrecord")

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.ticks, self.next, self.runs = enabled, 0, 1, 0

    def tick(self) -> None:
        from django.db import connection

        self.ticks += 1
        if self.enabled and self.ticks >= self.next:
            self.next *= 2
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE " + ", ".join(self.TABLES))
            self.runs += 1


def data_reset() -> None:
    """Empty everything intake and processing wrote; sources, keys and identifier rules stay."""
    from django.core.management.color import no_style
    from django.db import connection

    from ingestion.models import Batch, InboundRecord
    from profiles.models import (
        Identity,
        MatchModelVersion,
        MatchSuggestion,
        MergeEvent,
        Profile,
        ResolutionConflict,
        SourceRecord,
    )

    # The matching model too: each phase estimates its own as the records arrive.
    models = [
        ResolutionConflict,
        MergeEvent,
        MatchSuggestion,
        MatchModelVersion,
        Identity,
        SourceRecord,
        Profile,
        InboundRecord,
        Batch,
    ]
    tables = [model._meta.db_table for model in models]
    statements = connection.ops.sql_flush(no_style(), tables, reset_sequences=True, allow_cascade=True)
    connection.ops.execute_sql_flush(statements)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            if _is_superuser(cursor):  # start the next phase without the previous one's dirty buffers
                cursor.execute("CHECKPOINT")


def _is_superuser(cursor) -> bool:
    cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    row = cursor.fetchone()
    return bool(row and row[0])


def outcome_check(dataset: Dataset) -> dict:
    """What the run left in the database, and whether it is what it should be."""
    from django.db.models import Count

    from ingestion.models import InboundRecord
    from profiles.models import Identity, MergeEvent, Profile, ResolutionConflict, SourceRecord

    statuses = dict(InboundRecord.objects.values_list("status").annotate(n=Count("id")).order_by())
    outcomes = dict(
        InboundRecord.objects.filter(status=InboundRecord.Status.PROCESSED)
        .values_list("outcome")
        .annotate(n=Count("id"))
        .order_by()
    )
    profiles = dict(Profile.objects.values_list("status").annotate(n=Count("id")).order_by())
    found = {
        "inbound": statuses,
        "outcomes": outcomes,
        "profiles": profiles,
        "source_records": SourceRecord.objects.count(),
        "identities": Identity.objects.count(),
        "merge_events": MergeEvent.objects.count(),
        "conflicts": ResolutionConflict.objects.count(),
    }
    problems = []
    if statuses.get("pending") or statuses.get("quarantined"):
        problems.append(f"records not processed: {statuses}")
    if statuses.get("processed", 0) != dataset.records:
        problems.append(f"{statuses.get('processed', 0)} records processed, {dataset.records} sent")
    if found["source_records"] != dataset.records - dataset.updates:
        problems.append(
            f"{found['source_records']} source records, {dataset.records - dataset.updates} expected"
        )
    warnings = []
    active = profiles.get("active", 0)
    if active != dataset.expected_profiles:
        warnings.append(
            f"{active} active profiles, {dataset.expected_profiles} expected from the generated identifiers"
        )
    found["problems"], found["warnings"] = problems, warnings
    return found


# --- The raw-copy baseline ----------------------------------------------------------------------------------


def copy_baseline(dataset: Dataset) -> dict:
    """COPY the same payload strings into a plain table: the rate PostgreSQL itself can take them in."""
    from django.db import connection, transaction

    payloads = list(dataset.payloads())
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_raw_copy")
        cursor.execute("CREATE TABLE bench_raw_copy (id bigserial PRIMARY KEY, payload jsonb NOT NULL)")
    result = {}
    # One COPY in one transaction: the ceiling.
    start = time.perf_counter()
    with (
        transaction.atomic(),
        connection.cursor() as cursor,
        cursor.cursor.copy("COPY bench_raw_copy (payload) FROM STDIN") as copy,
    ):
        for payload in payloads:
            copy.write_row((payload,))
    result["single"] = time.perf_counter() - start
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE bench_raw_copy")
    # One COPY and one commit per batch, like the requests.
    start = time.perf_counter()
    for _, batch in dataset.batches:
        with (
            transaction.atomic(),
            connection.cursor() as cursor,
            cursor.cursor.copy("COPY bench_raw_copy (payload) FROM STDIN") as copy,
        ):
            for payload in batch:
                copy.write_row((payload.decode(),))
    result["per_batch"] = time.perf_counter() - start
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_total_relation_size('bench_raw_copy')")
        result["table_mb"] = cursor.fetchone()[0] / (1024 * 1024)
        cursor.execute("DROP TABLE bench_raw_copy")
    return result


def _load() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def cpu_probe() -> float:
    """Milliseconds a fixed single-threaded Python workload takes (best of three): the machine's speed at the
    time. On a shared virtual machine it drifts by half (neighbours contending for caches and memory, which
    no counter of this guest shows), and every figure of a run drifts with it: compare runs only at
    similar probe values."""
    rows = [
        {"id": n, "name": f"person {n}", "email": f"p{n}@example.com", "tags": [n % 7, n % 11]}
        for n in range(3000)
    ]
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(25):
            text = json.dumps(rows)
            json.loads(text)
            sorted(rows, key=lambda row: row["email"][::-1])
        best = min(best, time.perf_counter() - start)
    return best * 1000


def server_facts() -> dict:
    from django.db import connection

    if connection.vendor != "postgresql":
        import sqlite3

        return {"server": f"SQLite {sqlite3.sqlite_version}"}
    facts = {}
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        facts["server"] = f"PostgreSQL {cursor.fetchone()[0]}"
        for name in ("shared_buffers", "synchronous_commit", "fsync", "autovacuum", "max_wal_size"):
            cursor.execute(f"SHOW {name}")
            facts[name] = cursor.fetchone()[0]
    return facts


# --- Report -------------------------------------------------------------------------------------------------


def _fmt_rate(phase: Phase | None) -> str:
    if phase is None:
        return "-"
    return f"{phase.rate:>10,.0f} rec/s  ({phase.net_seconds:,.2f} s)"


def report(result: dict, phases: dict[str, Phase], dataset: Dataset, checks: dict[str, dict]) -> str:
    lines = []
    e2e, intake, processing = phases.get("e2e"), phases.get("intake"), phases.get("processing")
    copy = result.get("copy")

    def row(label: str, value: str) -> None:
        lines.append(f"  {label:<34} {value}")

    lines.append("")
    lines.append("Ingestion benchmark")
    lines.append("  " + "-" * 76)
    row("database", f"{result['server']['server']} ({result['database']})")
    if "synchronous_commit" in result["server"]:
        server = result["server"]
        row(
            "server settings",
            f"shared_buffers={server['shared_buffers']} synchronous_commit={server['synchronous_commit']} "
            f"fsync={server['fsync']} autovacuum={server['autovacuum']}",
        )
    if result.get("analyze"):
        row(
            "ANALYZE (stands in for autovacuum)",
            "when a phase's requests / batch tasks double (1, 2, 4, ...)",
        )
    if result.get("load_before") is not None:
        row(
            "machine",
            f"{result['cpus']} CPUs, load average {result['load_before'][0]:.2f} before, "
            f"{result['load_after'][0]:.2f} after (other work on the machine skews wall times)",
        )
    row(
        "CPU probe (fixed Python workload)",
        f"{result['cpu_probe_before_ms']:,.0f} ms before, {result['cpu_probe_after_ms']:,.0f} ms after "
        "(the machine's speed: compare runs at similar values)",
    )
    row(
        "batch size / chunk size",
        f"{result['batch_size']} records per request / {result['chunk_size']} per transaction",
    )
    row("records sent", f"{dataset.records:,} ({dataset.updates:,} of them later versions)")
    row("sources", ", ".join(f"{slug} {count:,}" for slug, count in dataset.per_source.items()))
    row("people generated", f"{dataset.people:,}")
    row("profiles expected (deterministic)", f"{dataset.expected_profiles:,}")
    for mode, check in checks.items():
        profiles = check["profiles"]
        row(
            f"profiles formed ({mode})",
            f"{profiles.get('active', 0):,} active, {profiles.get('merged', 0):,} merged tombstones, "
            f"{check['merge_events']:,} merges, {check['conflicts']:,} conflicts",
        )
    lines.append("  " + "-" * 76)
    row("end to end (POST -> processed)", _fmt_rate(e2e))
    if "workers" in phases:
        row(f"end to end, {result['worker_processes']} workers", _fmt_rate(phases["workers"]))
    row("intake only (POST, deferred)", _fmt_rate(intake))
    row("processing only (batch tasks)", _fmt_rate(processing))
    if intake and processing:
        total = intake.net_seconds + processing.net_seconds
        row("intake + processing", f"{dataset.records / total:>10,.0f} rec/s  ({total:,.2f} s)")
    if copy:
        row("raw COPY, one transaction", f"{copy['rate']:>10,.0f} rec/s  ({copy['single']:,.2f} s)")
        row(
            "raw COPY, one commit per batch",
            f"{copy['per_batch_rate']:>10,.0f} rec/s  ({copy['per_batch']:,.2f} s)",
        )
        if e2e:
            row(
                "ratio end to end / COPY",
                f"{e2e.rate / copy['rate']:.1%}  (COPY is {copy['rate'] / e2e.rate:,.1f}x faster)",
            )
        if intake:
            row("ratio intake / COPY", f"{intake.rate / copy['rate']:.1%}")
        if processing:
            row("ratio processing / COPY", f"{processing.rate / copy['rate']:.1%}")
    else:
        row("raw COPY", result.get("copy_note", "-"))
    lines.append("  " + "-" * 76)
    for phase in phases.values():
        waited = phase.db_seconds - phase.training_db_seconds
        share = waited / phase.net_seconds if phase.net_seconds else 0
        row(
            f"{phase.name}: SQL",
            f"{phase.net_queries:,} queries ({phase.net_queries * 1000 / phase.records:,.1f} per 1000 records), "
            f"{waited:,.2f} s waiting on the database ({share:.0%})",
        )
        row(
            f"{phase.name}: CPU of this process",
            f"{phase.net_cpu_seconds:,.2f} s ({phase.net_cpu_seconds * 1e6 / phase.records:,.0f} us per record)",
        )
    for phase in phases.values():
        if phase.training_runs:
            row(
                f"{phase.name}: model training",
                f"{phase.training_runs} runs, {phase.training_seconds:,.2f} s, CPU "
                f"{phase.training_cpu_seconds:,.2f} s, {phase.training_queries:,} queries (a task of its "
                "own: inline in eager mode, on a worker in production; not in the figures above)",
            )
    if "workers" in result:
        used = result["workers"]
        row(
            "workers: CPU",
            f"{used['cpu_seconds']:,.2f} s ({used['cpu_seconds'] * 1e6 / dataset.records:,.0f} us per record, "
            f"{used['processes']} processes, model training included)",
        )
        row("workers: peak RSS of one process", f"{used['peak_rss_mb']:,.0f} MB")
        row(
            "workers: model training runs",
            f"{len(used['trainings'])} (records used: {', '.join(f'{n:,}' for n in used['trainings']) or '-'})",
        )
        row(
            "machine CPU busy during the run",
            f"{used['machine_busy']:.0%} of {result['cpus']} cores (PostgreSQL, web, workers, anything else; "
            f"{used['machine_stolen']:.0%} stolen by the hypervisor)",
        )
    row("RSS before the load", f"{result['rss_before_mb']:,.0f} MB (Python, Django, the payloads)")
    row("peak RSS (ru_maxrss)", f"{result['peak_rss_mb']:,.0f} MB")
    for phase in phases.values():
        if phase.traced_peak_mb is not None:
            row(f"{phase.name}: tracemalloc peak", f"{phase.traced_peak_mb:,.0f} MB")
    row(
        "wall time",
        f"{result['wall_seconds']:,.1f} s (data generation {result['generate_seconds']:,.1f} s, "
        f"migrations {result['migrate_seconds']:,.1f} s)",
    )
    lines.append("  " + "-" * 76)
    for phase in phases.values():
        top = sorted(phase.by_kind.items(), key=lambda kv: -kv[1][1])[:8]
        lines.append(f"  {phase.name}: where the database time goes")
        for kind, (count, seconds) in top:
            lines.append(f"      {kind:<46} {count:>8,} x  {seconds:>8.2f} s")
    for mode, check in checks.items():
        for problem in check["problems"]:
            lines.append(f"  FAILED ({mode}): {problem}")
        for warning in check["warnings"]:
            lines.append(f"  note ({mode}): {warning}")
    lines.append("")
    return "\n".join(lines)


# --- The production shape: real workers ---------------------------------------------------------------------


@dataclass
class WorkerUsage:
    cpu_seconds: float = 0.0  # user + system of the worker's processes during the phase
    peak_rss_mb: float = 0.0  # the largest VmHWM of one worker process
    processes: int = 0
    machine_busy: float = 0.0  # share of the machine's CPU time (all cores) that was busy during the phase
    machine_stolen: float = 0.0  # share of it stolen by the hypervisor (included in machine_busy)
    trainings: list[int] = field(default_factory=list)  # the matching model's estimates: records used by each


def _process_tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo += [int(child) for child in task.read_text().split()]
    return pids


def worker_usage(pid: int) -> WorkerUsage:
    """CPU and peak memory of a worker and its pool processes, from /proc (Linux)."""
    usage, ticks = WorkerUsage(), os.sysconf("SC_CLK_TCK")
    for process in _process_tree(pid):
        try:
            stat = Path(f"/proc/{process}/stat").read_text()
            status = Path(f"/proc/{process}/status").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        usage.cpu_seconds += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        hwm = re.search(r"VmHWM:\s+(\d+) kB", status)
        if hwm:
            usage.peak_rss_mb = max(usage.peak_rss_mb, int(hwm.group(1)) / 1024)
        usage.processes += 1
    return usage


def machine_cpu() -> tuple[float, float, float]:
    """(busy, stolen, total) CPU seconds of the whole machine so far, all cores, from /proc/stat (Linux).
    Stolen time (counted in busy) is what the hypervisor gave other guests while this one wanted to run:
    on a virtual machine it is why the same code can run 40 % slower from one run to the next."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    ticks = os.sysconf("SC_CLK_TCK")
    return (sum(fields[:8]) - idle) / ticks, fields[7] / ticks, sum(fields[:8]) / ticks


def workers_start(db: BenchDatabase, processes: int, name: str) -> tuple[subprocess.Popen, Path]:
    """``celery -A cdp worker -c N`` on the benchmark's database, resolving the batches this process queues
    on the broker (``CELERY_BROKER_URL``) from now on, as in production; returns once it answers a ping.
    ``workers_stop`` ends it and turns eager mode back on."""
    from bench.events import queue_purge, worker_start
    from cdp.celery import app

    broker = os.environ.get("CELERY_BROKER_URL")
    if not broker:
        raise BenchError(
            "Celery workers need a broker: set CELERY_BROKER_URL (e.g. redis://127.0.0.1:6379/15)"
        )
    app.conf.broker_url = broker
    app.conf.task_always_eager = False  # the requests queue their batches on the broker
    queue_purge(broker)
    logfile = Path(tempfile.gettempdir()) / f"cdp_bench_{name}_worker_{os.getpid()}.log"
    worker = worker_start(db.url, broker, processes, logfile)
    deadline = time.perf_counter() + 120
    while not app.control.ping(timeout=0.5):
        if worker.poll() is not None or time.perf_counter() > deadline:
            workers_stop(worker)
            raise BenchError(f"the Celery worker did not start (see {logfile})")
    return worker, logfile


def workers_drain(worker: subprocess.Popen, logfile: Path) -> None:
    """Return once no record is pending (the workers resolved everything queued)."""
    from ingestion.models import InboundRecord

    pending = InboundRecord.objects.filter(status=InboundRecord.Status.PENDING)
    while pending.exists():
        if worker.poll() is not None:
            raise BenchError(f"the Celery worker exited with code {worker.returncode} (see {logfile})")
        # Each look costs the database a few ms while the table fills (1.6 s of a 60 s run at every 50 ms,
        # taken from the product it measures); 0.2 s changes the clock by 0.3 % of such a run at most.
        time.sleep(0.2)


def workers_stop(worker: subprocess.Popen) -> None:
    from bench.events import process_stop
    from cdp.celery import app

    process_stop(worker)
    app.conf.task_always_eager = True


def workers_run(
    dataset: Dataset, keys: dict[str, str], args: argparse.Namespace, analyze: bool, db: BenchDatabase
) -> tuple[Phase, WorkerUsage]:
    """POST everything from this process (the web process) while ``celery -A cdp worker -c N`` resolves the
    batches from the broker as they arrive; the clock stops when no record is pending."""
    from profiles.models import MatchModelVersion

    worker, logfile = workers_start(db, args.workers, "ingest")
    try:
        before, machine_before = worker_usage(worker.pid), machine_cpu()
        with measured(Phase("workers", dataset.records), args) as phase:
            post_all(dataset, keys, Analyzer(analyze))
            workers_drain(worker, logfile)
        after, machine_after = worker_usage(worker.pid), machine_cpu()
    finally:
        workers_stop(worker)
    busy, stolen, total = (end - start for end, start in zip(machine_after, machine_before, strict=True))
    used = WorkerUsage(
        after.cpu_seconds - before.cpu_seconds,
        after.peak_rss_mb,
        after.processes,
        busy / total if total else 0,
        stolen / total if total else 0,
    )
    used.trainings = list(
        MatchModelVersion.objects.order_by("created_at").values_list("records_used", flat=True)
    )
    return phase, used


# --- Main ---------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wall = time.perf_counter()
    # The data is made in a child process, so its working memory does not count in this process's peak.
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=1) as pool:
        dataset = pool.submit(
            generate, records=args.records, sources=args.sources, batch_size=args.batch_size, seed=args.seed
        ).result()
    generate_seconds = time.perf_counter() - start

    db = database_create()
    print(f"benchmark database: {db.name} ({db.vendor})", file=sys.stderr)
    try:
        django_setup(db, args)
        from django.conf import settings
        from django.core.management import call_command
        from django.db import connection

        start = time.perf_counter()
        call_command("migrate", verbosity=0, interactive=False)
        migrate_seconds = time.perf_counter() - start
        if settings.DEBUG:
            print("warning: DEBUG is on; Django records every query and the figures suffer", file=sys.stderr)
        keys = sources_create(dataset)
        result: dict = {
            "database": db.name,
            "server": server_facts(),
            "batch_size": args.batch_size,
            "chunk_size": settings.CDP_RESOLVE_CHUNK_SIZE,
            "generate_seconds": generate_seconds,
            "migrate_seconds": migrate_seconds,
            "rss_before_mb": current_rss_mb() or peak_rss_mb(),
            "cpus": os.cpu_count(),
            "load_before": _load(),
            "cpu_probe_before_ms": cpu_probe(),
        }
        analyze = args.analyze == "on" or (
            args.analyze == "auto" and result["server"].get("autovacuum") == "off"
        )
        result["analyze"] = analyze

        if connection.vendor == "postgresql" and not args.no_copy:
            print("raw COPY baseline ...", file=sys.stderr)
            copy = copy_baseline(dataset)
            copy["rate"] = dataset.records / copy["single"]
            copy["per_batch_rate"] = dataset.records / copy["per_batch"]
            result["copy"] = copy
        else:
            result["copy_note"] = "skipped (" + ("--no-copy" if args.no_copy else "PostgreSQL only") + ")"

        phases: dict[str, Phase] = {}
        checks: dict[str, dict] = {}
        if args.mode in {"both", "e2e"}:
            print(
                f"end to end: {dataset.records:,} records in {len(dataset.batches)} requests ...",
                file=sys.stderr,
            )
            with measured(Phase("e2e", dataset.records), args) as phase:
                post_all(dataset, keys, Analyzer(analyze))
            phases["e2e"] = phase
            checks["e2e"] = outcome_check(dataset)
        if args.mode in {"both", "split"}:
            if args.mode == "both":
                data_reset()
            print("split: intake with processing deferred ...", file=sys.stderr)
            scheduled: list[str] = []
            with processing_deferred(scheduled), measured(Phase("intake", dataset.records), args) as phase:
                post_all(dataset, keys, Analyzer(analyze))
            phases["intake"] = phase
            print(f"split: processing {len(scheduled)} batches ...", file=sys.stderr)
            with measured(Phase("processing", dataset.records), args) as phase:
                process_scheduled(scheduled, Analyzer(analyze))
            phases["processing"] = phase
            checks["split"] = outcome_check(dataset)
        if args.mode == "workers" or (args.mode == "both" and os.environ.get("CELERY_BROKER_URL")):
            if args.mode == "both":
                data_reset()
            print(
                f"workers: {dataset.records:,} records in {len(dataset.batches)} requests, "
                f"{args.workers} worker processes ...",
                file=sys.stderr,
            )
            phases["workers"], used = workers_run(dataset, keys, args, analyze, db)
            result["workers"] = asdict(used)
            result["worker_processes"] = args.workers
            checks["workers"] = outcome_check(dataset)

        result["peak_rss_mb"] = peak_rss_mb()
        result["wall_seconds"] = time.perf_counter() - wall
        result["load_after"] = _load()
        result["cpu_probe_after_ms"] = cpu_probe()
        print(report(result, phases, dataset, checks))
        if args.profile:
            print(f"profiles written to {args.profile}/<phase>.prof (python -m pstats ...)", file=sys.stderr)
        if args.json:
            figures = {
                **result,
                "records": dataset.records,
                "people": dataset.people,
                "updates": dataset.updates,
                "expected_profiles": dataset.expected_profiles,
                "per_source": dataset.per_source,
                "phases": {name: phase.as_dict() for name, phase in phases.items()},
                "checks": checks,
            }
            Path(args.json).write_text(json.dumps(figures, indent=2, default=str))
        failed = any(check["problems"] for check in checks.values())
        return 1 if failed else 0
    finally:
        if args.keep:
            print(f"kept the benchmark database {db.name}", file=sys.stderr)
        else:
            database_drop(db)


if __name__ == "__main__":
    sys.exit(main())
