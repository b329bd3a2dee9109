"""The product's own path on the data (``product_run``): sources created with ``source_create``, every
batch through ``records_receive``, ``manage.py match_train`` and ``resolve --all`` when they exist, the
profiles read back from ``SourceRecord.profile_id`` and scored against the truth; ``run_product`` does it
in a throwaway database of its own.
"""

from __future__ import annotations

import argparse
import sys
import time
from array import array
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path

from bench.synthetic import SourceSpec

from .records import Truth, data_batches, people_sources
from .scores import miss_report, partition_scores, peak_rss_mb

# --- The product's path -------------------------------------------------------------------------------------


class BenchError(RuntimeError):
    pass


def _command_available(name: str) -> bool:
    from django.core.management import get_commands

    return name in get_commands()


def _call(name: str, *args: str) -> tuple[bool, str]:
    """Run a management command; (ran, what it printed or why it did not run)."""
    from io import StringIO

    from django.core.management import CommandError, call_command

    if not _command_available(name):
        return False, f"`manage.py {name}` does not exist (yet): skipped"
    out = StringIO()
    try:
        call_command(name, *args, stdout=out, stderr=out)
    except CommandError as exc:
        return False, f"`manage.py {name} {' '.join(args)}` failed: {exc}"
    return True, out.getvalue().strip()


def product_sources(specs: Sequence[SourceSpec]) -> dict:
    """The benchmark's sources, created through the product's service (or found, when they exist)."""
    from ingestion.models import Source
    from ingestion.services import source_create

    sources = {}
    for spec in specs:
        source = Source.objects.filter(slug=spec.slug).first()
        if source is None:
            source = source_create(
                slug=spec.slug, kind=spec.kind, default_region=spec.region, field_mapping=spec.field_mapping
            )
        sources[spec.slug] = source
    return sources


def product_assignments(truth: Truth) -> tuple[list[int], list[int], int]:
    """(person of each record, profile of each record as an integer, records without a profile), read from
    ``SourceRecord.profile_id``, following a merged profile to its survivor."""
    from ingestion.models import Source
    from profiles.models import Profile, SourceRecord

    slugs = dict(Source.objects.values_list("id", "slug"))
    survivor = dict(
        Profile.objects.filter(merged_into__isnull=False).values_list("id", "merged_into_id").iterator()
    )
    labels: dict = {}
    persons, clusters, orphans = array("l"), array("l"), 0
    rows = SourceRecord.objects.filter(deleted_at__isnull=True).values_list(
        "source_id", "external_id", "profile_id"
    )
    for source_id, external_id, profile_id in rows.iterator(chunk_size=20_000):
        seen = set()
        while profile_id in survivor and profile_id not in seen:
            seen.add(profile_id)
            profile_id = survivor[profile_id]
        if profile_id is None:
            orphans += 1
            label = -orphans
        else:
            label = labels.setdefault(profile_id, len(labels))
        persons.append(truth.person(slugs[source_id], external_id))
        clusters.append(label)
    return persons, clusters, orphans


def product_matchables(truth: Truth) -> tuple[list, list[int], list[int]]:
    """(``MatchRecord`` of each live record with a profile, its person, its profile as an integer), for
    ``miss_report``; merged profiles followed to their survivor, as ``product_assignments`` does."""
    from ingestion.models import Source
    from profiles.matching import MatchRecord
    from profiles.models import Profile, SourceRecord

    slugs = dict(Source.objects.values_list("id", "slug"))
    survivor = dict(
        Profile.objects.filter(merged_into__isnull=False).values_list("id", "merged_into_id").iterator()
    )
    labels: dict = {}
    records, persons, clusters = [], [], []
    rows = SourceRecord.objects.filter(deleted_at__isnull=True, profile_id__isnull=False).values_list(
        "id", "source_id", "external_id", "profile_id", "attributes"
    )
    for pk, source_id, external_id, profile_id, attributes in rows.iterator(chunk_size=20_000):
        seen = set()
        while profile_id in survivor and profile_id not in seen:
            seen.add(profile_id)
            profile_id = survivor[profile_id]
        slug = slugs[source_id]
        records.append(MatchRecord.from_attributes(pk, attributes or {}, source=slug))
        persons.append(truth.person(slug, external_id))
        clusters.append(labels.setdefault(profile_id, len(labels)))
    return records, persons, clusters


def product_outcome() -> dict:
    """What resolution left besides the profiles: records not processed, merges, conflicts, suggestions."""
    from django.db.models import Count

    from ingestion.models import InboundRecord
    from profiles.models import MatchSuggestion, MergeEvent, Profile, ResolutionConflict

    statuses = dict(InboundRecord.objects.values_list("status").annotate(n=Count("id")).order_by())
    problems = []
    if statuses.get("pending") or statuses.get("quarantined"):
        sample = list(
            InboundRecord.objects.filter(status="quarantined").values_list("error_field", "error")[:3]
        )
        problems.append(f"records not processed: {statuses}; e.g. {sample}")
    return {
        "inbound": statuses,
        "profiles_active": Profile.objects.filter(status=Profile.Status.ACTIVE).count(),
        "merges": MergeEvent.objects.count(),
        "conflicts": ResolutionConflict.objects.count(),
        "suggestions": dict(MatchSuggestion.objects.values_list("status").annotate(n=Count("id")).order_by()),
        "problems": problems,
    }


def product_run(
    batches: Iterable[tuple[str, list[dict], list[int]]],
    *,
    specs: Sequence[SourceSpec],
    records: int,
    train_after: float = 0.25,
    resolve_all: bool = True,
    misses: bool = False,
    tick=None,
    log=None,
    drain=None,
) -> dict:
    """Send the batches through the product's intake (``records_receive``; with Celery eager each batch is
    resolved once its transaction commits, as a worker would right after), train the matching model after
    ``train_after`` of the records when ``manage.py match_train`` exists, re-evaluate everything with
    ``manage.py resolve --all`` at the end when it exists, and score the profiles against the truth; with
    ``misses``, also why the people still split are split (``miss_report``, with the active model).
    ``drain``: with Celery workers resolving the batches, returns once none is pending (before training and
    at the end; counted in the intake time)."""
    from ingestion.services import records_receive

    log = log or (lambda message: print(message, file=sys.stderr))
    sources = product_sources(specs)
    truth = Truth()
    notes: list[str] = []
    timings = {"ingest": 0.0, "train": 0.0, "resolve_all": 0.0}
    trained = train_after > 1
    sent = 0

    def train() -> None:
        if drain is not None:
            started = time.perf_counter()
            drain()
            timings["ingest"] += time.perf_counter() - started
        started = time.perf_counter()
        ran, output = _call("match_train")
        timings["train"] += time.perf_counter() - started
        notes.append(f"match_train after {sent:,} records: {output or 'done'}" if ran else output)
        log(notes[-1])

    for slug, payloads, persons in batches:
        started = time.perf_counter()
        receipt = records_receive(source=sources[slug], records=payloads)
        timings["ingest"] += time.perf_counter() - started
        if receipt.rejections:
            first = receipt.rejections[0]
            raise BenchError(f"{slug}: {len(receipt.rejections)} records rejected, e.g. {first}")
        for payload, person in zip(payloads, persons, strict=True):
            truth.add(slug, payload["external_id"], person)
        sent += len(payloads)
        if tick is not None:
            tick()
        if sent * 10 // records > (sent - len(payloads)) * 10 // records:
            log(f"  {sent:,} records in, {sent / timings['ingest']:,.0f} rec/s")
        if not trained and sent >= train_after * records:
            trained = True
            train()
    if not trained:
        train()
    if drain is not None:
        started = time.perf_counter()
        drain()
        timings["ingest"] += time.perf_counter() - started
    if sent != records:
        raise BenchError(f"{sent} records sent, {records} expected")

    persons, clusters, orphans = product_assignments(truth)
    stages = {"after intake": {**partition_scores(persons, clusters), "without_profile": orphans}}
    outcome = {"after intake": product_outcome()}
    if resolve_all:
        started = time.perf_counter()
        ran, output = _call("resolve", "--all")
        timings["resolve_all"] = time.perf_counter() - started
        notes.append(f"resolve --all: {output or 'done'}" if ran else output)
        log(notes[-1])
        if ran:
            persons, clusters, orphans = product_assignments(truth)
            stages["after resolve --all"] = {
                **partition_scores(persons, clusters),
                "without_profile": orphans,
            }
            outcome["after resolve --all"] = product_outcome()
    result = {"stages": stages, "outcome": outcome, "timings": timings, "notes": notes}
    if misses:
        from profiles.services.matching import match_model_active

        active = match_model_active()
        if active is not None:
            result["misses"] = miss_report(*product_matchables(truth), active[1])
    return result


def run_product(data: Path, meta: dict, args: argparse.Namespace) -> dict:
    """The product path in its own database (created and dropped here, see ``bench.ingest``)."""
    from bench.ingest import (
        Analyzer,
        database_create,
        database_drop,
        django_setup,
        server_facts,
        workers_drain,
        workers_start,
        workers_stop,
    )

    db = database_create()
    print(f"benchmark database: {db.name} ({db.vendor})", file=sys.stderr)
    try:
        django_setup(db, argparse.Namespace(chunk_size=args.chunk_size, mode="eager"))
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        facts = server_facts()
        analyze = facts.get("autovacuum") == "off"
        analyzer = Analyzer(analyze)
        rss_before = peak_rss_mb()
        workers = getattr(args, "workers", 0)
        worker, drain = None, None
        if workers:
            worker, logfile = workers_start(db, workers, "people")
            drain = partial(workers_drain, worker, logfile)
        started = time.perf_counter()
        cpu = time.process_time()
        try:
            result = product_run(
                data_batches(data),
                specs=people_sources(len(meta["sources"])),
                records=meta["records"],
                train_after=args.train_after,
                resolve_all=not args.no_resolve_all,
                misses=getattr(args, "misses", False),
                tick=analyzer.tick,
                drain=drain,
            )
        finally:
            if worker is not None:
                workers_stop(worker)
        seconds = time.perf_counter() - started
        return {
            "run": "product",
            "workers": workers,
            "database": facts["server"],
            "analyze": analyze,
            **result,
            "seconds": seconds,
            "cpu_seconds": time.process_time() - cpu,
            "peak_rss_mb": peak_rss_mb(),
            "rss_before_mb": rss_before,
        }
    finally:
        if args.keep:
            print(f"kept the benchmark database {db.name}", file=sys.stderr)
        else:
            database_drop(db)
