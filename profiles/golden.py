"""Survivorship: which candidate value of each attribute becomes the profile's golden value. Pure functions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from ingestion.normalise import search_text


@dataclass(frozen=True)
class Candidate:
    """One source record's contribution to a profile."""

    record_id: int
    source: str
    external_id: str
    trust_rank: int
    observed_at: datetime  # the source's change time, or when it was received
    attributes: Mapping[str, object]


def _is_empty(value: object) -> bool:
    return value is None or value == "" or value == [] or value == {}


def golden_record(candidates: Iterable[Candidate]) -> tuple[dict, dict]:
    """Each attribute from the most trusted source that has it; ties go to the most recent change.

    Returns the golden values and, per attribute, the lineage of the winning value.
    """
    best: dict[str, tuple[tuple, object, Candidate]] = {}
    for candidate in candidates:
        rank = (candidate.trust_rank, candidate.observed_at, candidate.record_id)
        for name, value in candidate.attributes.items():
            if _is_empty(value):
                continue
            current = best.get(name)
            if current is None or rank > current[0]:
                best[name] = (rank, value, candidate)
    golden = {name: value for name, (_, value, _) in sorted(best.items())}
    lineage = {
        name: {
            "source": c.source,
            "record": c.record_id,
            "external_id": c.external_id,
            "observed_at": c.observed_at.isoformat(),
        }
        for name, (_, _, c) in sorted(best.items())
    }
    return golden, lineage


def display_name(golden: Mapping[str, object]) -> str:
    name = " ".join(str(golden[p]) for p in ("first_name", "last_name") if golden.get(p))
    return (name or str(golden.get("full_name") or golden.get("email") or golden.get("phone") or ""))[:300]


def name_search_text(golden: Mapping[str, object]) -> str:
    return search_text(display_name(golden))[:300]
