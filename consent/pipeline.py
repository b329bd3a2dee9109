"""The consent app's steps of the processing pipeline (see ``CDP_PIPELINE`` in settings)."""

from __future__ import annotations

from collections import Counter

from django.db.models import F
from django.utils import timezone

from ingestion.models import InboundRecord
from ingestion.pipeline import PipelineBatch, PipelineItem
from profiles.pipeline import item_lock_keys
from profiles.services.resolution import identifier_keys_lock

from .models import SuppressionEntry
from .suppression import NATIONAL_ID, suppressed_hashes, suppression_hash, suppression_keys

SUPPRESSED = "suppressed"


def _keys(batch: PipelineBatch, item: PipelineItem) -> set[tuple[str, str]]:
    if item.record is None:  # a deletion: only the source's own id is known
        return {(batch.source.slug, item.external_id)} if item.external_id else set()
    return suppression_keys(item.record.identifiers, item.record.attributes)


def drop_suppressed(batch: PipelineBatch) -> None:
    """Erased people stay erased: a record or event carrying any suppressed identifier, or the national
    identifier of an erased person (its ``national_id`` attribute, in any spelling), is finished with the
    outcome "suppressed" before anything is stored, its raw payload as received (and its normalised form)
    is blanked, and each suppression entry it matched counts a hit.

    The check runs under the resolver's advisory locks on the batch's identifier keys, held until the
    pipeline's transaction ends, and an erasure takes the locks of the person's keys before it reads what to
    delete: either the erasure waits for this batch and then finds and erases what it stored, or this check
    waits for the erasure and then sees its suppression entries. National identifiers are locked the same
    way, under their suppression keys, after the identifier keys (in the order an erasure takes them). Two
    queries when nothing matches (the locks, the list); a batch carrying national identifiers locks them in
    one more (PostgreSQL)."""
    items = batch.open_items()
    keys_of = {item.inbound_id: _keys(batch, item) for item in items}
    # Every key the resolver will lock, all at once and sorted (none when the claim step took them).
    keys = set().union(*(item_lock_keys(batch, item) for item in items))
    identifier_keys_lock(keys - batch.locked_keys)
    batch.locked_keys |= keys
    nationals = {key for item_keys in keys_of.values() for key in item_keys if key[0] == NATIONAL_ID}
    identifier_keys_lock(nationals - batch.locked_keys)  # no query for a batch without any
    batch.locked_keys |= nationals
    hits = suppressed_hashes(set().union(*keys_of.values())) if keys_of else {}
    if not hits:
        return
    counts: Counter[int] = Counter()
    dropped = []
    for item in items:
        matched = {hits[h] for h in (suppression_hash(*key) for key in keys_of[item.inbound_id]) if h in hits}
        if matched:
            item.finish(SUPPRESSED)
            dropped.append(item.inbound_id)
            counts.update(matched)
    InboundRecord.objects.filter(id__in=dropped).update(payload=None, normalised=None, external_id="")
    now = timezone.now()
    for entry_id, count in sorted(counts.items()):
        SuppressionEntry.objects.filter(pk=entry_id).update(hits=F("hits") + count, last_hit_at=now)
