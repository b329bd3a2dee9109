"""The profiles app's steps of the processing pipeline (see ``CDP_PIPELINE``)."""

from collections import defaultdict

from ingestion.pipeline import PipelineBatch, PipelineItem

from .services import events_resolve, records_resolve
from .services.matching import attributes_match_keys, match_key_locks, match_model_active
from .services.resolution import Key, identifier_keys_lock, identifier_keys_try_lock


def item_lock_keys(batch: PipelineBatch, item: PipelineItem) -> set[Key]:
    """Every identifier key the resolver locks for an item: its identifiers and its source's own id."""
    keys = {tuple(key) for key in item.record.identifiers} if item.record is not None else set()
    if item.external_id:
        keys.add((batch.source.slug, item.external_id))
    if item.record is not None:
        keys.add((batch.source.slug, item.record.external_id))
    return keys


def item_match_locks(batch: PipelineBatch, item: PipelineItem) -> set[Key]:
    """The locks probabilistic matching may take for an item's record: one per blocking key (a superset:
    matching locks only the keys the record brings its profile)."""
    if item.record is None:
        return set()
    return match_key_locks(attributes_match_keys(item.record.attributes, batch.source.slug))


def claim(batch: PipelineBatch) -> None:
    """Take the locks of every key the batch's items need, first and at once, so no later step waits.

    Two workers whose chunks share a person would otherwise run one after the other, the second waiting for
    the first one's whole transaction. Here a key another transaction holds is not waited for: the items that
    need it are deferred to a later transaction (with every other version of the same record or identity),
    and the rest go on at once. With ``batch.wait`` (the last try) every lock is waited for. Keys taken for
    items deferred stay held until this transaction ends; nothing waits for them in turn.

    The keys are the identifier keys resolution locks and, while a matching model is active, the blocking
    keys matching locks (two chunks nearly always share a postcode or a surname sound: it was the wait left
    after the identifier keys).
    """
    matching = match_model_active() is not None

    def locks(item: PipelineItem) -> set[Key]:
        keys = item_lock_keys(batch, item)
        return keys | item_match_locks(batch, item) if matching else keys

    groups: dict[str, list[PipelineItem]] = defaultdict(list)
    for item in batch.open_items():
        groups[item.record_key].append(item)
    keys_of = {name: set().union(*(locks(item) for item in items)) for name, items in groups.items()}
    wanted = set().union(*keys_of.values()) - batch.locked_keys
    if batch.wait:
        identifier_keys_lock(wanted)
        batch.locked_keys |= wanted
        return
    batch.locked_keys |= identifier_keys_try_lock(wanted)
    busy = [name for name, keys in keys_of.items() if not keys <= batch.locked_keys]
    batch.defer([item for name in busy for item in groups[name]])


def resolve(batch: PipelineBatch) -> None:
    """Apply the batch's records to profiles: link, merge, recompute golden records; then store tracking
    events on the profiles their identities resolved to."""
    items = batch.open_items()
    records = [item for item in items if item.event is None]
    events = [item for item in items if item.event is not None]
    locked = batch.locked_keys  # taken by an earlier step (claim, the suppression check): not asked for again
    batch.touched_profile_ids |= records_resolve(source=batch.source, items=records, locked_keys=locked)
    batch.touched_profile_ids |= events_resolve(source=batch.source, items=events, locked_keys=locked)
