"""The profiles app's steps of the processing pipeline (see ``CDP_PIPELINE``)."""

from ingestion.pipeline import PipelineBatch

from .services import events_resolve, records_resolve


def resolve(batch: PipelineBatch) -> None:
    """Apply the batch's records to profiles: link, merge, recompute golden records; then store tracking
    events on the profiles their identities resolved to."""
    items = batch.open_items()
    records = [item for item in items if item.event is None]
    events = [item for item in items if item.event is not None]
    locked = batch.locked_keys  # taken by an earlier step (the suppression check): not asked for again
    batch.touched_profile_ids |= records_resolve(source=batch.source, items=records, locked_keys=locked)
    batch.touched_profile_ids |= events_resolve(source=batch.source, items=events, locked_keys=locked)
