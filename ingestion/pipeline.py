"""The processing flow after a record is stored raw, as one ordered list of steps (``CDP_PIPELINE``).

Each step is a function taking a ``PipelineBatch``: the normalised items of one source, processed together in
one transaction. A step may finish an item early (``item.finish("suppressed")``); later steps skip finished
items. Like Django's middleware, the list in settings is the whole flow in one place, and the apps that provide
steps (profiles, consent) are imported by name, never by ingestion itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from .models import Source
from .normalise import NormalisedRecord


@dataclass
class PipelineItem:
    inbound_id: int
    operation: str  # InboundRecord.Operation
    external_id: str
    version_at: datetime  # the source's change time, or when the record was received
    record: NormalisedRecord | None = None  # None for a deletion
    raw: object = None
    event: object = (
        None  # a tracking message's event (ingestion.tracking.NormalisedEvent); record: its identity
    )
    outcome: str = ""
    finished: bool = False

    @property
    def record_key(self) -> str:
        """The record this item changes (a tracking message: its identity's): every version of one record is
        processed in the same transaction, where only the newest counts."""
        return self.record.external_id if self.record is not None else self.external_id

    def finish(self, outcome: str) -> None:
        self.outcome = outcome
        self.finished = True


@dataclass
class PipelineBatch:
    source: Source
    items: list[PipelineItem] = field(default_factory=list)
    # Profiles changed so far, for later steps (consent state, search index) to refresh.
    touched_profile_ids: set = field(default_factory=set)
    # Identifier keys whose advisory locks this batch's transaction holds: a later step does not ask again.
    locked_keys: set = field(default_factory=set)
    # False: a step may defer items whose locks another transaction holds instead of waiting for them.
    wait: bool = False
    # Items a step took out of this transaction (``defer``): processing runs them in a later one.
    deferred: list[PipelineItem] = field(default_factory=list)

    def open_items(self) -> list[PipelineItem]:
        return [item for item in self.items if not item.finished]

    def defer(self, items: list[PipelineItem]) -> None:
        """Take these items out of this transaction; they are processed in a later one, as if they had
        arrived after the rest."""
        out = {id(item) for item in items}
        self.items = [item for item in self.items if id(item) not in out]
        self.deferred += items


@cache
def pipeline_steps() -> tuple[Callable[[PipelineBatch], None], ...]:
    return tuple(import_string(path) for path in settings.CDP_PIPELINE)


def pipeline_run(batch: PipelineBatch) -> None:
    for step in pipeline_steps():
        step(batch)
