"""Consent check benchmark: latency of ``POST /api/v1/consent/check``'s work over many profiles.

Run from the repository root::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python -m bench.consent [--profiles 1000000]
        [--checks 5000] [--http 1000] [--seed 1] [--keep | --database NAME]

It creates its own database ``cdp_bench_<pid>`` next to the one named in ``DATABASE_URL`` (PostgreSQL only),
migrates it, and fills it set-based with ``COPY``: per profile one email and one phone identity and ledger
entries (a marketing grant for email through the email for everyone; a later withdrawal through the phone for
one in five; an objection recorded on a merged-away tombstone id for one in twenty). With ``--database NAME``
it uses that database instead (created and filled on the first run, kept afterwards; later runs with the same
``--profiles`` and ``--seed`` reuse the data as it is), so two versions of the code can be timed on the same
data. Then it times, in one process:

- the check itself: resolving the subject (by identifier in any spelling, or by profile id) and deciding,
  exactly what the view calls (``subject_resolve`` + ``consent_check``), one call at a time;
- with ``--http N``: N full requests through Django (URL routing, source-key authentication, JSON), with
  ``django.test.Client`` in-process (no network).

Every answer is checked against what the generator knows, so a fast wrong answer fails the run. It also
prints how many SQL queries one check makes (the work, and the whole HTTP request).
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
from urllib.parse import urlsplit, urlunsplit

from bench.ingest import (
    POSTGRES_SCHEMES,
    BenchDatabase,
    BenchError,
    _libpq_url,
    database_create,
    database_drop,
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.consent", description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--checks", type=int, default=5_000, help="checks timed through the selectors")
    parser.add_argument("--http", type=int, default=1_000, help="checks timed through the HTTP stack")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--pending", type=int, default=0, help="time an erasure's scan of this many unprocessed payloads"
    )
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument(
        "--database",
        metavar="NAME",
        help="use (and keep) this database next to DATABASE_URL's: filled on the first run, reused after",
    )
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


def plan(count: int, rng: random.Random) -> dict:
    """The people of the run and the answer expected for each; the same for the same count and seed."""
    profile_ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(count)]
    tombstones = {n: uuid.UUID(int=rng.getrandbits(128), version=4) for n in range(0, count, 20)}
    expected = {n: n % 5 != 0 and n not in tombstones for n in range(count)}
    return {"expected": expected, "profile_ids": profile_ids, "tombstones": tombstones}


def populate(data: dict) -> dict:
    """COPY the planned profiles, identities and ledger entries."""
    from django.db import connection

    now = datetime.now(UTC)
    t_grant, t_withdraw, t_object = (
        now - timedelta(days=300),
        now - timedelta(days=100),
        now - timedelta(days=50),
    )
    profile_ids, tombstones = data["profile_ids"], data["tombstones"]
    started = time.perf_counter()
    with connection.cursor() as cursor:
        raw = cursor.connection
        with raw.cursor() as cur:
            with cur.copy(
                "COPY profiles_profile (id, status, merged_into_id, golden, lineage, display_name, search_name, "
                "created_at, updated_at) FROM STDIN"
            ) as copy:
                for n, pid in enumerate(profile_ids):
                    copy.write_row((pid, "active", None, "{}", "{}", f"Person {n}", f"person {n}", now, now))
                for n, tomb in tombstones.items():
                    copy.write_row((tomb, "merged", profile_ids[n], "{}", "{}", "", "", now, now))
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
                    if n % 5 == 0:
                        rows.append(("phone", phone_of(n), None, pid, "withdrawn", "", t_withdraw, "email"))
                    if n in tombstones:
                        rows.append(
                            ("", "", tombstones[n], None, "objection_direct_marketing", "", t_object, None)
                        )
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
        cursor.execute("ANALYZE")
    return {"entries": entries, "load_seconds": time.perf_counter() - started}


def filled(data: dict) -> bool:
    """Whether the database already holds this plan's people (a reused ``--database``)."""
    from profiles.models import Profile

    existing = Profile.objects.filter(status="active").count()
    if existing and (
        existing != len(data["profile_ids"])
        or not Profile.objects.filter(pk=data["profile_ids"][-1]).exists()
    ):
        raise BenchError(
            f"the database holds {existing:,} other profiles: use the --profiles and --seed it was filled with"
        )
    return bool(existing)


def queries_per_check(data: dict, client) -> dict:
    """SQL queries of one check by identifier and one by profile id: the work, and the whole request."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from consent.selectors import consent_check, subject_resolve

    consent_check(
        subject=subject_resolve(profile_id=str(data["profile_ids"][0])), purpose="marketing", channel="email"
    )
    counts = {}  # after a first check: what any later one costs
    for name, who in (
        ("identifier", {"identifier": {"type": "email", "value": email_of(1)}}),
        ("profile", {"profile": str(data["profile_ids"][1])}),
    ):
        with CaptureQueriesContext(connection) as work:
            subject = subject_resolve(
                **(
                    {"identifier": who["identifier"]}
                    if "identifier" in who
                    else {"profile_id": who["profile"]}
                )
            )
            consent_check(subject=subject, purpose="marketing", channel="email")
        body = json.dumps({**who, "purpose": "marketing", "channel": "email"})
        with CaptureQueriesContext(connection) as request:
            client.post("/api/v1/consent/check", data=body, content_type="application/json")
        counts[name] = {"work": len(work.captured_queries), "http": len(request.captured_queries)}
    return counts


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


def http_client():
    from django.test import Client

    from ingestion.models import Source
    from ingestion.services import source_create, source_key_create

    source = Source.objects.filter(slug="bench").first() or source_create(slug="bench", kind="web")
    _, key = source_key_create(source=source, scopes=["consents:read"])
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


def time_http(data: dict, checks: int, rng: random.Random, client) -> dict:
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


def time_erasure_scan(count: int, rng: random.Random) -> dict:
    """Store ``count`` pending payloads (every thousandth naming the person), then time the footprint."""
    from django.db import transaction

    from consent import erasure
    from ingestion.models import Batch, InboundRecord, Source

    source = Source.objects.get(slug="bench")
    InboundRecord.objects.filter(source=source).delete()
    batch = Batch.objects.create(source=source, received_count=count)
    spellings = [" Scan.Person@Example.ORG ", "+1 (415) 999-0000", "tel. 415.999.0000"]
    rows, expected = [], 0
    for n in range(count):
        attributes = {
            "first_name": f"Person {n}",
            "email": email_of(n),
            "phone": f"({phone_of(n)[2:5]}) {phone_of(n)[5:8]}-{phone_of(n)[8:]}",
            "note": f"order {rng.randrange(10**8)}",
        }
        if n % 1000 == 0:
            attributes["contact"] = spellings[n // 1000 % len(spellings)]
            expected += 1
        rows.append(
            InboundRecord(batch=batch, source=source, index=n, external_id=f"P-{n}", payload=attributes)
        )
    InboundRecord.objects.bulk_create(rows, batch_size=5000)
    keys = [("email", "scan.person@example.org"), ("phone", "+14159990000")]
    results = {}
    for name, needles in (("database", erasure._needles), ("python", lambda values: None)):
        original, erasure._needles = erasure._needles, needles
        try:
            with transaction.atomic():
                started = time.perf_counter()
                found = erasure.subject_footprint(profile_id=None, identifiers=keys)
                results[name] = (time.perf_counter() - started, len(found.inbound_ids))
        finally:
            erasure._needles = original
    InboundRecord.objects.filter(batch=batch).delete()
    return {
        "name": "erasure_scan",
        "pending_payloads": count,
        "naming_the_person": expected,
        "database_seconds": round(results["database"][0], 3),
        "python_seconds": round(results["python"][0], 3),
        "wrong_answers": sum(found != expected for _, found in results.values()),
    }


def database_reuse(name: str) -> BenchDatabase:
    """The named database next to DATABASE_URL's, created if it does not exist yet."""
    import psycopg
    from psycopg import sql

    url = os.environ.get("DATABASE_URL", "")
    parts = urlsplit(url)
    if parts.scheme not in POSTGRES_SCHEMES:
        raise BenchError("the consent benchmark needs PostgreSQL: set DATABASE_URL=postgres://...")
    admin = _libpq_url(urlunsplit(parts._replace(path="/postgres")))
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return BenchDatabase(
        "postgresql", name, urlunsplit(parts._replace(path="/" + name)), admin_conninfo=admin
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    rng = random.Random(args.seed)
    db = database_reuse(args.database) if args.database else database_create()
    if db.vendor != "postgresql":
        raise BenchError("the consent benchmark needs PostgreSQL: set DATABASE_URL=postgres://...")
    try:
        django_setup(db.url)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        data = plan(args.profiles, rng)
        if filled(data):
            print(f"reusing {args.profiles:,} profiles of database {db.name}", flush=True)
        else:
            load = populate(data)
            print(
                f"loaded {args.profiles:,} profiles, {len(data['tombstones']):,} tombstones, "
                f"{2 * args.profiles:,} identities, {load['entries']:,} ledger entries in "
                f"{load['load_seconds']:.1f} s",
                flush=True,
            )
        client = http_client()
        print(json.dumps({"queries_per_check": queries_per_check(data, client)}), flush=True)
        time_selectors(data, min(500, args.checks), rng)  # warm-up: caches, connection, planner
        results = [time_selectors(data, args.checks, rng)]
        if args.http:
            time_http(data, min(200, args.http), rng, client)  # warm-up of the request path
            results.append(time_http(data, args.http, rng, client))
        if args.pending:
            results.append(time_erasure_scan(args.pending, rng))
        for result in results:
            print(json.dumps(result))
        return 1 if any(r["wrong_answers"] for r in results) else 0
    finally:
        if not (args.keep or args.database):
            database_drop(db)


if __name__ == "__main__":
    sys.exit(main())
