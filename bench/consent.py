"""Consent check benchmark: latency of ``POST /api/v1/consent/check``'s work over many profiles.

Run from the repository root::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python -m bench.consent [--profiles 1000000]
        [--checks 5000] [--http 1000] [--seed 1] [--keep]

It creates its own database ``cdp_bench_<pid>`` next to the one named in ``DATABASE_URL`` (PostgreSQL only),
migrates it, and fills it set-based with ``COPY``: per profile one email and one phone identity and ledger
entries (a marketing grant for email through the email for everyone; a later withdrawal through the phone for
one in five; an objection recorded on a merged-away tombstone id for one in twenty). Then it times, in one
process:

- the check itself: resolving the subject (by identifier in any spelling, or by profile id) and deciding,
  exactly what the view calls (``subject_resolve`` + ``consent_check``), one call at a time;
- with ``--http N``: N full requests through Django (URL routing, source-key authentication, JSON), with
  ``django.test.Client`` in-process (no network).

Every answer is checked against what the generator knows, so a fast wrong answer fails the run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

from bench.ingest import BenchError, database_create, database_drop


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.consent", description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--checks", type=int, default=5_000, help="checks timed through the selectors")
    parser.add_argument("--http", type=int, default=1_000, help="checks timed through the HTTP stack")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    return parser.parse_args(argv)


def django_setup(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only-insecure-secret-key")
    os.environ.setdefault("CDP_SUPPRESSION_KEY", "bench-only-insecure-suppression-key")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.conf import settings

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]


def phone_of(n: int) -> str:
    return f"+1415{n:07d}"


def email_of(n: int) -> str:
    return f"person{n}@example.org"


def populate(count: int, rng: random.Random) -> dict:
    """COPY profiles, identities and ledger entries; returns the expected answers."""
    from django.db import connection

    now = datetime.now(UTC)
    t_grant, t_withdraw, t_object = (
        now - timedelta(days=300),
        now - timedelta(days=100),
        now - timedelta(days=50),
    )
    expected = {}
    started = time.perf_counter()
    with connection.cursor() as cursor:
        raw = cursor.connection
        with raw.cursor() as cur:
            profile_ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(count)]
            tombstones = {}
            with cur.copy(
                "COPY profiles_profile (id, status, merged_into_id, golden, lineage, display_name, search_name, "
                "created_at, updated_at) FROM STDIN"
            ) as copy:
                for n, pid in enumerate(profile_ids):
                    copy.write_row((pid, "active", None, "{}", "{}", f"Person {n}", f"person {n}", now, now))
                for n, pid in enumerate(profile_ids):
                    if n % 20 == 0:
                        tomb = uuid.UUID(int=rng.getrandbits(128), version=4)
                        tombstones[n] = tomb
                        copy.write_row((tomb, "merged", pid, "{}", "{}", "", "", now, now))
            with cur.copy("COPY profiles_identity (type, value, profile_id, created_at) FROM STDIN") as copy:
                for n, pid in enumerate(profile_ids):
                    copy.write_row(("email", email_of(n), pid, now))
                    copy.write_row(("phone", phone_of(n), pid, now))
            columns = (
                "identifier_type, identifier_value, subject_profile_id, recorded_for_profile_id, purpose_id, "
                "channel_id, decision, legal_basis, capture_method, user_agent, recorded_by, effective_at, "
                "recorded_at, evidence, idempotency_key, dedupe_key, content_hash"
            )
            entries = 0
            with cur.copy(f"COPY consent_consententry ({columns}) FROM STDIN") as copy:
                for n, pid in enumerate(profile_ids):
                    rows = [("email", email_of(n), None, pid, "granted", "consent", t_grant, "email")]
                    allowed = True
                    if n % 5 == 0:
                        rows.append(("phone", phone_of(n), None, pid, "withdrawn", "", t_withdraw, "email"))
                        allowed = False
                    if n in tombstones:
                        rows.append(
                            ("", "", tombstones[n], None, "objection_direct_marketing", "", t_object, None)
                        )
                        allowed = False
                    for kind, value, subject, recorded_for, decision, basis, at, channel in rows:
                        entries += 1
                        key = uuid.uuid4().hex
                        copy.write_row(
                            (
                                kind,
                                value,
                                subject,
                                recorded_for,
                                "marketing",
                                channel,
                                decision,
                                basis,
                                "import",
                                "",
                                "bench",
                                at,
                                now,
                                "{}",
                                "",
                                key,
                                key,
                            )
                        )
                    expected[n] = allowed
        cursor.execute("ANALYZE")
    return {
        "expected": expected,
        "profile_ids": profile_ids,
        "tombstones": tombstones,
        "entries": entries,
        "load_seconds": time.perf_counter() - started,
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(name: str, latencies: list[float]) -> dict:
    ms = [v * 1000 for v in latencies]
    return {
        "name": name,
        "n": len(ms),
        "p50_ms": round(percentile(ms, 0.50), 3),
        "p99_ms": round(percentile(ms, 0.99), 3),
        "max_ms": round(max(ms), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


def time_selectors(data: dict, checks: int, rng: random.Random) -> dict:
    from consent.selectors import consent_check, subject_resolve

    count = len(data["profile_ids"])
    latencies, wrong = [], 0
    for i in range(checks):
        n = rng.randrange(count)
        started = time.perf_counter()
        if i % 3 == 0:
            subject = subject_resolve(
                identifier={"type": "phone", "value": f"(415) {phone_of(n)[5:8]}-{phone_of(n)[8:]}"}
            )
        elif i % 3 == 1:
            subject = subject_resolve(identifier={"type": "email", "value": email_of(n).upper()})
        else:
            who = data["tombstones"].get(n, data["profile_ids"][n]) if i % 2 else data["profile_ids"][n]
            subject = subject_resolve(profile_id=str(who))
        decision = consent_check(subject=subject, purpose="marketing", channel="email")
        latencies.append(time.perf_counter() - started)
        wrong += decision.allowed != data["expected"][n]
    return {**summary("selectors", latencies), "wrong_answers": wrong}


def time_http(data: dict, checks: int, rng: random.Random) -> dict:
    from django.test import Client

    from ingestion.services import source_create, source_key_create

    source = source_create(slug="bench", kind="web")
    _, key = source_key_create(source=source, scopes=["consents:read"])
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    count = len(data["profile_ids"])
    latencies, wrong = [], 0
    for i in range(checks):
        n = rng.randrange(count)
        who = (
            {"identifier": {"type": "email", "value": email_of(n)}}
            if i % 2
            else {"profile": str(data["profile_ids"][n])}
        )
        body = json.dumps({**who, "purpose": "marketing", "channel": "email"})
        started = time.perf_counter()
        response = client.post("/api/v1/consent/check", data=body, content_type="application/json")
        latencies.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise BenchError(f"check answered {response.status_code}: {response.content[:300]!r}")
        wrong += response.json()["allowed"] != data["expected"][n]
    return {**summary("http", latencies), "wrong_answers": wrong}


def main(argv=None) -> int:
    args = parse_args(argv)
    rng = random.Random(args.seed)
    db = database_create()
    if db.vendor != "postgresql":
        raise BenchError("the consent benchmark needs PostgreSQL: set DATABASE_URL=postgres://...")
    try:
        django_setup(db.url)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        data = populate(args.profiles, rng)
        print(
            f"loaded {args.profiles:,} profiles, {len(data['tombstones']):,} tombstones, "
            f"{2 * args.profiles:,} identities, {data['entries']:,} ledger entries in {data['load_seconds']:.1f} s",
            flush=True,
        )
        time_selectors(data, min(500, args.checks), rng)  # warm-up: caches, connection, planner
        results = [time_selectors(data, args.checks, rng)]
        if args.http:
            results.append(time_http(data, args.http, rng))
        for result in results:
            print(json.dumps(result))
        return 1 if any(r["wrong_answers"] for r in results) else 0
    finally:
        if not args.keep:
            database_drop(db)


if __name__ == "__main__":
    sys.exit(main())
