"""Many workers resolving records that share identifiers, at the same moment, on PostgreSQL.

Each writer is a thread with its own database connection that stores one request (``records_receive``) and
then processes it (``batch_process``), all released together by a barrier. Whatever the interleaving, the end
state must be the one a single worker would reach: one active profile per person, every identifier owned once,
every record on an active profile, tombstones empty.
"""

from __future__ import annotations

import itertools
import random
import threading
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.db import connection, transaction
from django.db.models import Count

import ingestion.services
from ingestion.models import IdentifierType, InboundRecord, Source
from ingestion.services import batch_process, record_delete_receive, records_receive, source_create
from profiles.models import Identity, MergeEvent, Profile, RecordChange, ResolutionConflict, SourceRecord

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WRITERS = 8
ROUNDS = 3
ACTIVE, MERGED = Profile.Status.ACTIVE, Profile.Status.MERGED
_phone_numbers = itertools.count(1)


@pytest.fixture(autouse=True)
def _processing_is_explicit(monkeypatch, seeded_identifier_rules):
    """Intake only stores: each writer thread processes its own batch, so the barrier lines up the processing."""
    monkeypatch.setattr(ingestion.services, "_schedule", lambda batch: None)
    IdentifierType.objects.create(name="member", normaliser=IdentifierType.Normaliser.CASEFOLD)


# --- Scenarios -----------------------------------------------------------------------------------------


@dataclass
class Scenario:
    sends: list[tuple[Source, list[dict]]] = field(default_factory=list)
    person_of: dict[tuple[str, str], str] = field(default_factory=dict)  # (source, external id) -> person
    final_first_name: dict[tuple[str, str], str] = field(default_factory=dict)

    def add(self, source: Source, records: list[dict], persons: list[str]) -> None:
        self.sends.append((source, records))
        for record, person in zip(records, persons, strict=True):
            self.person_of[(source.slug, record["external_id"])] = person


def new_phone() -> str:
    return f"+44 20 {next(_phone_numbers):08d}"


def one_person(tag: str, sources: list[Source]) -> Scenario:
    """Every writer sends records of the same person at once: they must all land on one profile."""
    scenario = Scenario()
    for w, source in enumerate(sources):
        records = [
            {
                "external_id": f"{tag}-w{w}-{k}",
                "attributes": {"first_name": "Hot", "email": f"hot-{tag}@x.example"},
                "identifiers": {"member": f"{tag}-w{w}-{k}"},
            }
            for k in range(3)
        ]
        scenario.add(source, records, [f"{tag}-hot"] * len(records))
    return scenario


def email_per_person(tag: str, sources: list[Source], persons: int = 6) -> Scenario:
    """Every writer sends one record of each person, in its own order; a person's records share an email."""
    scenario = Scenario()
    for w, source in enumerate(sources):
        order = list(range(persons))
        random.Random(f"{tag}-{w}").shuffle(order)
        records = [
            {
                "external_id": f"{tag}-p{i}-w{w}",
                "attributes": {"first_name": f"P{i}", "email": f"person-{i}-{tag}@x.example"},
                "identifiers": {"member": f"{tag}-p{i}-w{w}"},
            }
            for i in order
        ]
        scenario.add(source, records, [f"{tag}-p{i}" for i in order])
    return scenario


def chain(tag: str, sources: list[Source], persons: int = 4) -> Scenario:
    """A person's records link only to the neighbouring writers' records, alternately by email and by phone
    (writers 0-1 share an email, 1-2 a phone, 2-3 an email, ... 7-0 a phone): nothing collapses into one
    profile per person unless merges made by different workers compose."""
    phones = {(i, j): new_phone() for i in range(persons) for j in range(WRITERS // 2)}
    scenario = Scenario()
    for w, source in enumerate(sources):
        order = list(range(persons))
        random.Random(f"{tag}-{w}").shuffle(order)
        records = [
            {
                "external_id": f"{tag}-p{i}-w{w}",
                "attributes": {
                    "first_name": f"P{i}",
                    "email": f"person-{i}-{w // 2}-{tag}@x.example",
                    "phone": phones[(i, ((w - 1) % WRITERS) // 2)],
                },
            }
            for i in order
        ]
        scenario.add(source, records, [f"{tag}-p{i}" for i in order])
    return scenario


def star(tag: str, sources: list[Source], persons: int = 4) -> Scenario:
    """Writers 1-7 each create a separate profile per person; writer 0's records carry all their ids, so each
    of them merges up to seven profiles that are being created at the same moment."""
    scenario = Scenario()
    for w, source in enumerate(sources):
        if w == 0:
            records = [
                {
                    "external_id": f"{tag}-p{i}-hub",
                    "identifiers": {"member": [f"{tag}-p{i}-m{v}" for v in range(1, WRITERS)]},
                }
                for i in range(persons)
            ]
        else:
            records = [
                {
                    "external_id": f"{tag}-p{i}-w{w}",
                    "attributes": {"first_name": f"P{i}"},
                    "identifiers": {"member": f"{tag}-p{i}-m{w}"},
                }
                for i in reversed(range(persons))
            ]
        scenario.add(source, records, [f"{tag}-p{i}" for i in range(persons)][:: 1 if w == 0 else -1])
    return scenario


def same_records(tag: str, sources: list[Source], persons: int = 5) -> Scenario:
    """Every writer sends the very same records of one source (a sender retrying, or a replayed export)."""
    scenario = Scenario()
    for source in sources:
        records = [
            {
                "external_id": f"{tag}-p{i}",
                "attributes": {"first_name": f"P{i}", "email": f"person-{i}-{tag}@x.example"},
            }
            for i in range(persons)
        ]
        scenario.add(source, records, [f"{tag}-p{i}" for i in range(persons)])
    return scenario


def versions(tag: str, sources: list[Source], persons: int = 4) -> Scenario:
    """Every writer sends another version of the same records, each with another email: only the newest
    version may remain, with its own email and none of the others."""
    scenario = Scenario()
    for w, source in enumerate(sources):
        records = [
            {
                "external_id": f"{tag}-p{i}",
                "updated_at": f"2024-01-{w + 1:02d}T00:00:00Z",
                "attributes": {"first_name": f"v{w}", "email": f"person-{i}-v{w}-{tag}@x.example"},
                "identifiers": {"member": f"{tag}-p{i}"},
            }
            for i in range(persons)
        ]
        scenario.add(source, records, [f"{tag}-p{i}" for i in range(persons)])
        for i in range(persons):
            scenario.final_first_name[(source.slug, f"{tag}-p{i}")] = f"v{WRITERS - 1}"
    return scenario


# --- Running writers -----------------------------------------------------------------------------------


def run_together(jobs: list[Callable[[threading.Barrier], None]]) -> None:
    """Run each job in its own thread and database connection; the jobs wait for each other at the barrier."""
    barrier = threading.Barrier(len(jobs))
    errors: list[str] = []

    def run(job):
        try:
            job(barrier)
        except BaseException:
            errors.append(traceback.format_exc())
            barrier.abort()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(job,), daemon=True) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert not [t for t in threads if t.is_alive()], "a writer is still running after 180 s (deadlock?)"
    assert not errors, "\n".join(errors)


def receive_then_process(source: Source, records: list[dict]):
    def job(barrier: threading.Barrier) -> None:
        receipt = records_receive(source=source, records=records)
        assert not receipt.rejections, receipt.rejections
        barrier.wait(timeout=60)
        batch_process(batch_id=receipt.batch.pk)

    return job


def delete_then_process(source: Source, external_ids: list[str]):
    def job(barrier: threading.Barrier) -> None:
        batches = [record_delete_receive(source=source, external_id=ext) for ext in external_ids]
        barrier.wait(timeout=60)
        for batch in batches:
            batch_process(batch_id=batch.pk)

    return job


def process(batch_id):
    def job(barrier: threading.Barrier) -> None:
        barrier.wait(timeout=60)
        batch_process(batch_id=batch_id)

    return job


# --- What must hold ------------------------------------------------------------------------------------


def assert_consistent(person_of: dict[tuple[str, str], str]) -> None:
    unfinished = list(
        InboundRecord.objects.exclude(status=InboundRecord.Status.PROCESSED).values_list(
            "external_id", "status", "error_stage", "error"
        )
    )
    assert unfinished == [], "records not processed (lost or quarantined by the race)"

    duplicates = list(
        Identity.objects.values("type", "value")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .values_list("type", "value")
    )
    assert duplicates == [], "an identifier is owned twice"

    status_of = dict(Profile.objects.values_list("id", "status"))
    records = list(
        SourceRecord.objects.filter(deleted_at__isnull=True).values_list(
            "source__slug", "external_id", "profile_id", "identifiers"
        )
    )
    off_active = [
        (slug, ext, status_of.get(profile_id))
        for slug, ext, profile_id, _ in records
        if status_of.get(profile_id) != ACTIVE
    ]
    assert off_active == [], "records on a profile that is not active"

    profiles_of_person: dict[str, set] = defaultdict(set)
    for slug, ext, profile_id, _ in records:
        profiles_of_person[person_of[(slug, ext)]].add(profile_id)
    split = {person: len(ids) for person, ids in profiles_of_person.items() if len(ids) > 1}
    assert split == {}, "a person is spread over several profiles"
    assert set(profiles_of_person) == set(person_of.values()), "a person has no record"
    persons_of_profile: dict = defaultdict(set)
    for person, (profile_id,) in profiles_of_person.items():
        persons_of_profile[profile_id].add(person)
    joined = [persons for persons in persons_of_profile.values() if len(persons) > 1]
    assert joined == [], "different people on one profile"
    assert Profile.objects.filter(status=ACTIVE).count() == len(set(person_of.values()))

    carried: dict = defaultdict(set)
    for _, _, profile_id, identifiers in records:
        carried[profile_id] |= {tuple(key) for key in identifiers}
    owned: dict = defaultdict(set)
    for kind, value, profile_id in Identity.objects.values_list("type", "value", "profile_id"):
        owned[profile_id].add((kind, value))
    assert set(owned) <= {p for p, s in status_of.items() if s == ACTIVE}, "identities on an inactive profile"
    mismatched = {
        str(p): (owned[p] ^ carried[p]) for p in set(owned) | set(carried) if owned[p] != carried[p]
    }
    assert mismatched == {}, "a profile's identities differ from what its records carry"

    tombstones = list(Profile.objects.filter(status=MERGED).values_list("id", "merged_into_id"))
    assert all(status_of.get(survivor) == ACTIVE for _, survivor in tombstones), (
        "a tombstone points at a tombstone"
    )
    assert not Identity.objects.filter(profile__status=MERGED).exists()
    assert not SourceRecord.objects.filter(profile__status=MERGED).exists()
    assert not RecordChange.objects.filter(profile__status=MERGED).exists()
    merged_ids = Counter(MergeEvent.objects.values_list("merged_id", flat=True))
    assert merged_ids == {profile_id: 1 for profile_id, _ in tombstones}, "each tombstone has one merge entry"
    assert not ResolutionConflict.objects.exists()


# --- Tests ---------------------------------------------------------------------------------------------


def writer_sources(mode: str, tag: str) -> list[Source]:
    if mode == "sources":
        return [source_create(slug=f"s{tag}w{w}", kind="crm") for w in range(WRITERS)]
    return [source_create(slug=f"s{tag}", kind="crm")] * WRITERS


SHAPES = {
    "one_person": one_person,
    "email_per_person": email_per_person,
    "chain": chain,
    "star": star,
    "same_records": same_records,
    "versions": versions,
}
CASES = [
    *[
        (shape, mode, chunk)
        for shape in ("one_person", "email_per_person", "chain", "star")
        for mode in ("sources", "batches")
        for chunk in (250, 1)
    ],
    ("same_records", "batches", 250),
    ("versions", "batches", 250),
    ("versions", "batches", 1),
]


@pytest.mark.parametrize(("shape", "mode", "chunk_size"), CASES)
def test_concurrent_writers_end_with_one_profile_per_person(settings, shape, mode, chunk_size):
    settings.CDP_RESOLVE_CHUNK_SIZE = chunk_size
    person_of: dict[tuple[str, str], str] = {}
    final_first_name: dict[tuple[str, str], str] = {}

    for round_ in range(ROUNDS):
        tag = f"r{round_}"
        scenario = SHAPES[shape](tag, writer_sources(mode, tag))

        run_together([receive_then_process(source, records) for source, records in scenario.sends])

        person_of.update(scenario.person_of)
        final_first_name.update(scenario.final_first_name)
        assert_consistent(person_of)
        for (slug, ext), first_name in final_first_name.items():
            assert (
                SourceRecord.objects.get(source__slug=slug, external_id=ext).attributes["first_name"]
                == first_name
            )

    if shape == "same_records":
        # One writer creates each record; the others find it unchanged, or newer than their copy (received
        # earlier, processed later).
        outcomes = Counter(InboundRecord.objects.values_list("outcome", flat=True))
        assert outcomes["created"] == len(person_of)
        assert outcomes["unchanged"] + outcomes["stale"] == len(person_of) * (WRITERS - 1)


@pytest.mark.parametrize("shape", ["chain", "star"])
def test_a_batch_delivered_to_two_workers_at_once_is_resolved_once(settings, shape):
    """acks_late: a task can run twice at the same moment (a worker lost, the broker redelivering)."""
    person_of: dict[tuple[str, str], str] = {}
    for round_ in range(ROUNDS):
        tag = f"r{round_}"
        scenario = SHAPES[shape](tag, writer_sources("sources", tag))
        batches = [
            records_receive(source=source, records=records).batch for source, records in scenario.sends
        ]

        run_together([process(batch.pk) for batch in batches for _ in range(2)])

        person_of.update(scenario.person_of)
        assert_consistent(person_of)
        assert SourceRecord.objects.count() == len(person_of)


@pytest.mark.parametrize("mode", ["sources", "batches"])
def test_concurrent_changes_and_deletions_keep_identities_in_step_with_the_records(mode):
    """Half the writers change their records' email to a new shared one while the other half delete theirs:
    the old email must vanish (no live record carries it) and nothing may be left behind on the way."""
    person_of: dict[tuple[str, str], str] = {}
    for round_ in range(ROUNDS):
        tag = f"r{round_}"
        sources = writer_sources(mode, tag)
        created = email_per_person(tag, sources)
        run_together([receive_then_process(source, records) for source, records in created.sends])
        person_of.update(created.person_of)
        assert_consistent(person_of)

        jobs = []
        for w, (source, records) in enumerate(created.sends):
            if w % 2:
                jobs.append(delete_then_process(source, [record["external_id"] for record in records]))
            else:
                changed = [
                    {
                        **record,
                        "attributes": {
                            **record["attributes"],
                            "email": f"new-{record['external_id'].split('-')[1]}-{tag}@x.example",
                        },
                    }
                    for record in records
                ]
                jobs.append(receive_then_process(source, changed))
        run_together(jobs)

        assert_consistent(person_of)
        assert not Identity.objects.filter(
            type="email", value__endswith=f"-{tag}@x.example", value__startswith="person-"
        ).exists()
        for i in range(6):
            profile = Profile.objects.get(
                identities__type="email", identities__value=f"new-p{i}-{tag}@x.example"
            )
            assert profile.golden["email"] == f"new-p{i}-{tag}@x.example"
            assert profile.records.count() == WRITERS // 2


# --- A worker does not wait for another one's locks ------------------------------------------------------


def while_another_transaction_holds(lock_key, work: Callable[[], object], done: Callable[[], object]):
    """Run ``work`` in a thread while another transaction holds ``lock_key``'s advisory lock; return what
    ``done`` reads once it is truthy (polled, the lock still held), then release the lock and wait for
    ``work`` to finish."""
    from profiles.services.resolution import identifier_keys_lock

    held, release, errors = threading.Event(), threading.Event(), []

    def in_thread(function):
        def run():
            try:
                function()
            except Exception:  # pragma: no cover - reported below
                errors.append(traceback.format_exc())
            finally:
                connection.close()

        return threading.Thread(target=run, daemon=True)

    def hold():
        with transaction.atomic():
            identifier_keys_lock([lock_key])
            held.set()
            release.wait(timeout=30)

    holder = in_thread(hold)
    holder.start()
    assert held.wait(timeout=10)
    worker = in_thread(work)
    worker.start()
    try:
        for _ in range(200):
            seen = done()
            if seen:
                break
            threading.Event().wait(0.05)
    finally:
        release.set()
        holder.join(timeout=10)
        worker.join(timeout=60)
    assert not errors, errors[0]
    return seen


def process_while_another_transaction_holds(batch_id, lock_key) -> dict[str, str]:
    """Process a batch while another transaction holds ``lock_key``'s advisory lock; return each record's
    status once the free ones are committed (while the lock is still held), and let the rest finish after."""
    records = InboundRecord.objects.filter(batch_id=batch_id)
    status: dict[str, str] = {}

    def processed() -> bool:
        status.clear()
        status.update(records.values_list("external_id", "status"))
        return InboundRecord.Status.PROCESSED in status.values()

    while_another_transaction_holds(lock_key, lambda: batch_process(batch_id=batch_id), processed)
    assert set(records.values_list("status", flat=True)) == {InboundRecord.Status.PROCESSED}
    return status


def test_records_whose_identifiers_another_transaction_locked_wait_only_after_the_others():
    """While another transaction holds the lock of one email, the records that do not need it are resolved
    and committed at once; the one that needs it is deferred, then resolved once the lock is free."""
    crm = source_create(slug="crm", kind="crm")
    batch = records_receive(
        source=crm,
        records=[
            {"external_id": "BUSY", "attributes": {"email": "busy@x.example"}},
            {"external_id": "FREE", "attributes": {"email": "free@x.example"}},
        ],
    ).batch

    status = process_while_another_transaction_holds(batch.pk, ("email", "busy@x.example"))

    assert status == {"FREE": InboundRecord.Status.PROCESSED, "BUSY": InboundRecord.Status.PENDING}
    assert Identity.objects.filter(type="email").count() == 2


def test_with_a_matching_model_records_whose_blocking_keys_are_locked_wait_only_after_the_others(settings):
    """Matching locks a record's blocking keys (two workers matching one person see each other): while
    another transaction holds one of them, the records that do not need it go on."""
    from io import StringIO

    from django.core.management import call_command

    from profiles.services.matching import attributes_match_keys, match_key_locks, match_model_active
    from tests.profiles.population import population

    settings.CDP_MATCH_TRAIN_MIN_RECORDS = 10**9  # trained explicitly below
    crm, erp = source_create(slug="crm", kind="crm"), source_create(slug="erp", kind="erp")
    for source, records in zip((crm, erp), population(), strict=True):
        batch_process(batch_id=records_receive(source=source, records=records).batch.pk)
    call_command("match_train", stdout=StringIO())
    assert match_model_active() is not None
    busy = {
        "first_name": "Zebedee",
        "last_name": "Quornhill",
        "birth_date": "1961-02-03",
        "postcode": "ZZ9 9ZZ",
    }
    free = {
        "first_name": "Amelia",
        "last_name": "Voletree",
        "birth_date": "1975-06-07",
        "postcode": "YY2 2YY",
    }
    only_busy = match_key_locks(attributes_match_keys(busy, "crm")) - match_key_locks(
        attributes_match_keys(free, "crm")
    )
    batch = records_receive(
        source=crm,
        records=[{"external_id": "BUSY", "attributes": busy}, {"external_id": "FREE", "attributes": free}],
    ).batch

    status = process_while_another_transaction_holds(batch.pk, sorted(only_busy)[0])

    assert status == {"FREE": InboundRecord.Status.PROCESSED, "BUSY": InboundRecord.Status.PENDING}


def test_backlog_matching_does_not_wait_for_the_blocking_keys_another_transaction_holds(settings):
    """``match_backlog`` (the records that arrived before a model, matched once one is active) runs beside
    the workers: a record whose blocking key another transaction holds is matched after the others, which
    are linked and committed meanwhile."""
    from profiles.services.matching import (
        attributes_match_keys,
        match_backlog,
        match_key_locks,
        match_model_train,
    )
    from tests.profiles.population import population

    settings.CDP_MATCH_TRAIN_MIN_RECORDS = 10**9  # no model while the records arrive
    crm, erp = source_create(slug="crm", kind="crm"), source_create(slug="erp", kind="erp")
    for source, records in zip((crm, erp), population(), strict=True):
        batch_process(batch_id=records_receive(source=source, records=records).batch.pk)
    busy = {
        "first_name": "Zebedee",
        "last_name": "Quornhill",
        "birth_date": "1961-02-03",
        "address_line1": "7 Wharfside Close",
        "city": "Whitby",
        "postcode": "YO21 9ZZ",
    }
    free = {
        "first_name": "Amelia",
        "last_name": "Voletree",
        "birth_date": "1975-06-07",
        "address_line1": "12 Larkspur Gardens",
        "city": "Ripon",
        "postcode": "HG4 2YY",
    }
    for source, prefix in ((crm, "C"), (erp, "E")):
        batch_process(
            batch_id=records_receive(
                source=source,
                records=[
                    {"external_id": f"{prefix}-BUSY", "attributes": busy},
                    {"external_id": f"{prefix}-FREE", "attributes": free},
                ],
            ).batch.pk
        )
    assert match_model_train().activated

    def profiles_of(name: str) -> int:
        return len(
            set(SourceRecord.objects.filter(external_id__endswith=name).values_list("profile_id", flat=True))
        )

    assert (profiles_of("BUSY"), profiles_of("FREE")) == (2, 2)
    lock_key = sorted(
        match_key_locks(attributes_match_keys(busy, "crm"))
        - match_key_locks(attributes_match_keys(free, "crm"))
    )[0]

    def free_linked() -> tuple[int, int] | None:
        seen = (profiles_of("BUSY"), profiles_of("FREE"))
        return seen if seen[1] == 1 else None

    while_held = while_another_transaction_holds(lock_key, match_backlog, free_linked)

    assert while_held == (2, 1)
    assert (profiles_of("BUSY"), profiles_of("FREE")) == (1, 1)
