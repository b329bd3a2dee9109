"""Events benchmark: Segment-style batches through the HTTP tracking API of a real server process.

Run from the repository root::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python -m bench.events [--events 20000]
        [--batch-size 100] [--users 2000] [--clients 4] [--timeline-events 100000] [--reads 200]

Like ``bench.ingest`` it owns its database (``cdp_bench_<pid>``, created, migrated, dropped at the end; a
temporary SQLite file without ``DATABASE_URL``). It starts ``manage.py runserver --noreload`` on that database
as a separate process, with Celery eager (each request's events are resolved into profiles once the request's
transaction commits, before it answers), then:

1. sends ``--events`` track / page / identify messages of ``--users`` users, gzip-compressed, in batches, from
   ``--clients`` concurrent HTTP clients, and prints events/s accepted and processed into profiles (every
   event is on a profile when the last answer arrives; checked in the database);
2. gives one profile ``--timeline-events`` events (bulk-inserted: sending them through the API would only
   measure step 1 again) and reads its timeline ``--reads`` times over HTTP, first pages and deep pages
   through the cursor, printing the latency p50 / p99.
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
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.set_defaults(chunk_size=None)
    return parser.parse_args(argv)


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


def server_start(db_url: str, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "SECRET_KEY": "bench-only-insecure-secret-key",
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        "DEBUG": "",
    }
    env.pop("CELERY_BROKER_URL", None)
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


def main(argv=None) -> int:
    args = parse_args(argv)
    db = database_create()
    server = None
    try:
        django_setup(db, args)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from ingestion.services import source_create, source_key_create
        from profiles.models import Event, Profile

        shop = source_create(slug="shop", kind="web")
        _, key = source_key_create(source=shop, scopes=["events:write", "profiles:read"])
        port = free_port()
        server = server_start(db.url, port)
        base = f"http://127.0.0.1:{port}"

        batches = [
            (batch_messages := messages(args.events, args.users))[i : i + args.batch_size]
            for i in range(0, args.events, args.batch_size)
        ]
        post(
            f"{base}/v1/batch",
            key,
            [{"type": "track", "userId": "warm-up", "event": "Warm", "messageId": "w"}],
        )
        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            answers = list(pool.map(lambda batch: post(f"{base}/v1/batch", key, batch), batches))
        elapsed = time.perf_counter() - started
        accepted = sum(answer["accepted"] for answer in answers)
        on_profiles = Event.objects.filter(message_id__startswith="bench-", profile__isnull=False).count()
        ok = accepted == len(batch_messages) == on_profiles
        print(f"database                 {db.vendor}")
        print(
            f"events sent              {len(batch_messages)} in {len(batches)} gzip batches, {args.clients} clients"
        )
        print(
            f"accepted and processed   {accepted / elapsed:,.0f} events/s ({elapsed:.1f} s; {on_profiles} on profiles)"
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
        first, deep = [], []
        get(timeline, key)
        cursor_url = timeline
        for i in range(args.reads):
            seconds, _ = get(timeline, key)
            first.append(seconds)
            seconds, body = get(cursor_url, key)
            deep.append(seconds)
            cursor_url = body["next"] or timeline
            if i % 2:  # jump deeper: every other read skips ahead through 20 pages of the kind filter
                for _ in range(20):
                    _, body = get(cursor_url.replace("page_size=50&", "page_size=500&"), key)
                    cursor_url = (body["next"] or timeline).replace("page_size=500&", "page_size=50&")
        print(f"timeline of a profile    {total:,} events")
        print(
            f"timeline first page      p50 {percentile(first, 0.5) * 1000:.1f} ms, p99 {percentile(first, 0.99) * 1000:.1f} ms"
        )
        print(
            f"timeline deep pages      p50 {percentile(deep, 0.5) * 1000:.1f} ms, p99 {percentile(deep, 0.99) * 1000:.1f} ms"
        )
        if not ok:
            print("CHECK FAILED: not every event was accepted and placed on a profile")
        return 0 if ok else 1
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        if not args.keep:
            database_drop(db)


if __name__ == "__main__":
    raise SystemExit(main())
