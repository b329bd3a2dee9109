"""Probabilistic record matching (Fellegi-Sunter, EM-estimated): pure Python on dataclasses, no ORM.

Records in (``MatchRecord.from_attributes``), decisions out (``decide``, ``link_records``), each with its
explanation. See ``model.py`` for the estimation and ``decision.py`` for the thresholds and the guard.
"""

from .blocking import DEFAULT_BLOCKING_RULES, BlockingIndex, BlockingRule
from .cluster import RefusedJoin, cluster_links
from .comparisons import DEFAULT_COMPARISONS, MISSING, NATIONAL_ID, Comparison
from .decision import (
    AUTO_LINK_PROBABILITY,
    LINK,
    NEW,
    REVIEW,
    REVIEW_PROBABILITY,
    Decision,
    Thresholds,
    decide,
)
from .engine import LinkageResult, link_records
from .model import MatchModel, PairScore, model_estimate
from .records import MatchRecord

__all__ = [
    "AUTO_LINK_PROBABILITY",
    "DEFAULT_BLOCKING_RULES",
    "DEFAULT_COMPARISONS",
    "LINK",
    "MISSING",
    "NATIONAL_ID",
    "NEW",
    "REVIEW",
    "REVIEW_PROBABILITY",
    "BlockingIndex",
    "BlockingRule",
    "Comparison",
    "Decision",
    "LinkageResult",
    "MatchModel",
    "MatchRecord",
    "PairScore",
    "RefusedJoin",
    "Thresholds",
    "cluster_links",
    "decide",
    "link_records",
    "model_estimate",
]
