"""Batch linkage of a set of records: blocking, comparison, estimation, decisions, clustering."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .blocking import DEFAULT_BLOCKING_RULES, BlockingIndex, BlockingRule, BlockingStats, Pairs
from .cluster import RefusedJoin, cluster_links
from .comparisons import DEFAULT_COMPARISONS, Comparison
from .decision import DEFAULT_THRESHOLDS, LINK, NEW, REVIEW, Decision, Thresholds, decide
from .model import MatchModel, comparison_matrix, model_estimate
from .records import MatchRecord


@dataclass
class LinkageResult:
    model: MatchModel
    pairs: Pairs
    probabilities: np.ndarray
    decisions: dict[tuple[int, int], Decision]  # links and suggestions only; every other pair is "new"
    clusters: list[list[int]]
    refused_joins: list[RefusedJoin]
    blocking: BlockingStats

    def links(self) -> list[tuple[int, int]]:
        return [pair for pair, decision in self.decisions.items() if decision.outcome == LINK]

    def suggestions(self) -> list[tuple[int, int]]:
        return [pair for pair, decision in self.decisions.items() if decision.outcome == REVIEW]


def link_records(
    records: Sequence[MatchRecord],
    *,
    comparisons: tuple[Comparison, ...] = DEFAULT_COMPARISONS,
    rules: tuple[BlockingRule, ...] = DEFAULT_BLOCKING_RULES,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    model: MatchModel | None = None,
    link_only: bool = False,
    max_records_per_source: int | None = None,
    seed: int = 0,
    cluster: bool = True,
    joined: Sequence[int] | None = None,
) -> LinkageResult:
    """Find the records that describe the same person. With no ``model``, one is estimated from these
    records first (unsupervised); with ``link_only``, records of one source are never paired; without
    ``cluster``, only the pair decisions are made (a caller that joins them under rules of its own, as
    ``resolve --all`` does, leaves ``clusters`` and ``refused_joins`` empty). ``joined``: per record, the
    group of records already known to be one person (through identifiers); pairs inside a group are
    neither compared nor decided (with a ``model`` only: an estimate learns from them)."""
    index = BlockingIndex(rules)
    index.extend(records)
    pairs, stats = index.candidate_pairs(link_only=link_only)
    if joined is not None and model is not None:
        group = np.asarray(joined)
        pairs = pairs[group[pairs.left] != group[pairs.right]]
    matrix = comparison_matrix(records, pairs, comparisons)
    if model is None:
        model = model_estimate(records, pairs, comparisons, matrix=matrix, seed=seed)

    probabilities = np.zeros(len(pairs))
    decisions: dict[tuple[int, int], Decision] = {}
    if pairs:
        totals = total_weights(model, records, pairs, matrix)
        probabilities = 1.0 / (1.0 + np.exp2(-np.clip(totals, -60, 60)))
        for row in np.nonzero(probabilities >= thresholds.review)[0]:
            i, j = pairs[row]
            score = model.score(records[i], records[j], tuple(int(v) for v in matrix[row]))
            decision = decide(score, thresholds, pair=(records[i], records[j]))
            if decision.outcome != NEW:
                decisions[(i, j)] = decision
    clusters, refused = [], []
    if cluster:
        links = [(i, j, d.probability) for (i, j), d in decisions.items() if d.outcome == LINK]
        clusters, refused = cluster_links(records, links, max_records_per_source=max_records_per_source)
    return LinkageResult(model, pairs, probabilities, decisions, clusters, refused, stats)


def total_weights(
    model: MatchModel, records: Sequence[MatchRecord], pairs: Sequence[tuple[int, int]], matrix: np.ndarray
) -> np.ndarray:
    """The total match weight of every pair, as ``MatchModel.score`` computes it, vectorised."""
    widest = max(len(p.levels) for p in model.params)
    weights = np.zeros((len(model.params), widest + 1))  # the last column stands for MISSING (-1)
    for k, params in enumerate(model.params):
        weights[k, : len(params.levels)] = [params.weight(level) for level in range(len(params.levels))]
    # Column by column: indexing all columns at once would hold a float per pair and comparison at the peak.
    totals = np.full(len(matrix), model.prior_weight)
    for k in range(len(model.params)):
        totals += weights[k][matrix[:, k]]
    left = (
        pairs.left if isinstance(pairs, Pairs) else np.fromiter((i for i, _ in pairs), np.int64, len(pairs))
    )
    for k, (comparison, params) in enumerate(zip(model.comparisons, model.params, strict=True)):
        if not params.term_frequency:
            continue
        per_record = np.array([params.exact_weight(comparison.value(r)) - params.weight(0) for r in records])
        exact = matrix[:, k] == 0
        totals[exact] += per_record[left[exact]]
    return totals
