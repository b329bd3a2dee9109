"""Fellegi-Sunter model: m and u probabilities per comparison level, estimated from the data.

- u (how often two *different* people agree at a level) comes from random pairs of records; for exact
  agreement it is computed from the value frequencies instead (sum over values of f^2), which a sample of
  random pairs estimates poorly for rare values such as birth dates.
- m (how often records of the *same* person agree at a level) comes from expectation-maximisation over the
  pairs of a few blocking rules, each leaving out the fields its rule selects on, u held fixed. No labels.
- The prior is the share of matches among *all* pairs of the records (EM over the candidate pairs, every
  other pair counted as a non-match), because u is a random pair's: the share among candidate pairs would
  count the blocking keys' agreement twice (once in choosing the pair, once in its weight) and let strangers
  who merely share a postcode, a city and a region score as matches.
- Term frequencies: exact agreement on a value shared by many people (a common surname, a big city) is worth
  log2(m / f(value)) instead of log2(m / u): common values weigh less, rare ones more.

The model is plain data (``to_dict`` / ``from_dict``) so it can be stored with the decisions it made.
"""

from __future__ import annotations

import math
import random
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .blocking import BlockingIndex, BlockingRule
from .blocking import _birth_date as _birth_date_key
from .blocking import _name_sounds as _name_sounds_key
from .comparisons import DEFAULT_COMPARISONS, MISSING, Comparison
from .records import MatchRecord

RANDOM_PAIRS = 30_000  # the exact level is computed from value frequencies, not sampled
MAX_EM_ITERATIONS = 200
EM_TOLERANCE = 1e-7
PROBABILITY_FLOOR = 1e-6
MAX_TERM_FREQUENCY_ADJUSTMENT = 10.0  # bits; a safety bound, not a tuned value
MIN_TERM_FREQUENCY_COUNT = 2  # values seen once are not stored; they get frequency 1 / n


@dataclass
class ComparisonParams:
    name: str
    levels: tuple[str, ...]
    m: list[float]
    u: list[float]
    term_frequency: bool = False
    value_count: int = 0  # records with a value, the denominator of the term frequencies
    frequencies: dict[str, int] = field(default_factory=dict)

    def weight(self, level: int) -> float:
        if level == MISSING:
            return 0.0
        return math.log2(self.m[level] / self.u[level])

    def exact_weight(self, value: str) -> float:
        """Weight of exact agreement on ``value``, term-frequency adjusted where enabled."""
        base = self.weight(0)
        if not self.term_frequency or not self.value_count:
            return base
        frequency = max(self.frequencies.get(value, 1), 1) / self.value_count
        adjustment = math.log2(self.u[0] / frequency)
        adjustment = max(-MAX_TERM_FREQUENCY_ADJUSTMENT, min(MAX_TERM_FREQUENCY_ADJUSTMENT, adjustment))
        return base + adjustment


@dataclass(frozen=True)
class FieldScore:
    field: str
    level: str
    weight: float


@dataclass(frozen=True)
class PairScore:
    """A scored pair: the evidence per field, the total match weight (bits) and the match probability."""

    fields: tuple[FieldScore, ...]
    levels: tuple[int, ...]
    prior_weight: float
    total_weight: float
    probability: float

    def field_level(self, name: str) -> str:
        for item in self.fields:
            if item.field == name:
                return item.level
        return "missing"


def weight_to_probability(weight: float) -> float:
    if weight > 60:
        return 1.0
    if weight < -60:
        return 0.0
    odds = 2.0**weight
    return odds / (1.0 + odds)


@dataclass
class MatchModel:
    params: list[ComparisonParams]
    match_share: float  # the share of candidate pairs that are matches (expected matches / candidate pairs)
    comparisons: tuple[Comparison, ...] = DEFAULT_COMPARISONS
    em_iterations: int = 0
    # The prior: the share of matches among *all* pairs of the records it was estimated on. The u
    # probabilities come from random pairs, so the odds they give are odds against a random pair; the prior
    # must be a random pair's too. (The share among candidate pairs would count the blocking keys' agreement
    # twice: once in selecting the pair, once in its weight.) None for a model stored before it existed.
    prior_share: float | None = None

    @property
    def prior_weight(self) -> float:
        share = self.match_share if self.prior_share is None else self.prior_share
        return math.log2(share / (1.0 - share))

    def weights(self, levels: Sequence[int], a: MatchRecord, b: MatchRecord) -> list[float]:
        result = []
        for comparison, params, level in zip(self.comparisons, self.params, levels, strict=True):
            if level == 0 and params.term_frequency:
                result.append(params.exact_weight(comparison.value(a)))
            else:
                result.append(params.weight(level))
        return result

    def score(self, a: MatchRecord, b: MatchRecord, levels: Sequence[int] | None = None) -> PairScore:
        if levels is None:
            levels = tuple(c.compare(a, b) for c in self.comparisons)
        weights = self.weights(levels, a, b)
        total = self.prior_weight + sum(weights)
        fields = tuple(
            FieldScore(p.name, "missing" if level == MISSING else p.levels[level], round(w, 3))
            for p, level, w in zip(self.params, levels, weights, strict=True)
        )
        return PairScore(fields, tuple(levels), self.prior_weight, total, weight_to_probability(total))

    def to_dict(self) -> dict:
        return {
            "match_share": self.match_share,
            "prior_share": self.prior_share,
            "em_iterations": self.em_iterations,
            "comparisons": [
                {
                    "name": p.name,
                    "levels": list(p.levels),
                    "m": p.m,
                    "u": p.u,
                    "term_frequency": p.term_frequency,
                    "value_count": p.value_count,
                    "frequencies": p.frequencies,
                }
                for p in self.params
            ],
        }

    @classmethod
    def from_dict(cls, data: dict, comparisons: tuple[Comparison, ...] = DEFAULT_COMPARISONS) -> MatchModel:
        by_name = {item["name"]: item for item in data["comparisons"]}
        params = []
        for comparison in comparisons:
            # A comparison added after this model was stored weighs nothing (m = u) until the next training.
            uniform = [1.0 / len(comparison.levels)] * len(comparison.levels)
            item = by_name.get(comparison.name) or {
                "levels": comparison.levels,
                "m": uniform,
                "u": uniform,
                "term_frequency": False,
                "value_count": 0,
                "frequencies": {},
            }
            params.append(
                ComparisonParams(
                    name=comparison.name,
                    levels=tuple(item["levels"]),
                    m=list(item["m"]),
                    u=list(item["u"]),
                    term_frequency=item["term_frequency"],
                    value_count=item["value_count"],
                    frequencies=dict(item["frequencies"]),
                )
            )
        return cls(
            params, data["match_share"], comparisons, data.get("em_iterations", 0), data.get("prior_share")
        )


# --- Estimation ----------------------------------------------------------------------------------------


def comparison_matrix(
    records: Sequence[MatchRecord],
    pairs: Sequence[tuple[int, int]],
    comparisons: tuple[Comparison, ...] = DEFAULT_COMPARISONS,
) -> np.ndarray:
    """Levels of every pair (rows) for every comparison (columns), ``MISSING`` where a side has no value."""
    functions = [c.compare for c in comparisons]
    levels = array("b")  # one flat buffer, made a matrix at the end: a NumPy row per pair cost 14 % more
    for i, j in pairs:
        a, b = records[i], records[j]
        levels.extend([f(a, b) for f in functions])
    return np.frombuffer(levels, dtype=np.int8).reshape(len(pairs), len(functions)).copy()


def _matrices(
    records: Sequence[MatchRecord],
    groups: Sequence[Sequence[tuple[int, int]]],
    comparisons: tuple[Comparison, ...],
) -> list[np.ndarray]:
    """``comparison_matrix`` of each group of pairs, every distinct pair compared once: the pairs of a
    training's sessions are mostly candidate pairs too (a birth date block is one of the blocking keys)."""
    row_of: dict[tuple[int, int], int] = {}
    for group in groups:
        for pair in group:
            row_of.setdefault(pair, len(row_of))
    full = comparison_matrix(records, list(row_of), comparisons)
    return [full[[row_of[pair] for pair in group]] if group else full[:0] for group in groups]


def _value_counts(records: Sequence[MatchRecord], comparison: Comparison) -> Counter:
    return Counter(v for v in (comparison.value(r) for r in records) if v)


def estimate_u(
    records: Sequence[MatchRecord],
    comparisons: tuple[Comparison, ...] = DEFAULT_COMPARISONS,
    *,
    random_pairs: int = RANDOM_PAIRS,
    seed: int = 0,
) -> list[list[float]]:
    """u probabilities per comparison level from random pairs; exact level from value frequencies."""
    n = len(records)
    rng = random.Random(seed)
    sample = []
    for _ in range(min(random_pairs, n * (n - 1) // 2)):
        i, j = rng.randrange(n), rng.randrange(n - 1)
        sample.append((i, j + (j >= i)))
    matrix = comparison_matrix(records, sample, comparisons)
    result = []
    for column, comparison in enumerate(comparisons):
        levels = len(comparison.levels)
        observed = matrix[:, column]
        observed = observed[observed != MISSING]
        counts = np.bincount(observed.astype(np.int64), minlength=levels)[:levels].astype(float)
        values = _value_counts(records, comparison)
        present = sum(values.values())
        exact = sum(c * (c - 1) for c in values.values()) / (present * (present - 1)) if present > 1 else 0.0
        exact = max(exact, PROBABILITY_FLOOR)
        rest = (
            counts[1:] + 0.5
        )  # a half pseudo-count: a level never seen among strangers is rare, not impossible
        rest = rest / rest.sum() * (1.0 - exact)
        result.append([exact, *rest.tolist()])
    return result


def _initial_m(levels: int) -> list[float]:
    raw = [0.9 * 0.25**k for k in range(levels - 1)] + [0.05]
    total = sum(raw)
    return [value / total for value in raw]


def estimate_m(
    matrix: np.ndarray,
    u: list[list[float]],
    level_counts: Sequence[int],
    *,
    initial_match_share: float = 0.05,
    max_iterations: int = MAX_EM_ITERATIONS,
    tolerance: float = EM_TOLERANCE,
    fixed_m: list[list[float]] | None = None,
    total_pairs: int | None = None,
) -> tuple[list[list[float]], float, int]:
    """EM over the candidate pairs' level patterns with u fixed; returns m per level, lambda, iterations.

    With ``fixed_m`` only lambda is estimated: the share of matches among these pairs, or with
    ``total_pairs`` among that many pairs, of which these are the only ones that can match (the candidate
    pairs among all pairs of the records: every other pair counts as a non-match)."""
    patterns, counts = np.unique(matrix, axis=0, return_counts=True)
    counts = counts.astype(float)
    m = (
        [np.array(values) for values in fixed_m]
        if fixed_m
        else [np.array(_initial_m(n)) for n in level_counts]
    )
    u_arrays = [np.array(values) for values in u]
    present = [patterns[:, k] != MISSING for k in range(len(level_counts))]
    indices = [np.where(present[k], patterns[:, k], 0).astype(np.int64) for k in range(len(level_counts))]
    share = initial_match_share
    iteration = 0
    for iteration in range(1, max_iterations + 1):  # noqa: B007 - the count is returned
        log_ratio = np.zeros(len(patterns))
        for k in range(len(level_counts)):
            ratio = np.log(m[k][indices[k]]) - np.log(u_arrays[k][indices[k]])
            log_ratio += np.where(present[k], ratio, 0.0)
        logit = np.clip(math.log(share / (1 - share)) + log_ratio, -700, 700)
        posterior = 1.0 / (1.0 + np.exp(-logit))
        weight = posterior * counts
        denominator = total_pairs if total_pairs else counts.sum()
        new_share = min(max(weight.sum() / denominator, 1e-12), 1 - PROBABILITY_FLOOR)
        change = abs(new_share - share)
        if fixed_m:
            share = new_share
            if change < tolerance:
                break
            continue
        new_m = []
        for k, levels in enumerate(level_counts):
            sums = np.bincount(indices[k][present[k]], weights=weight[present[k]], minlength=levels)
            total = sums.sum()
            # half a pseudo-count, as for u: a level the matches never showed is rare, not impossible (at
            # the floor one disagreeing field would veto a match by 18 bits)
            values = np.full(levels, 1.0 / levels) if total <= 0 else (sums + 0.5) / (total + 0.5 * levels)
            values = np.maximum(values, PROBABILITY_FLOOR)
            values = values / values.sum()
            change = max(change, float(np.abs(values - m[k]).max()))
            new_m.append(values)
        m, share = new_m, new_share
        if change < tolerance:
            break
    return [values.tolist() for values in m], share, iteration


@dataclass(frozen=True)
class TrainingSession:
    """EM over the pairs of one blocking rule. The comparisons the rule depends on are left out: inside a
    birth date block everybody agrees on the birth date, so that agreement says nothing about m there. Each
    comparison's m is the mean over the sessions that estimated it.

    There is no session by postcode or by address: a block of one address holds a household, whose members
    share the surname, the address and often a landline or a family email, and EM's two classes then
    split households from neighbours instead of one person from another. Measured against the synthetic
    people data's labels (1,000,000 records, December 2026): in postcode blocks EM put the m of a given name
    disagreeing at 0.39-0.42 (true 0.02), of an exact birth date at 0.36-0.47 (true 0.96-1.0), of an equal
    email at 0.55 (true 0.94); address blocks gave the same. The birth date and name sound sessions came
    within 0.01-0.04 of the true m of most levels (0.08 at worst), and between them they estimate every
    comparison."""

    rule: BlockingRule
    excluded: frozenset[str]


DEFAULT_TRAINING_SESSIONS: tuple[TrainingSession, ...] = (
    TrainingSession(BlockingRule("birth_date", _birth_date_key), frozenset({"birth_date"})),
    TrainingSession(
        BlockingRule("name_sounds", _name_sounds_key),
        frozenset({"first_name", "last_name", "gender"}),
    ),
)
MAX_SESSION_PAIRS = 200_000


def model_estimate(
    records: Sequence[MatchRecord],
    pairs: Sequence[tuple[int, int]],
    comparisons: tuple[Comparison, ...] = DEFAULT_COMPARISONS,
    *,
    matrix: np.ndarray | None = None,
    sessions: Sequence[TrainingSession] = DEFAULT_TRAINING_SESSIONS,
    random_pairs: int = RANDOM_PAIRS,
    max_session_pairs: int = MAX_SESSION_PAIRS,
    seed: int = 0,
    session_records: Sequence[Sequence[MatchRecord]] | None = None,
) -> MatchModel:
    """Estimate a model from unlabelled records; ``pairs`` are the candidate pairs it will score (their
    match share is the prior).

    ``session_records``, one sequence per session, are the records each session's EM draws its pairs from
    instead of ``records``: whole blocks of its rule drawn from a table too big to hold (see
    ``services.matching.session_blocks_pick``). A uniform sample of records keeps a duplicate pair only
    with the square of the sampling rate, too few for EM to learn what a match looks like; whole blocks
    keep every pair of the block."""
    rng = random.Random(seed)
    u = estimate_u(records, comparisons, random_pairs=random_pairs, seed=seed)
    level_counts = [len(c.levels) for c in comparisons]
    estimates: list[list[np.ndarray]] = [[] for _ in comparisons]
    drawn_from = list(session_records) if session_records is not None else [records] * len(sessions)
    sampled = []
    for session, members in zip(sessions, drawn_from, strict=True):
        index = BlockingIndex((session.rule,))
        index.extend(members)
        sampled.append(index.candidate_pairs_sample(rng, max_session_pairs)[0])
    if session_records is not None:
        matrices = [comparison_matrix(m, p, comparisons) for m, p in zip(drawn_from, sampled, strict=True)]
        if matrix is None:
            matrix = comparison_matrix(records, pairs, comparisons)
    elif matrix is None:
        matrix, *matrices = _matrices(records, [pairs, *sampled], comparisons)
    else:
        matrices = _matrices(records, sampled, comparisons)
    for session, session_pairs, full in zip(sessions, sampled, matrices, strict=True):
        if not session_pairs:
            continue
        kept = [k for k, c in enumerate(comparisons) if c.name not in session.excluded]
        session_matrix = full[:, kept]
        m, _, _ = estimate_m(session_matrix, [u[k] for k in kept], [level_counts[k] for k in kept])
        for position, k in enumerate(kept):
            if (session_matrix[:, position] != MISSING).any():
                estimates[k].append(np.array(m[position]))
    m_final = [
        (np.mean(found, axis=0) if found else np.array(_initial_m(level_counts[k]))).tolist()
        for k, found in enumerate(estimates)
    ]
    share, prior, iterations = 0.5, None, 0
    if len(matrix):
        n = len(records)
        all_pairs = max(n * (n - 1) // 2, len(matrix))
        _, prior, iterations = estimate_m(
            matrix,
            u,
            level_counts,
            fixed_m=m_final,
            total_pairs=all_pairs,
            initial_match_share=min(0.05, len(matrix) / all_pairs),
        )
        share = min(max(prior * all_pairs / len(matrix), PROBABILITY_FLOOR), 1 - PROBABILITY_FLOOR)
    params = []
    for comparison, m_values, u_values in zip(comparisons, m_final, u, strict=True):
        values = _value_counts(records, comparison) if comparison.term_frequency else Counter()
        params.append(
            ComparisonParams(
                name=comparison.name,
                levels=comparison.levels,
                m=m_values,
                u=u_values,
                term_frequency=comparison.term_frequency,
                value_count=sum(values.values()),
                frequencies={v: c for v, c in values.items() if c >= MIN_TERM_FREQUENCY_COUNT},
            )
        )
    return MatchModel(params, share, comparisons, iterations, prior)
