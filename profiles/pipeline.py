"""The profiles app's steps of the processing pipeline (see ``CDP_PIPELINE``)."""

from ingestion.pipeline import PipelineBatch

from .services import records_resolve


def resolve(batch: PipelineBatch) -> None:
    """Apply the batch's records to profiles: link, merge, recompute golden records."""
    batch.touched_profile_ids |= records_resolve(source=batch.source, items=batch.open_items())
