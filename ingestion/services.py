"""Intake and processing of source records.

Intake (``records_receive``) validates a request, stores every record exactly as sent in the request's
transaction and schedules processing once that transaction commits. Processing (``inbound_process``) runs the
pipeline over the stored records in chunks; a record that fails is quarantined with the reason, and
``quarantine_replay`` runs it again once the cause is fixed.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache

from django.conf import settings
from django.db import IntegrityError, OperationalError, transaction
from django.db.models import Case, F, Q, When
from django.utils import timezone
from django.utils.module_loading import import_string

from cdp.db import values_insert
from cdp.fields import JSONField
from cdp.keys import key_generate

from .models import Batch, IdentifierType, InboundRecord, Source, SourceKey
from .normalise import (
    MAX_VALUES_PER_IDENTIFIER,
    InvalidValue,
    NormalisedRecord,
    RecordError,
    SourceRules,
    normalise_identifier,
    normalise_record,
    record_dump,
    record_load,
)
from .pipeline import PipelineBatch, PipelineItem, pipeline_run
from .selectors import identifier_normalisers, source_rules
from .tracking import ANONYMOUS_ID_TYPE, message_identifiers_salvage, normalise_message

logger = logging.getLogger(__name__)

MAX_RECORDS_PER_REQUEST = 1000
DEFAULT_TRUST_RANK = {
    Source.Kind.CRM: 80,
    Source.Kind.ERP: 70,
    Source.Kind.SUPPORT: 60,
    Source.Kind.WEB: 40,
    Source.Kind.SURVEY: 30,
    Source.Kind.SOCIAL: 30,
    Source.Kind.OTHER: 50,
}
RETRYABLE_ATTEMPTS = 4
# Canonical attributes that identify a person on their own: an invalid record's are salvaged as sent, and
# no source may take one as its slug.
IDENTIFYING_ATTRIBUTES = ("national_id",)


class SourceConflict(ValueError):
    pass


# --- Sources and keys ----------------------------------------------------------------------------------


@transaction.atomic
def source_create(
    *,
    slug: str,
    kind: str,
    name: str = "",
    trust_rank: int | None = None,
    default_region: str = "US",
    field_mapping: dict | None = None,
) -> Source:
    """Create a source and the identifier type of its external ids (named after the source)."""
    if Source.objects.filter(slug=slug).exists():
        raise SourceConflict(f"a source {slug!r} already exists")
    taken = source_slug_taken(slug)
    if taken:
        raise SourceConflict(taken)
    source = Source(
        slug=slug,
        kind=kind,
        name=name or slug.replace("-", " ").replace("_", " ").title(),
        trust_rank=DEFAULT_TRUST_RANK.get(kind, 50) if trust_rank is None else trust_rank,
        default_region=default_region.upper(),
        field_mapping=field_mapping or {},
    )
    source.full_clean()
    source.save()
    source_identifier_type_ensure(source=source)
    return source


def source_slug_taken(slug: str) -> str | None:
    """Why ``slug`` cannot name a new source, or None. Its external ids become the identifier type of that
    name: not one that exists, nor a canonical attribute that identifies a person (``national_id``: the
    source's ids would be taken for national identifiers, on the suppression list among others)."""
    if slug in IDENTIFYING_ATTRIBUTES:
        return f"{slug!r} is a canonical attribute that identifies people; choose another slug"
    if IdentifierType.objects.filter(name=slug).exists():
        return f"{slug!r} is already an identifier rule; choose another slug"
    return None


def source_identifier_type_ensure(*, source: Source) -> IdentifierType:
    identifier_type, _ = IdentifierType.objects.get_or_create(
        name=source.slug, defaults={"source": source, "normaliser": IdentifierType.Normaliser.TEXT}
    )
    return identifier_type


def source_key_create(
    *, source: Source, scopes: Iterable[str] | None = None, name: str = ""
) -> tuple[SourceKey, str]:
    """Issue a new key for a source; the returned secret is shown once and stored only hashed."""
    scopes = list(scopes) if scopes is not None else list(SourceKey.DEFAULT_SCOPES)
    unknown = set(scopes) - set(SourceKey.Scope.values)
    if unknown:
        raise ValueError(f"unknown scopes: {', '.join(sorted(unknown))}")
    new = key_generate(SourceKey.KIND)
    key = SourceKey.objects.create(
        source=source, name=name, prefix=new.prefix, digest=new.digest, scopes=scopes
    )
    return key, new.key


# --- Intake --------------------------------------------------------------------------------------------


@dataclass
class Rejection:
    index: int
    field: str
    reason: str
    external_id: str = ""


@dataclass
class Receipt:
    batch: Batch
    accepted: int
    rejections: list[Rejection] = field(default_factory=list)


def _external_id_of(raw: object) -> str:
    value = raw.get("external_id") if isinstance(raw, dict) else None
    return str(value)[:255] if isinstance(value, str | int) and not isinstance(value, bool) else ""


@transaction.atomic
def records_receive(*, source: Source, records: list, received_at: datetime | None = None) -> Receipt:
    """Store a request's records as received and schedule their processing.

    Invalid records are stored too, quarantined at the validation stage with their field and reason, so a
    record rejected because of a missing identifier rule can be replayed once the rule exists.
    """
    received_at = received_at or timezone.now()
    rules = source_rules(source)
    batch = Batch.objects.create(source=source, received_at=received_at, received_count=len(records))
    results = [normalise_record(raw, rules) for raw in records]
    valid = [
        (i, records[i], result) for i, result in enumerate(results) if not isinstance(result, RecordError)
    ]
    for check in record_checks():
        for index, error in check(source=source, records=valid).items():
            results[index] = error
        valid = [(i, raw, result) for i, raw, result in valid if not isinstance(results[i], RecordError)]
    rows = []
    for index, (raw, result) in enumerate(zip(records, results, strict=True)):
        accepted = not isinstance(result, RecordError)
        row = _Received(
            index=index,
            operation=InboundRecord.Operation.UPSERT,
            external_id=result.external_id if accepted else _external_id_of(raw),
            payload=raw,
            normalised=record_dump(result, rules) if accepted else None,
            received_at=received_at,
        )
        rows.append((row, result))
    return _store(batch, rows, rules)


@cache
def record_checks() -> tuple:
    """The checks of ``CDP_RECORD_CHECKS``: ``(*, source, records: [(index, raw, NormalisedRecord)]) ->
    {index: RecordError}``, for the parts of a record other apps own (its consents); one call per request."""
    return tuple(import_string(path) for path in getattr(settings, "CDP_RECORD_CHECKS", ()))


@cache
def rejected_steps() -> tuple:
    """The steps of ``CDP_INTAKE_REJECTED_STEPS``, run on records and messages rejected at intake before they
    are kept in the quarantine (e.g. suppression: an erased person's raw payload is not kept even there)."""
    return tuple(import_string(path) for path in getattr(settings, "CDP_INTAKE_REJECTED_STEPS", ()))


def record_identifiers_salvage(raw: object, rules: SourceRules) -> list[tuple[str, str]]:
    """Every identifier of an invalid record that normalises on its own (the record's id, its email and
    phone attributes, its declared identifiers), for the checks that must hold even for invalid records."""
    if not isinstance(raw, dict):
        return []
    found: list[tuple[str, str]] = []

    def add(kind: str, value: object) -> None:
        normaliser = rules.identifier_normalisers.get(kind) if kind != rules.slug else "text"
        if normaliser is None:
            return
        with contextlib.suppress(InvalidValue):
            key = (kind, normalise_identifier(normaliser, value, rules.default_region))
            if key not in found:
                found.append(key)

    add(rules.slug, raw.get("external_id"))
    attributes = raw.get("attributes")
    if isinstance(attributes, dict):
        for name, value in attributes.items():
            if rules.field_mapping.get(name, name) in ("email", "phone"):
                add(rules.field_mapping.get(name, name), value)
    identifiers = raw.get("identifiers")
    if isinstance(identifiers, dict):
        for kind, values in list(identifiers.items())[:100]:
            for value in (values if isinstance(values, list) else [values])[:MAX_VALUES_PER_IDENTIFIER]:
                add(str(kind), value)
    return found


def record_attributes_salvage(raw: object, rules: SourceRules) -> dict[str, object]:
    """The identifying attributes of an invalid record (``IDENTIFYING_ATTRIBUTES``, by the source's field
    mapping), as sent: for the checks that must hold even for invalid records (an erased person's national
    identifier is on the suppression list)."""
    attributes = raw.get("attributes") if isinstance(raw, dict) else None
    if not isinstance(attributes, dict):
        return {}
    found = {}
    for name, value in attributes.items():
        canonical = rules.field_mapping.get(name, name)
        if (
            canonical in IDENTIFYING_ATTRIBUTES
            and isinstance(value, str | int)
            and not isinstance(value, bool)
        ):
            found[canonical] = value
    return found


@transaction.atomic
def record_delete_receive(*, source: Source, external_id: str, received_at: datetime | None = None) -> Batch:
    """The source deleted a record: queue the deletion like any other change, in order with them."""
    received_at = received_at or timezone.now()
    batch = Batch.objects.create(
        source=source, kind=Batch.Kind.DELETE, received_at=received_at, received_count=1
    )
    InboundRecord.objects.create(
        batch=batch,
        source=source,
        index=0,
        operation=InboundRecord.Operation.DELETE,
        external_id=external_id,
        payload={"external_id": external_id},
        received_at=received_at,
    )
    _schedule(batch)
    return batch


def tracking_rules_ensure(*, source: Source) -> None:
    """The identifier rules tracking relies on: the ``anonymous_id`` type, and at most one user id of this
    source per profile, so that an anonymous id seen with several user ids (a shared device) never merges
    those people; resolution records a conflict instead. Staff may relax the limit in the admin."""
    IdentifierType.objects.get_or_create(
        name=ANONYMOUS_ID_TYPE, defaults={"normaliser": IdentifierType.Normaliser.TEXT}
    )
    own = source_identifier_type_ensure(source=source)
    if own.max_per_profile is None:
        IdentifierType.objects.filter(pk=own.pk, max_per_profile__isnull=True).update(max_per_profile=1)


@transaction.atomic
def events_receive(
    *,
    source: Source,
    messages: list,
    sent_at: object = None,
    received_at: datetime | None = None,
    gpc: bool = False,
) -> Receipt:
    """Store the messages of one tracking request as received and schedule their processing.

    Stored with what the envelope implied filled in: the batch's ``sentAt``, for a message without one a new
    ``messageId`` (so a replay finds the same id), and, when the request carried the Global Privacy Control
    signal (``gpc``: the header ``Sec-GPC: 1``), ``context.gpc = true`` (consent records the opt-out from
    it). Invalid messages are kept too, quarantined at the validation stage with the field and the reason;
    the valid ones go on. Each message's ``messageId`` is its external id: events are deduplicated on it per
    source when processed.
    """
    received_at = received_at or timezone.now()
    tracking_rules_ensure(source=source)
    rules = source_rules(source)
    batch = Batch.objects.create(
        source=source, kind=Batch.Kind.EVENTS, received_at=received_at, received_count=len(messages)
    )
    rows = []
    for index, message in enumerate(messages):
        if isinstance(message, dict):
            message = dict(message)
            if sent_at is not None and message.get("sentAt") is None:
                message["sentAt"] = sent_at
            if not message.get("messageId"):
                message["messageId"] = f"cdp-{uuid.uuid4()}"
            context = message.get("context")
            if gpc and (context is None or isinstance(context, dict)):
                message["context"] = {**(context or {}), "gpc": True}
        result = normalise_message(message, rules, received_at=received_at)
        message_id = message.get("messageId") if isinstance(message, dict) else None
        row = _Received(
            index=index,
            operation=InboundRecord.Operation.EVENT,
            external_id=str(message_id)[:255] if isinstance(message_id, str | int) else "",
            payload=message,
            normalised=None,
            received_at=received_at,
        )
        rows.append((row, result))
    return _store(batch, rows, rules)


@dataclass
class _Received:
    """One record or message of a request, as its ``InboundRecord`` row is written: plain values, since
    building up to 1,000 model instances a request cost intake more than writing them."""

    index: int
    operation: str
    external_id: str
    payload: object
    normalised: dict | None
    received_at: datetime
    pk: int | None = None


# The columns of a new InboundRecord, in the order ``_store`` gives them (every one: no defaults apply).
_INBOUND_FIELDS = (
    "batch",
    "source",
    "index",
    "operation",
    "external_id",
    "payload",
    "normalised",
    "status",
    "outcome",
    "error_stage",
    "error_field",
    "error",
    "attempts",
    "received_at",
    "processed_at",
)


def _store(batch: Batch, rows: list[tuple[_Received, object]], rules: SourceRules) -> Receipt:
    """Store every row as received; the invalid ones quarantined at the validation stage with the field and
    the reason, after the steps of ``CDP_INTAKE_REJECTED_STEPS`` saw them. Processing is scheduled once the
    request's transaction commits."""
    rejections = []
    values = []
    for row, result in rows:
        status, stage, field_name, reason = InboundRecord.Status.PENDING, "", "", ""
        if isinstance(result, RecordError):
            rejections.append(Rejection(row.index, result.field, result.reason, row.external_id))
            status, stage = InboundRecord.Status.QUARANTINED, InboundRecord.Stage.VALIDATION
            field_name, reason = result.field, result.reason
        values.append(
            (
                batch.pk,
                batch.source_id,
                row.index,
                row.operation,
                row.external_id,
                row.payload,
                row.normalised,
                status,
                "",
                stage,
                field_name[:200],
                reason,
                0,
                row.received_at,
                None,
            )
        )
    values_insert(model=InboundRecord, fields=_INBOUND_FIELDS, rows=values)
    if rejections:
        _rejected_screen(batch, [row for row, result in rows if isinstance(result, RecordError)], rules)
        Batch.objects.filter(pk=batch.pk).update(rejected_count=len(rejections))
        batch.rejected_count = len(rejections)
    if len(rejections) < len(rows):
        _schedule(batch)
    return Receipt(batch=batch, accepted=len(rows) - len(rejections), rejections=rejections)


def _rejected_screen(batch: Batch, rows: list[_Received], rules: SourceRules) -> None:
    """Run the rejected-intake steps over the invalid rows, with whatever identifiers they carry that
    normalise. A row a step finishes (an erased person's: outcome "suppressed") leaves the quarantine: it is
    marked processed with that outcome and keeps no error text (which may quote a value)."""
    steps = rejected_steps()
    if not steps:
        return
    ids = dict(InboundRecord.objects.filter(batch=batch).values_list("index", "id"))
    for row in rows:
        row.pk = ids[row.index]
    items = []
    for row in rows:
        if row.operation == InboundRecord.Operation.EVENT:
            keys, attributes = message_identifiers_salvage(row.payload, rules), {}
        else:
            keys = record_identifiers_salvage(row.payload, rules)
            attributes = record_attributes_salvage(row.payload, rules)
        record = NormalisedRecord(row.external_id, None, attributes, keys)
        items.append(
            PipelineItem(row.pk, row.operation, row.external_id, row.received_at, record, row.payload)
        )
    pipeline_batch = PipelineBatch(source=batch.source, items=items)
    for step in steps:
        step(pipeline_batch)
    finished = defaultdict(list)
    for item in items:
        if item.finished:
            finished[item.outcome].append(item.inbound_id)
    now = timezone.now()
    for outcome, ids in finished.items():
        InboundRecord.objects.filter(id__in=ids).update(
            status=InboundRecord.Status.PROCESSED,
            outcome=outcome,
            error_stage="",
            error_field="",
            error="",
            processed_at=now,
        )


def _schedule(batch: Batch) -> None:
    from .tasks import batch_process_task

    batch_id = str(batch.pk)
    transaction.on_commit(lambda: batch_process_task.delay(batch_id))


# --- Processing ----------------------------------------------------------------------------------------


@dataclass
class ProcessResult:
    processed: int = 0
    quarantined: int = 0


def batch_process(*, batch_id) -> ProcessResult:
    pending = InboundRecord.objects.filter(batch_id=batch_id, status=InboundRecord.Status.PENDING)
    return inbound_process(inbound_ids=list(pending.order_by("index").values_list("id", flat=True)))


def _chunks(inbound_ids: list[int], size: int) -> list[list[int]]:
    """Split into chunks of about ``size``, keeping every version of one record in the same chunk, where
    only the newest counts: an older version must never act (link, merge) before its successor is seen."""
    keys = {
        pk: (source_id, external_id)
        for pk, source_id, external_id in InboundRecord.objects.filter(id__in=inbound_ids).values_list(
            "id", "source_id", "external_id"
        )
    }
    chunks: list[list[int]] = []
    chunk_of: dict[tuple, int] = {}
    for pk in inbound_ids:
        key = keys.get(pk)
        if key is None:
            continue
        if key[1] and key in chunk_of:
            chunks[chunk_of[key]].append(pk)
            continue
        if not chunks or len(chunks[-1]) >= size:
            chunks.append([])
        chunks[-1].append(pk)
        chunk_of[key] = len(chunks) - 1
    return chunks


# What processing reads of a stored record (plain rows: building model instances cost more than the reads).
# The raw payload comes as ``raw``, only where a step uses it (see ``_rows``).
_ROW_FIELDS = ("id", "source_id", "operation", "external_id", "normalised", "received_at")


def _rows(inbound_ids: list[int]):
    """The stored records, each with its raw payload where processing needs it: a tracking message (it is
    normalised from it), a record kept without its normalised form, a record carrying consents (the consent
    step reads them). Otherwise ``raw`` is None (``_items_of`` reads it if the rules changed since
    intake): the normalised form is what resolution works from, and the payload is as large again."""
    needed = (
        Q(operation=InboundRecord.Operation.EVENT)
        | Q(normalised__isnull=True)
        | Q(payload__has_key="consents")
    )
    return list(
        InboundRecord.objects.filter(id__in=inbound_ids)
        .order_by("id")
        .annotate(raw=Case(When(needed, then=F("payload")), default=None, output_field=JSONField()))
        .values_list(*_ROW_FIELDS, "raw", named=True)
    )


def inbound_process(*, inbound_ids: list[int]) -> ProcessResult:
    """Run the pipeline over stored records, in chunks, each chunk one transaction.

    Parallel workers do not wait for each other: records whose identifier locks another worker's transaction
    holds are deferred (``PipelineBatch.defer``) to the front of their source's queue, for its next
    transaction; those still deferred after the last chunk are processed waiting for their locks. No
    transaction takes more than a chunk's worth of records (``_take``), which bounds the locks it holds."""
    size = settings.CDP_RESOLVE_CHUNK_SIZE
    result = ProcessResult()
    normalisers = identifier_normalisers()
    sources = {}
    queues: dict[int, list[PipelineItem]] = defaultdict(list)
    for chunk in _chunks(inbound_ids, size):
        by_source: dict[int, list] = defaultdict(list)
        for row in _rows(chunk):
            by_source[row.source_id].append(row)
        for source_id, source_rows in by_source.items():
            if source_id not in sources:
                sources[source_id] = Source.objects.get(pk=source_id)
            queue = queues[source_id] + _items_of(sources[source_id], source_rows, normalisers, result)
            items, queue = _take(queue, size)
            queues[source_id] = _process_items(sources[source_id], items, result) + queue
    for source_id, queue in queues.items():
        while queue:
            items, queue = _take(queue, size)
            _process_items(sources[source_id], items, result, wait=True)
    return result


def _take(queue: list[PipelineItem], size: int) -> tuple[list[PipelineItem], list[PipelineItem]]:
    """The first ``size`` items of the queue and the rest, every version of one record on the same side."""
    taken: set[str] = set()
    for position, item in enumerate(queue):
        if item.record_key not in taken:
            if position >= size:
                break
            taken.add(item.record_key)
    return (
        [item for item in queue if item.record_key in taken],
        [item for item in queue if item.record_key not in taken],
    )


def _items_of(source: Source, rows: list, normalisers: dict, result: ProcessResult) -> list[PipelineItem]:
    """The pipeline items of stored records of one source (rows with the ``_ROW_FIELDS``); the records that
    fail validation now (the rules changed since intake) are quarantined."""
    rules = source_rules(source, normalisers)
    stored = {
        row.id: record_load(row.normalised, rules)
        for row in rows
        if row.operation == InboundRecord.Operation.UPSERT
    }
    # Normalised under other rules (they changed since intake): normalised again, from the payload.
    again = [row.id for row in rows if row.id in stored and stored[row.id] is None and row.raw is None]
    payloads = dict(InboundRecord.objects.filter(id__in=again).values_list("id", "payload")) if again else {}
    items, failures = [], []
    for row in rows:
        if row.operation == InboundRecord.Operation.DELETE:
            items.append(PipelineItem(row.id, row.operation, row.external_id, version_at=row.received_at))
            continue
        if row.operation == InboundRecord.Operation.EVENT:
            message = normalise_message(row.raw, rules, received_at=row.received_at)
            if isinstance(message, RecordError):
                failures.append((row.id, InboundRecord.Stage.VALIDATION, message.field, message.reason))
                continue
            item = PipelineItem(
                row.id,
                row.operation,
                message.record.external_id,
                version_at=message.event.timestamp,
                record=message.record,
                raw=row.raw,
                event=message.event,
            )
            items.append(item)
            continue
        # As intake normalised it, unless the rules changed since; then again, which may now reject it.
        raw = row.raw if row.raw is not None else payloads.get(row.id)
        record = stored[row.id] or normalise_record(raw, rules)
        if isinstance(record, RecordError):
            failures.append((row.id, InboundRecord.Stage.VALIDATION, record.field, record.reason))
            continue
        items.append(
            PipelineItem(
                row.id,
                row.operation,
                record.external_id,
                version_at=record.updated_at or row.received_at,
                record=record,
                raw=raw,
            )
        )
    if failures:
        _quarantine(failures)
        result.quarantined += len(failures)
    return items


def _process_items(
    source: Source, items: list[PipelineItem], result: ProcessResult, *, wait: bool = False
) -> list[PipelineItem]:
    """Run the pipeline over items of one source in one transaction; return those it deferred."""
    if not items:
        return []
    try:
        deferred = _run_with_retries(source, items, wait=wait)
    except Exception:
        # Find the culprits: run each item on its own, quarantine those that still fail.
        logger.exception("processing a chunk of %s records failed; retrying one by one", source.slug)
        failures = []
        for item in items:
            try:
                _run_with_retries(source, [item], wait=True)
            except Exception as exc:
                logger.exception("record %s:%s quarantined", source.slug, item.external_id)
                failures.append(
                    (item.inbound_id, InboundRecord.Stage.PROCESSING, "", f"{type(exc).__name__}: {exc}")
                )
            else:
                result.processed += 1
        if failures:
            _quarantine(failures)
            result.quarantined += len(failures)
        return []
    result.processed += len(items) - len(deferred)
    return deferred


def _is_retryable(exc: Exception) -> bool:
    if isinstance(exc, IntegrityError):
        return True  # a racing worker inserted the same identity: the retry sees it and links to it
    if isinstance(exc, OperationalError):
        code = getattr(getattr(exc, "__cause__", None), "sqlstate", None)
        return code in {"40001", "40P01", "55P03"} or "database is locked" in str(exc)
    return type(exc).__name__ == "ResolutionRetry"


def _run_with_retries(source: Source, items: list[PipelineItem], *, wait: bool = False) -> list[PipelineItem]:
    """Run the pipeline in a transaction (again after a retryable error); return the items it deferred."""
    for attempt in range(1, RETRYABLE_ATTEMPTS + 1):
        batch = PipelineBatch(source=source, items=[_fresh(item) for item in items], wait=wait)
        try:
            with transaction.atomic():
                pipeline_run(batch)
                _mark_processed(batch.items)
            original = {item.inbound_id: item for item in items}
            return [original[item.inbound_id] for item in batch.deferred]
        except Exception as exc:
            if attempt == RETRYABLE_ATTEMPTS or not _is_retryable(exc):
                raise
            logger.info("retrying %s records of %s after %s", len(items), source.slug, type(exc).__name__)
            time.sleep(random.uniform(0.01, 0.05) * attempt)


def _fresh(item: PipelineItem) -> PipelineItem:
    return PipelineItem(
        item.inbound_id, item.operation, item.external_id, item.version_at, item.record, item.raw, item.event
    )


def _mark_processed(items: list[PipelineItem]) -> None:
    now = timezone.now()
    by_outcome: dict[str, list[int]] = defaultdict(list)
    for item in items:
        by_outcome[item.outcome or "processed"].append(item.inbound_id)
    for outcome, ids in by_outcome.items():
        # A record delivered twice at once keeps the outcome of the run that processed it first. Its
        # normalised form has served (nothing replays a processed record): the row's new version is smaller.
        InboundRecord.objects.filter(id__in=ids).exclude(status=InboundRecord.Status.PROCESSED).update(
            status=InboundRecord.Status.PROCESSED,
            outcome=outcome,
            normalised=None,
            processed_at=now,
            error_stage="",
            error_field="",
            error="",
            attempts=F("attempts") + 1,
        )


def _quarantine(failures: list[tuple[int, str, str, str]]) -> None:
    now = timezone.now()
    for inbound_id, stage, field_name, reason in failures:
        InboundRecord.objects.filter(id=inbound_id).update(
            status=InboundRecord.Status.QUARANTINED,
            error_stage=stage,
            error_field=field_name[:200],
            error=reason,
            processed_at=now,
            attempts=F("attempts") + 1,
        )


def quarantine_replay(
    *, source: Source | None = None, batch_id=None, include_pending: bool = False
) -> ProcessResult:
    """Process quarantined records again (and, optionally, records still pending, e.g. after a lost task)."""
    statuses = [InboundRecord.Status.QUARANTINED]
    if include_pending:
        statuses.append(InboundRecord.Status.PENDING)
    queryset = InboundRecord.objects.filter(status__in=statuses)
    if source is not None:
        queryset = queryset.filter(source=source)
    if batch_id is not None:
        queryset = queryset.filter(batch_id=batch_id)
    return inbound_process(inbound_ids=list(queryset.order_by("id").values_list("id", flat=True)))
