"""Events benchmark: Segment-style batches through the HTTP tracking API of a real server process.

Run from the repository root::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python -m bench.events [--events 20000]
        [--batch-size 100] [--users 2000] [--clients 4] [--timeline-events 100000] [--reads 200]
        [--processing eager|worker|profile] [--worker-concurrency 2] [--profile DIR]

Like ``bench.ingest`` it owns its database (``cdp_bench_<pid>``, created, migrated, dropped at the end; a
temporary SQLite file without ``DATABASE_URL``). It starts ``manage.py runserver --noreload`` on that database
as a separate process, then:

1. sends ``--events`` track / page / identify messages of ``--users`` users, gzip-compressed, in batches, from
   ``--clients`` concurrent HTTP clients, and prints events/s accepted and processed into profiles. How the
   events are processed (``--processing``):

   - ``eager`` (default): Celery eager in the server; each request's events are resolved once its
     transaction commits, before it answers, so accepted and processed are one figure;
   - ``worker``: as in production, the server only stores and queues; ``celery -A cdp worker`` (a separate
     process, ``--worker-concurrency`` processes) resolves from the broker. Needs ``CELERY_BROKER_URL``
     (Redis; its queue is purged before and after). Accepted/s runs to the last answer, processed/s until
     the last event is on a profile (polled in the database);
   - ``profile``: the server only stores and queues (``CELERY_BROKER_URL`` needed, nobody consumes); then
     this process runs every batch's processing under cProfile, printing processed/s, the queries by kind
     and the top functions by cumulative time (the ``.prof`` file goes to ``--profile DIR``).

2. gives one profile ``--timeline-events`` events (bulk-inserted: sending them through the API would only
   measure step 1 again) and reads its timeline ``--reads`` times over HTTP, first pages and deep pages
   through the cursor, and pages filtered by kind, printing the latency p50 / p99.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.ingest import database_create, database_drop, django_setup

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.events", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--timeline-events", type=int, default=100_000)
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--processing", choices=["eager", "worker", "profile"], default="eager")
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument("--profile", default="var/bench-profile", help="where --processing profile writes")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.set_defaults(chunk_size=None, tracemalloc=False)
    args = parser.parse_args(argv)
    if args.processing != "eager" and not os.environ.get("CELERY_BROKER_URL"):
        parser.error(f"--processing {args.processing} needs CELERY_BROKER_URL (a Redis URL)")
    return args


def messages(count: int, users: int) -> list[dict]:
    start = datetime.now(UTC) - timedelta(days=1)
    out = []
    for i in range(count):
        user = i % users
        at = (start + timedelta(seconds=i)).isoformat()
        common = {"messageId": f"bench-{i}", "timestamp": at, "anonymousId": f"device-{user}"}
        if i < users:
            out.append(
                {
                    "type": "identify",
                    "userId": f"user-{user}",
                    "traits": {"email": f"u{user}@bench.example"},
                    **common,
                }
            )
        elif i % 3:
            out.append(
                {
                    "type": "track",
                    "userId": f"user-{user}",
                    "event": "Product Viewed",
                    "properties": {"sku": i},
                    **common,
                }
            )
        else:
            out.append({"type": "page", "name": "Home", "context": {"ip": "203.0.113.1"}, **common})
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(db_url: str, broker: str | None) -> dict:
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "SECRET_KEY": "bench-only-insecure-secret-key",
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        "DEBUG": "",
        "DJANGO_SETTINGS_MODULE": "cdp.settings",
    }
    env.pop("CELERY_BROKER_URL", None)
    if broker:
        env["CELERY_BROKER_URL"] = broker  # tasks go to the broker; without it they run eagerly in the server
    return env


def worker_start(db_url: str, broker: str, concurrency: int, logfile: Path) -> subprocess.Popen:
    """``celery -A cdp worker`` on the benchmark's database and broker, as production runs it."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "cdp",
            "worker",
            "-l",
            "WARNING",
            "-c",
            str(concurrency),
            "-n",
            f"bench-{os.getpid()}@%h",
            f"--logfile={logfile}",
        ],
        cwd=ROOT,
        env=_env(db_url, broker),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )


def process_stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()  # a Celery worker's warm shutdown: finishes its current task
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def queue_purge(broker: str) -> None:
    from cdp.celery import app

    app.conf.broker_url = broker
    app.control.purge()


def server_start(db_url: str, port: int, broker: str | None = None) -> subprocess.Popen:
    env = _env(db_url, broker)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError("the server did not start")


def post(url: str, key: str, batch: list[dict]) -> dict:
    body = gzip.compress(json.dumps({"batch": batch, "sentAt": datetime.now(UTC).isoformat()}).encode())
    request = urllib.request.Request(
        url,
        data=body,
        headers={
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode(),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{url} answered {exc.code}: {exc.read()[:500]!r}") from None


def get(url: str, key: str) -> tuple[float, dict]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{url} answered {exc.code}: {exc.read()[:500]!r}") from None
    return time.perf_counter() - started, body


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def wait_processed(worker: subprocess.Popen, started: float, deadline_s: float) -> float:
    """Poll until no stored message waits for processing (or the deadline); return the seconds since start."""
    from ingestion.models import InboundRecord

    pending = InboundRecord.objects.filter(status=InboundRecord.Status.PENDING)
    last_report = time.perf_counter()
    while pending.exists():
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with code {worker.returncode}")
        if time.perf_counter() - started > deadline_s:
            raise RuntimeError(f"{pending.count()} messages still pending after {deadline_s:.0f} s")
        if time.perf_counter() - last_report > 10:
            print(f"  ... {pending.count():,} messages waiting", flush=True)
            last_report = time.perf_counter()
        time.sleep(0.25)
    return time.perf_counter() - started


def process_profiled(args: argparse.Namespace, expected: int) -> float:
    """Run the processing of every stored batch in this process, measured; print what it cost."""
    import pstats

    from bench.ingest import Phase, measured
    from ingestion.models import InboundRecord
    from ingestion.services import batch_process

    batch_ids = list(
        dict.fromkeys(
            InboundRecord.objects.filter(status=InboundRecord.Status.PENDING)
            .order_by("id")
            .values_list("batch_id", flat=True)
        )
    )
    phase = Phase("events-processing", expected)
    with measured(phase, args):
        for batch_id in batch_ids:
            batch_process(batch_id=batch_id)
    print(
        f"processing in-process    {phase.rate:,.0f} events/s ({phase.seconds:.1f} s, CPU {phase.cpu_seconds:.1f} s; "
        f"{phase.queries:,} queries, {phase.db_seconds:.1f} s waiting for them)"
    )
    for kind, (count, seconds) in sorted(phase.by_kind.items(), key=lambda kv: -kv[1][1])[:15]:
        print(f"  {count:>8,} x {kind:<45} {seconds:6.2f} s")
    path = Path(args.profile) / f"{phase.name}.prof"
    print(f"top functions by cumulative time ({path}):")
    pstats.Stats(str(path)).sort_stats("cumulative").print_stats(35)
    return phase.seconds


def main(argv=None) -> int:
    args = parse_args(argv)
    broker = os.environ.get("CELERY_BROKER_URL") if args.processing != "eager" else None
    db = database_create()
    server = worker = None
    try:
        django_setup(db, args)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from ingestion.services import source_create, source_key_create
        from profiles.models import Event, Profile

        shop = source_create(slug="shop", kind="web")
        _, key = source_key_create(source=shop, scopes=["events:write", "profiles:read"])
        port = free_port()
        if broker:
            queue_purge(broker)
        server = server_start(db.url, port, broker)
        base = f"http://127.0.0.1:{port}"
        logfile = Path(tempfile.gettempdir()) / f"cdp_bench_worker_{os.getpid()}.log"
        if args.processing == "worker":
            worker = worker_start(db.url, broker, args.worker_concurrency, logfile)

        batch_messages = messages(args.events, args.users)
        batches = [batch_messages[i : i + args.batch_size] for i in range(0, args.events, args.batch_size)]
        post(
            f"{base}/v1/batch",
            key,
            [{"type": "track", "userId": "warm-up", "event": "Warm", "messageId": "w"}],
        )
        if worker is not None:
            wait_processed(worker, time.perf_counter(), 120)  # the worker is up and took the warm-up
        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            answers = list(pool.map(lambda batch: post(f"{base}/v1/batch", key, batch), batches))
        accepted_s = time.perf_counter() - started
        accepted = sum(answer["accepted"] for answer in answers)
        if args.processing == "worker":
            processed_s = wait_processed(worker, started, deadline_s=3600)
        elif args.processing == "profile":
            processed_s = process_profiled(args, len(batch_messages))
        else:
            processed_s = accepted_s
        on_profiles = Event.objects.filter(message_id__startswith="bench-", profile__isnull=False).count()
        ok = accepted == len(batch_messages) == on_profiles
        print(f"database                 {db.vendor}")
        print(
            f"events sent              {len(batch_messages)} in {len(batches)} gzip batches, {args.clients} clients"
        )
        mode = {
            "eager": "eager: resolved in each request",
            "worker": f"celery worker, {args.worker_concurrency} processes",
            "profile": "in this process, under cProfile",
        }[args.processing]
        print(f"processing               {mode}")
        print(f"accepted                 {accepted / accepted_s:,.0f} events/s ({accepted_s:.1f} s)")
        print(
            f"processed into profiles  {on_profiles / processed_s:,.0f} events/s "
            f"({processed_s:.1f} s{' from the first request' if args.processing == 'worker' else ''}; "
            f"{on_profiles} on profiles)"
        )
        print(f"profiles                 {Profile.objects.filter(status='active').count()}")

        profile = Event.objects.filter(user_id="user-0").first().profile
        base_time = datetime.now(UTC) - timedelta(days=400)
        Event.objects.bulk_create(
            (
                Event(
                    profile=profile,
                    source=shop,
                    message_id=f"history-{i}",
                    type="track" if i % 4 else "page",
                    name="Product Viewed",
                    timestamp=base_time + timedelta(seconds=i * 37),
                    received_at=base_time,
                    properties={"sku": i},
                    context={"ip": "203.0.113.1"},
                )
                for i in range(args.timeline_events)
            ),
            batch_size=5000,
        )
        from django.db import connection

        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE profiles_event")
        total = Event.objects.filter(profile=profile).count()
        timeline = f"{base}/api/v1/profiles/{profile.pk}/timeline?page_size=50"
        first, deep, by_kind = [], [], []
        get(timeline, key)
        cursor_url = timeline
        for i in range(args.reads):
            seconds, _ = get(timeline, key)
            first.append(seconds)
            seconds, body = get(cursor_url, key)
            deep.append(seconds)
            cursor_url = body["next"] or timeline
            # Jump deeper: every other read skips 2,000 entries (200 reads walk the whole 100,000).
            if i % 2:
                for _ in range(4):
                    _, body = get(cursor_url.replace("page_size=50&", "page_size=500&"), key)
                    cursor_url = (body["next"] or timeline).replace("page_size=500&", "page_size=50&")
            kind = ("page", "track,identify", "record", "merge,split")[i % 4]
            seconds, _ = get(f"{timeline}&kind={kind}", key)
            by_kind.append(seconds)
        print(f"timeline of a profile    {total:,} events")
        for label, values in (("first page", first), ("deep pages", deep), ("filtered by kind", by_kind)):
            print(
                f"timeline {label:<17}p50 {percentile(values, 0.5) * 1000:.1f} ms, "
                f"p99 {percentile(values, 0.99) * 1000:.1f} ms"
            )
        if not ok:
            print("CHECK FAILED: not every event was accepted and placed on a profile")
        return 0 if ok else 1
    finally:
        for process in (worker, server):
            if process is not None:
                process_stop(process)
        if broker:
            queue_purge(broker)
        if not args.keep:
            database_drop(db)


if __name__ == "__main__":
    raise SystemExit(main())
