"""The consent app's steps of the processing pipeline (see ``CDP_PIPELINE`` in settings)."""

from __future__ import annotations

from collections import Counter

from django.db.models import F
from django.utils import timezone

from ingestion.models import InboundRecord
from ingestion.pipeline import PipelineBatch, PipelineItem

from .models import SuppressionEntry
from .suppression import suppressed_hashes, suppression_hash

SUPPRESSED = "suppressed"


def _keys(batch: PipelineBatch, item: PipelineItem) -> set[tuple[str, str]]:
    if item.record is None:  # a deletion: only the source's own id is known
        return {(batch.source.slug, item.external_id)} if item.external_id else set()
    return {tuple(key) for key in item.record.identifiers}


def drop_suppressed(batch: PipelineBatch) -> None:
    """Erased people stay erased: a record or event carrying any suppressed identifier is finished with the
    outcome "suppressed" before anything is stored, its raw payload as received is blanked, and each
    suppression entry it matched counts a hit. One query when nothing matches."""
    items = batch.open_items()
    keys_of = {item.inbound_id: _keys(batch, item) for item in items}
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
    InboundRecord.objects.filter(id__in=dropped).update(payload=None, external_id="")
    now = timezone.now()
    for entry_id, count in sorted(counts.items()):
        SuppressionEntry.objects.filter(pk=entry_id).update(hits=F("hits") + count, last_hit_at=now)
