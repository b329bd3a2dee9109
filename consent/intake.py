"""Consent statements that arrive with other data: inside records of the records API, and on tracked events
(Segment's ``context.consent.categoryPreferences`` and the Global Privacy Control signal).

- Records: ``record_consents_check`` (wired in ``CDP_RECORD_CHECKS``) validates a record's ``consents`` at
  intake with the rules of ``POST /api/v1/consents``, so a bad statement rejects its record with the index,
  the field and the reason, like any other record error. The statements are written to the ledger by the
  pipeline step ``statements_record`` when the record is processed, given for the record's identifiers
  (by default the record's own id in its source).
- Tracked events: a consent manager's category preferences travel on every event. A preference is a
  statement once, when it changes, not once per page view: an entry is appended only when the category's
  value differs from the last tracked preference for that identifier, purpose and channel (a stale cookie
  repeating an old choice does not undo a withdrawal made elsewhere). The Global Privacy Control signal (the
  ``Sec-GPC: 1`` header, kept by intake as ``context.gpc``; a server relaying a browser's signal sets
  ``context.gpc: true`` itself) is an opt-out of sale/sharing on every channel, appended unless the
  identifier's latest sale/sharing statement already says so; a message without the signal never lifts it.
  Both are given for the event's identifiers (the source's ``userId`` and the ``anonymousId``), so they
  follow the person through merges, and both are keyed by the message id: a message delivered twice appends
  nothing the second time.
"""

from __future__ import annotations

import bisect
import ipaddress
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from ingestion.models import Source
from ingestion.normalise import NormalisedRecord, RecordError
from ingestion.pipeline import PipelineBatch, PipelineItem
from ingestion.tracking import ANONYMOUS_ID_TYPE

from . import rules
from .models import Channel, ConsentEntry, ConsentRejection, Purpose
from .pipeline import SUPPRESSED
from .services import (
    ITEM_FIELDS,
    ItemError,
    consent_entries_append,
    consent_record,
    consent_statement_validate,
    consent_vocabulary,
    derived_dedupe_key,
)

logger = logging.getLogger(__name__)

MAX_CONSENTS_PER_RECORD = 50
RECORD_CONSENT_FIELDS = ITEM_FIELDS - {"profile"}
DEFAULT_RECORD_CAPTURE_METHOD = ConsentEntry.CaptureMethod.IMPORT
DEFAULT_TRACKED_CHANNEL = "web"
MAX_USER_AGENT = 1000
OPTED_OUT, OPEN = "opted_out", "open"  # an identifier's sale/sharing stance, as far as GPC is concerned


# --- Records -----------------------------------------------------------------------------------------------


def _record_statement(raw: object, record: NormalisedRecord, source: Source, vocab) -> dict:
    """One statement of a record, with the record's defaults filled in, validated; or ``ItemError``.

    Defaults: the identifier is the record's own id in its source, the time is the record's ``updated_at``
    (a record sent again restates nothing: the same statement at the same time is one entry), the capture
    method is an import. An explicit identifier must be one of the record's own identifiers: a record speaks
    for the person it describes, not for anyone else."""
    if not isinstance(raw, dict):
        raise ItemError("", "a consent must be a JSON object")
    if "profile" in raw:
        raise ItemError("profile", "a record's consents are given for its identifiers; leave out profile")
    unknown = sorted(set(raw) - RECORD_CONSENT_FIELDS)
    if unknown:
        raise ItemError(
            unknown[0], f"unknown field; a consent has only {', '.join(sorted(RECORD_CONSENT_FIELDS))}"
        )
    statement = dict(raw)
    if statement.get("identifier") is None:
        statement["identifier"] = {"type": source.slug, "value": record.external_id}
    if statement.get("effective_at") is None:
        if record.updated_at is None:
            raise ItemError(
                "effective_at",
                "required when the record has no updated_at: when the person made the statement",
            )
        statement["effective_at"] = record.updated_at.isoformat()
    if not statement.get("capture_method"):
        statement["capture_method"] = DEFAULT_RECORD_CAPTURE_METHOD
    evidence = statement.get("evidence")
    if evidence is not None and not isinstance(evidence, dict):
        raise ItemError("evidence", "must be a JSON object")
    statement["evidence"] = {**(evidence or {}), "source_record": record.external_id}
    values = consent_statement_validate(raw=statement, vocabulary=vocab)
    key = (values["identifier_type"], values["identifier_value"])
    if key not in {tuple(k) for k in record.identifiers}:
        raise ItemError(
            "identifier",
            "not one of this record's identifiers; add it to the record's identifiers or leave it out",
        )
    return statement


def _record_statements(raw_consents: object) -> list:
    if not isinstance(raw_consents, list):
        raise ItemError("", "must be a list of consents")
    if len(raw_consents) > MAX_CONSENTS_PER_RECORD:
        raise ItemError("", f"at most {MAX_CONSENTS_PER_RECORD} consents per record")
    return raw_consents


def record_consents_check(
    *, source: Source, records: list[tuple[int, dict, NormalisedRecord]]
) -> dict[int, RecordError]:
    """Hook of ``CDP_RECORD_CHECKS``: the records (by position in the request) whose ``consents`` are not
    valid, with the field (``consents[1].purpose``) and the reason. No query when no record has consents."""
    with_consents = [
        (index, raw, record) for index, raw, record in records if raw.get("consents") is not None
    ]
    if not with_consents:
        return {}
    vocab = consent_vocabulary(source=source)
    errors: dict[int, RecordError] = {}
    for index, raw, record in with_consents:
        try:
            statements = _record_statements(raw["consents"])
        except ItemError as exc:
            errors[index] = RecordError("consents", exc.reason)
            continue
        for position, statement in enumerate(statements):
            try:
                _record_statement(statement, record, source, vocab)
            except ItemError as exc:
                name = f"consents[{position}]" + (f".{exc.field}" if exc.field else "")
                errors[index] = RecordError(name, exc.reason)
                break
    return errors


def _records_write(source: Source, items: list[PipelineItem]) -> None:
    """Write the statements of processed records. Validated again: a record replayed from the quarantine, or
    processed after a purpose was removed, may no longer be valid; such statements are kept as rejections."""
    vocab = consent_vocabulary(source=source)
    statements, rejections = [], []
    recorded_by = f"source:{source.slug}"
    for item in items:
        try:
            raw_statements = _record_statements(item.raw["consents"])
        except ItemError as exc:
            rejections.append(
                (0, item.raw["consents"], "consents", f"record {item.external_id}: {exc.reason}")
            )
            continue
        for position, raw in enumerate(raw_statements):
            try:
                statements.append(_record_statement(raw, item.record, source, vocab))
            except ItemError as exc:
                rejections.append((position, raw, exc.field, f"record {item.external_id}: {exc.reason}"))
    if statements:
        consent_record(consents=statements, source=source, recorded_by=recorded_by)
    if rejections:
        ConsentRejection.objects.bulk_create(
            ConsentRejection(
                source=source, recorded_by=recorded_by, index=index, payload=raw, field=name, reason=reason
            )
            for index, raw, name, reason in rejections
        )


# --- Tracked events ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CategoryTarget:
    purpose: str
    channel: str | None  # None: every channel


def segment_categories() -> dict[str, CategoryTarget]:
    """``CDP_SEGMENT_CONSENT_CATEGORIES`` read: consent manager category (matched without regard to case) ->
    purpose and channel. A value is a purpose slug (on the web channel) or ``{"purpose", "channel"}`` with
    channel None for every channel."""
    mapping = getattr(settings, "CDP_SEGMENT_CONSENT_CATEGORIES", {}) or {}
    if not isinstance(mapping, dict):
        raise ImproperlyConfigured("CDP_SEGMENT_CONSENT_CATEGORIES must be a dict of category -> purpose")
    targets = {}
    for category, target in mapping.items():
        if isinstance(target, str):
            targets[str(category).casefold()] = CategoryTarget(target, DEFAULT_TRACKED_CHANNEL)
        elif isinstance(target, dict) and isinstance(target.get("purpose"), str):
            targets[str(category).casefold()] = CategoryTarget(
                target["purpose"], target.get("channel", DEFAULT_TRACKED_CHANNEL)
            )
        else:
            raise ImproperlyConfigured(
                f"CDP_SEGMENT_CONSENT_CATEGORIES[{category!r}]: a purpose slug or "
                '{"purpose": ..., "channel": ... or None}'
            )
    return targets


def category_preferences(context: dict) -> dict | None:
    """The consent manager's preferences on an event, or None when it carries none (no consent object, or an
    empty one: Segment's "no impact")."""
    consent = context.get("consent")
    preferences = consent.get("categoryPreferences") if isinstance(consent, dict) else None
    return preferences if isinstance(preferences, dict) and preferences else None


def preferences_by_target(
    preferences: dict, targets: dict[str, CategoryTarget], ignored: Counter
) -> dict[CategoryTarget, tuple[bool, dict]]:
    """Each purpose and channel the preferences speak to: allowed or not, and the categories behind it. Two
    categories of one purpose must both be true (the stricter one holds); unknown categories and values that
    are not true / false are ignored and counted."""
    found: dict[CategoryTarget, tuple[bool, dict]] = {}
    for category, value in preferences.items():
        target = targets.get(str(category).casefold())
        if target is None or not isinstance(value, bool):
            ignored[str(category) if target is None else f"{category} (not true/false)"] += 1
            continue
        allowed, categories = found.get(target, (True, {}))
        found[target] = (allowed and value, {**categories, category: value})
    return found


def _event_keys(source: Source, item: PipelineItem) -> list[tuple[str, str]]:
    """The identifiers a tracked statement is given for: the source's user id and the message's anonymous id
    (an alias's previousId is not the sender's identity)."""
    event = item.event
    keys = []
    if event.user_id:
        keys += [tuple(k) for k in item.record.identifiers if k[0] == source.slug][:1]
    if event.anonymous_id:
        keys += [tuple(k) for k in item.record.identifiers if k[0] == ANONYMOUS_ID_TYPE][:1]
    return keys


class _History:
    """Earlier statements per key, ordered by effective time, so "what did it say before this event" is a
    lookup, and statements appended in this batch are seen by later events of the same batch."""

    def __init__(self) -> None:
        self.by_key: dict[tuple, list[tuple[datetime, str]]] = defaultdict(list)

    def add(self, key: tuple, at: datetime, decision: str) -> None:
        bisect.insort(self.by_key[key], (at, decision))

    def before(self, key: tuple, at: datetime) -> str | None:
        """The decision of the latest statement at or before ``at``."""
        timeline = self.by_key.get(key, [])
        position = bisect.bisect_right(timeline, (at, "\uffff"))
        return timeline[position - 1][1] if position else None


def _evidence_ip(context: dict) -> str | None:
    value = context.get("ip")
    if not isinstance(value, str):
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def _user_agent(context: dict) -> str:
    value = context.get("userAgent")
    return value[:MAX_USER_AGENT] if isinstance(value, str) else ""


def _tracked_write(source: Source, items: list[PipelineItem]) -> list[ConsentEntry]:
    targets = segment_categories()
    ignored: Counter = Counter()
    wanted = []  # (item, keys, preferences by target, gpc)
    for item in items:
        context = item.event.context if isinstance(item.event.context, dict) else {}
        preferences = category_preferences(context)
        by_target = preferences_by_target(preferences, targets, ignored) if preferences else {}
        gpc = context.get("gpc") is True
        keys = _event_keys(source, item)
        if keys and (by_target or gpc):
            wanted.append((item, keys, by_target, gpc))
    if ignored:
        logger.warning(
            "%s: consent categories ignored on tracked events (not in CDP_SEGMENT_CONSENT_CATEGORIES, or not "
            "true/false): %s",
            source.slug,
            ", ".join(f"{name} x{count}" for name, count in sorted(ignored.items())),
        )
    if not wanted:
        return []

    purposes = {p.slug: p for p in Purpose.objects.all()}
    channels = set(Channel.objects.values_list("slug", flat=True))
    usable = {t for t in {t for _, _, by, _ in wanted for t in by} if t.purpose in purposes}
    usable = {t for t in usable if t.channel is None or t.channel in channels}
    for target in {t for _, _, by, _ in wanted for t in by} - usable:
        logger.warning("CDP_SEGMENT_CONSENT_CATEGORIES names an unknown purpose or channel: %s", target)
    sale_purposes = sorted(slug for slug, p in purposes.items() if p.sale_sharing)
    if any(gpc for *_, gpc in wanted) and not sale_purposes:
        logger.warning("Global Privacy Control signals ignored: no purpose is marked sale/sharing")

    # Every earlier statement of these identifiers that matters here, in one query.
    keys = {key for _, item_keys, _, _ in wanted for key in item_keys}
    tracked, sale = _History(), _History()
    rows = ConsentEntry.objects.filter(identifier_value__in={value for _, value in keys}).values_list(
        "identifier_type",
        "identifier_value",
        "purpose_id",
        "channel_id",
        "decision",
        "effective_at",
        "capture_method",
    )
    for kind, value, purpose, channel, decision, effective_at, method in rows:
        key = (kind, value)
        if key not in keys:
            continue
        if method == ConsentEntry.CaptureMethod.TRACKED:
            tracked.add((key, purpose, channel), effective_at, decision)
        if decision == rules.OPT_OUT_SALE or purpose in sale_purposes:
            # Does it already say what the signal says: no sale/sharing, on every channel?
            covers = decision == rules.OPT_OUT_SALE or (decision in rules.RESTRICTIONS and channel is None)
            sale.add(key, effective_at, OPTED_OUT if covers else OPEN)

    now = timezone.now()
    recorded_by = f"source:{source.slug}"
    entries = []
    for item, item_keys, by_target, gpc in sorted(
        wanted, key=lambda w: (w[0].event.timestamp, w[0].inbound_id)
    ):
        event = item.event
        context = event.context
        at = min(event.timestamp, event.received_at)  # a statement is not made after we received it
        common = {
            "source": source,
            "recorded_by": recorded_by,
            "effective_at": at,
            "recorded_at": now,
            "ip": _evidence_ip(context),
            "user_agent": _user_agent(context),
        }
        for key in item_keys:
            for target, (allowed, categories) in by_target.items():
                if target not in usable:
                    continue
                before = tracked.before((key, target.purpose, target.channel), at)
                if before is not None and (before == rules.GRANTED) == allowed:
                    continue  # the same preference again: not a new statement
                decision = (
                    rules.GRANTED if allowed else rules.WITHDRAWN if before == rules.GRANTED else rules.DENIED
                )
                tracked.add((key, target.purpose, target.channel), at, decision)
                entries.append(
                    ConsentEntry(
                        identifier_type=key[0],
                        identifier_value=key[1],
                        purpose_id=target.purpose,
                        channel_id=target.channel,
                        decision=decision,
                        legal_basis=ConsentEntry.LegalBasis.CONSENT if allowed else "",
                        capture_method=ConsentEntry.CaptureMethod.TRACKED,
                        evidence={
                            "message_id": event.message_id,
                            "event": event.name or event.type,
                            "category_preferences": categories,
                        },
                        dedupe_key=derived_dedupe_key(
                            "tracked", source.slug, event.message_id, key, target.purpose, target.channel
                        ),
                        **common,
                    )
                )
            if gpc and sale_purposes:
                if sale.before(key, at) == OPTED_OUT:
                    continue  # already opted out: the signal changes nothing
                sale.add(key, at, OPTED_OUT)
                entries.append(
                    ConsentEntry(
                        identifier_type=key[0],
                        identifier_value=key[1],
                        purpose_id=sale_purposes[0],
                        channel_id=None,
                        decision=rules.OPT_OUT_SALE,
                        capture_method=ConsentEntry.CaptureMethod.GPC,
                        evidence={"signal": "Sec-GPC: 1", "message_id": event.message_id},
                        dedupe_key=derived_dedupe_key("gpc", source.slug, event.message_id, key),
                        **common,
                    )
                )
    return consent_entries_append(entries=entries)


# --- The pipeline step -------------------------------------------------------------------------------------


def statements_record(batch: PipelineBatch) -> None:
    """Pipeline step, after resolution (so each statement notes the profile its identifier belongs to): the
    consents of the batch's records and the preferences and signals of its tracked events go to the ledger.
    Items dropped as suppressed are skipped. No query for a batch that carries none."""
    items = [item for item in batch.items if item.outcome != SUPPRESSED and item.record is not None]
    records = [
        item
        for item in items
        if item.event is None and isinstance(item.raw, dict) and item.raw.get("consents")
    ]
    if records:
        _records_write(batch.source, records)
    events = [item for item in items if item.event is not None]
    if events:
        _tracked_write(batch.source, events)
