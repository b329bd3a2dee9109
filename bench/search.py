"""Customer 360 search benchmark: latency of the admin's search box (``profile_search``) over many profiles.

Run from the repository root::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python -m bench.search [--profiles 1000000]
        [--queries 300] [--seed 1] [--keep] [--reuse DBNAME]

It creates its own database ``cdp_bench_<pid>`` next to the one named in ``DATABASE_URL`` (PostgreSQL only),
migrates it and fills it set-based with ``COPY``: per profile a golden record and its name (first and last
names drawn with their real frequencies from Faker's name lists: US census names, and a share of German,
French, Spanish, Italian, Polish and Dutch ones, accents included), one email and one phone identity, a CRM
record (``C-0000042``) and, for every other person, an ERP record (``E0000042``), each with the identity of
its id. Then it times, per kind of term, what the admin's search box runs for one search: the first page of
results ordered by rank (100 rows) and the count the paginator shows.

- ``email``: an address in other case;
- ``phone``: the stored E.164 number written as ``(415) 200-0123``;
- ``name typo``: a person's "first last" with one typo (a swapped, dropped, doubled or replaced letter);
- ``source id``: a record's external id alone (``C-0000042``);
- ``prefixed id``: ``crm:C-0000042``, ``crm C-0000042`` or ``erp/E0000042``;
- ``name``: a person's "first last" as written, in lower case.

Every answer is checked: an identifier must put its person first, a misspelt name must put someone of that
name first (a name is shared by many people; the hit rate is printed). ``--keep`` keeps the database;
``--reuse NAME`` times again on a kept one after migrating it (e.g. after adding an index).
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
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

from bench.consent import django_setup
from bench.ingest import BenchDatabase, BenchError, _libpq_url, database_create, database_drop

KINDS = ("email", "phone", "name typo", "source id", "prefixed id", "name")
PAGE = 100  # the admin's list_per_page
AREAS = ("212", "415", "312", "617", "206", "303", "512", "702")
DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "proton.me", "example.org", "acme.io")
OTHER_LOCALES = ("de_DE", "fr_FR", "es_ES", "it_IT", "pl_PL", "nl_NL")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300, help="searches timed per kind of term")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument("--reuse", metavar="DBNAME", help="time on a database kept by an earlier --keep run")
    return parser.parse_args(argv)


# --- The people ---------------------------------------------------------------------------------------------


def name_pools() -> tuple[list, list, list, list]:
    """First and last names with weights: US census frequencies, and other locales' names evenly."""
    import importlib

    from faker.providers.person.en_US import Provider as US

    first = dict(US.first_names)
    last = dict(US.last_names)
    for locale in OTHER_LOCALES:
        provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        for pool, names, share in ((first, provider.first_names, 0.05), (last, provider.last_names, 0.05)):
            names = list(names)
            for name in names:
                pool[name] = pool.get(name, 0) + share / len(names)
    return list(first), list(first.values()), list(last), list(last.values())


def phone_of(n: int) -> str:
    return f"+1{AREAS[n % len(AREAS)]}{2000000 + n // len(AREAS)}"


def phone_written(n: int) -> str:
    digits = phone_of(n)[2:]
    return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"


def crm_id(n: int) -> str:
    return f"C-{n:07d}"


def erp_id(n: int) -> str:
    return f"E{n:07d}"


def has_erp(n: int) -> bool:
    return n % 2 == 0


def typo(name: str, rng: random.Random) -> str:
    """One keyboard slip in the longer part of the name: swap, drop, double or replace a letter."""
    first, _, last = name.partition(" ")
    word = max((first, last), key=len)
    at = rng.randrange(1, len(word) - 1) if len(word) > 2 else 0
    kind = rng.choice(("swap", "drop", "double", "replace"))
    if kind == "swap" and at + 1 < len(word):
        wrong = word[:at] + word[at + 1] + word[at] + word[at + 2 :]
    elif kind == "drop":
        wrong = word[:at] + word[at + 1 :]
    elif kind == "double":
        wrong = word[:at] + word[at] + word[at:]
    else:
        letters = "aeiourstnl".replace(word[at].lower(), "")
        wrong = word[:at] + rng.choice(letters) + word[at + 1 :]
    return f"{wrong} {last}" if word is first else f"{first} {wrong}"


def populate(count: int, rng: random.Random) -> dict:
    """COPY profiles, identities and source records; returns what the searches need to know."""
    from django.db import connection
    from unidecode import unidecode

    from ingestion.services import source_create

    crm = source_create(slug="crm", kind="crm")
    erp = source_create(slug="erp", kind="erp")
    first_names, first_weights, last_names, last_weights = name_pools()
    firsts = rng.choices(first_names, first_weights, k=count)
    lasts = rng.choices(last_names, last_weights, k=count)
    now = datetime.now(UTC)
    profile_ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(count)]
    emails = []
    started = time.perf_counter()
    with connection.cursor() as cursor:
        raw = cursor.connection
        with raw.cursor() as cur:
            with cur.copy(
                "COPY profiles_profile (id, status, merged_into_id, golden, lineage, display_name, search_name, "
                "created_at, updated_at) FROM STDIN"
            ) as copy:
                for n, pid in enumerate(profile_ids):
                    first, last = firsts[n], lasts[n]
                    local = unidecode(f"{first}.{last}").lower().replace(" ", "").replace("'", "")
                    email = f"{local}{n}@{DOMAINS[n % len(DOMAINS)]}"
                    emails.append(email)
                    name = f"{first} {last}"
                    golden = {"first_name": first, "last_name": last, "email": email, "phone": phone_of(n)}
                    search_name = " ".join(unidecode(name).casefold().split())
                    copy.write_row(
                        (pid, "active", None, json.dumps(golden), "{}", name, search_name, now, now)
                    )
            with cur.copy("COPY profiles_identity (type, value, profile_id, created_at) FROM STDIN") as copy:
                for n, pid in enumerate(profile_ids):
                    copy.write_row(("email", emails[n], pid, now))
                    copy.write_row(("phone", phone_of(n), pid, now))
                    copy.write_row(("crm", crm_id(n), pid, now))
                    if has_erp(n):
                        copy.write_row(("erp", erp_id(n), pid, now))
            with cur.copy(
                "COPY profiles_sourcerecord (source_id, external_id, profile_id, attributes, identifiers, raw, "
                "content_hash, source_updated_at, version_at, deleted_at, inbound_seq, created_at, updated_at) "
                "FROM STDIN"
            ) as copy:
                for n, pid in enumerate(profile_ids):
                    attributes = json.dumps(
                        {"first_name": firsts[n], "last_name": lasts[n], "email": emails[n]}
                    )
                    identifiers = json.dumps([["crm", crm_id(n)], ["email", emails[n]]])
                    copy.write_row(
                        (
                            crm.pk,
                            crm_id(n),
                            pid,
                            attributes,
                            identifiers,
                            None,
                            "",
                            None,
                            now,
                            None,
                            None,
                            now,
                            now,
                        )
                    )
                    if has_erp(n):
                        identifiers = json.dumps([["erp", erp_id(n)], ["phone", phone_of(n)]])
                        copy.write_row(
                            (
                                erp.pk,
                                erp_id(n),
                                pid,
                                "{}",
                                identifiers,
                                None,
                                "",
                                None,
                                now,
                                None,
                                None,
                                now,
                                now,
                            )
                        )
    with (
        connection.cursor() as cursor
    ):  # what autovacuum does after a load: statistics, GIN pending list merged
        for table in ("profiles_profile", "profiles_identity", "profiles_sourcerecord", "profiles_name_word"):
            cursor.execute(f"VACUUM ANALYZE {table}")
    return {
        "count": count,
        "profile_ids": profile_ids,
        "names": [f"{firsts[n]} {lasts[n]}" for n in range(count)],
        "emails": emails,
        "load_seconds": time.perf_counter() - started,
    }


def restore(count: int, seed: int) -> dict:
    """What the searches need to know of a kept database: regenerated from the seed, as populate made it."""
    from unidecode import unidecode

    rng = random.Random(seed)
    first_names, first_weights, last_names, last_weights = name_pools()
    firsts = rng.choices(first_names, first_weights, k=count)
    lasts = rng.choices(last_names, last_weights, k=count)
    profile_ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(count)]
    emails = [
        f"{unidecode(f'{firsts[n]}.{lasts[n]}').lower().replace(' ', '').replace(chr(39), '')}{n}"
        f"@{DOMAINS[n % len(DOMAINS)]}"
        for n in range(count)
    ]
    names = [f"{firsts[n]} {lasts[n]}" for n in range(count)]
    return {"count": count, "profile_ids": profile_ids, "names": names, "emails": emails, "load_seconds": 0.0}


# --- The searches -------------------------------------------------------------------------------------------


def term_for(kind: str, n: int, data: dict, rng: random.Random) -> str:
    if kind == "email":
        return data["emails"][n].upper() if rng.random() < 0.5 else data["emails"][n].capitalize()
    if kind == "phone":
        return phone_written(n)
    if kind == "name typo":
        return typo(data["names"][n], rng)
    if kind == "name":
        return data["names"][n].lower()
    if kind == "source id":
        return erp_id(n) if has_erp(n) and rng.random() < 0.5 else crm_id(n)
    if has_erp(n) and rng.random() < 0.34:
        return f"erp/{erp_id(n)}"
    return f"crm:{crm_id(n)}" if rng.random() < 0.5 else f"crm {crm_id(n)}"


def search_once(term: str) -> tuple[list, int]:
    """What the admin's changelist runs for a search: the first page, best first, and the count (in one
    query, as ``ProfileAdmin.get_paginator`` does)."""
    from profiles.models import Profile
    from profiles.selectors import SearchPaginator, profile_search

    results = profile_search(term=term, queryset=Profile.objects.all()).order_by(
        "-search_rank", "display_name", "-pk"
    )
    paginator = SearchPaginator(results, PAGE, page_number=1)
    total = paginator.count
    return [(p.pk, p.display_name) for p in paginator.page(1).object_list], total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def time_kind(kind: str, data: dict, queries: int, rng: random.Random) -> dict:
    from ingestion.normalise import search_text

    latencies, hits, results = [], 0, []
    for _ in range(queries):
        n = rng.randrange(data["count"])
        term = term_for(kind, n, data, rng)
        started = time.perf_counter()
        page, total = search_once(term)
        latencies.append(time.perf_counter() - started)
        results.append(total)
        if kind in ("name typo", "name"):
            hits += bool(page) and search_text(page[0][1]) == search_text(data["names"][n])
        else:
            hits += bool(page) and page[0][0] == data["profile_ids"][n]
    ms = [v * 1000 for v in latencies]
    return {
        "kind": kind,
        "n": queries,
        "p50_ms": round(percentile(ms, 0.50), 2),
        "p99_ms": round(percentile(ms, 0.99), 2),
        "max_ms": round(max(ms), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
        "hit_rate": round(hits / queries, 3),
        "median_results": int(statistics.median(results)),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.reuse:
        url = os.environ.get("DATABASE_URL", "")
        parts = urlsplit(url)
        db = BenchDatabase(
            "postgresql",
            args.reuse,
            urlunsplit(parts._replace(path="/" + args.reuse)),
            admin_conninfo=_libpq_url(urlunsplit(parts._replace(path="/postgres"))),
        )
    else:
        db = database_create()
    if db.vendor != "postgresql":
        raise BenchError("the search benchmark needs PostgreSQL: set DATABASE_URL=postgres://...")
    keep = args.keep or bool(args.reuse)
    try:
        django_setup(db.url)
        from django.core.management import call_command
        from django.db import connection

        call_command("migrate", verbosity=0)
        if args.reuse:
            from profiles.models import Profile

            count = Profile.objects.count()
            data = restore(count, args.seed)
            print(f"reusing {db.name}: {count:,} profiles", flush=True)
        else:
            data = populate(args.profiles, random.Random(args.seed))
            print(
                f"loaded {args.profiles:,} profiles with their identities and source records in "
                f"{data['load_seconds']:.1f} s into {db.name}",
                flush=True,
            )
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM profiles_name_word")
            print(
                f"{cursor.fetchone()[0]:,} distinct name words (the typo correction dictionary)", flush=True
            )
        rng = random.Random(args.seed + 1)
        for kind in KINDS:  # warm-up: caches, connection, planner
            time_kind(kind, data, min(20, args.queries), rng)
        print(f"load average before timing: {os.getloadavg()}", flush=True)
        results = [time_kind(kind, data, args.queries, rng) for kind in KINDS]
        print(f"load average after timing: {os.getloadavg()}", flush=True)
        for result in results:
            print(json.dumps(result), flush=True)
        # An identifier that finds someone else first is wrong; names are judged by their hit rate.
        return 1 if any(r["hit_rate"] < 1 for r in results if not r["kind"].startswith("name")) else 0
    finally:
        if keep:
            print(f"kept database {db.name}", flush=True)
        else:
            database_drop(db)


if __name__ == "__main__":
    sys.exit(main())
