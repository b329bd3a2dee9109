"""Decisions on scored pairs: link, review or new, with the explanation stored next to every decision.

The thresholds are production constants in match probability. They were fixed from what the outcomes
mean, not fitted to any labelled data: an automatic link needs odds of at least 99 to 1; anything more
likely than not to be the same person is worth a steward's look; below that, a new profile.

Guard: a pair whose given names disagree beyond typo, nickname, initial and swap tolerance is linked
automatically only when something personal confirms one person: the birth date (exact, day and month
swapped, or one component mistyped) or a national identifier. Otherwise it goes to review, whatever the rest
of the evidence says. That is the household case (partners, siblings, parent and child at one address with
one surname and often one phone or family email), where a wrong merge leaks one person's data and opt-outs
to another; most CRM records carry no birth date, so a missing one confirms nothing. A different given name
alone is not a conflict when the birth date agrees: sources do replace a given name (a preferred or a wrong
one); nor is a different birth date when the given name agrees: sources mistype them.

Review is for pairs a steward can settle. Given the two records (``decide(..., pair=...)``), a pair whose
given names cannot be one person's at all (``cluster.identifier_shared_by_two``: beyond every typo, nickname,
initial, sound and swap tolerance) with nothing personal confirming one person is two people, however alike
the rest: a new profile, not a suggestion. Otherwise every household at one address would wait in the queue.
"""

from __future__ import annotations

from dataclasses import dataclass

from .cluster import identifier_shared_by_two
from .model import PairScore
from .records import MatchRecord

AUTO_LINK_PROBABILITY = 0.99
REVIEW_PROBABILITY = 0.50

LINK, REVIEW, NEW = "link", "review", "new"


@dataclass(frozen=True)
class Thresholds:
    auto_link: float = AUTO_LINK_PROBABILITY
    review: float = REVIEW_PROBABILITY


DEFAULT_THRESHOLDS = Thresholds()


# Birth-date levels that confirm one person despite another given name (a typo or a swap is one person).
CONFIRMING_BIRTH_DATE_LEVELS = frozenset({"exact", "day_month_swapped", "one_component_off"})
# National-identifier levels that do the same: equal, or one keying error apart (``identifier_level``).
CONFIRMING_IDENTIFIER_LEVELS = frozenset({"exact", "one_edit"})


def identity_conflict(score: PairScore) -> str:
    """Why this pair must not be linked automatically, or "" when nothing contradicts it."""
    if score.field_level("first_name") != "disagree":
        return ""
    if score.field_level("national_id") in CONFIRMING_IDENTIFIER_LEVELS:
        return ""
    birth_date = score.field_level("birth_date")
    if birth_date in CONFIRMING_BIRTH_DATE_LEVELS:
        return ""
    if birth_date == "disagree":
        return "birth dates and given names disagree"
    return "given names disagree and no birth date or identifier confirms one person"


@dataclass(frozen=True)
class Decision:
    outcome: str  # LINK, REVIEW or NEW
    score: PairScore
    reason: str

    @property
    def probability(self) -> float:
        return self.score.probability

    def explanation(self) -> dict:
        """What is stored with an automatic link or a suggestion: per field its level and weight (bits),
        the prior, the total weight and the probability, and why this outcome."""
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "probability": round(self.score.probability, 6),
            "total_weight": round(self.score.total_weight, 3),
            "prior_weight": round(self.score.prior_weight, 3),
            "fields": [
                {"field": item.field, "level": item.level, "weight": item.weight}
                for item in self.score.fields
            ],
        }


def decide(
    score: PairScore,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    pair: tuple[MatchRecord, MatchRecord] | None = None,
) -> Decision:
    """Link, review or new for a scored pair; with the records themselves (``pair``), a pair that is clearly
    two people is new rather than reviewed (see the module docstring)."""
    probability = score.probability
    if probability >= thresholds.auto_link:
        conflict = identity_conflict(score)
        if not conflict:
            return Decision(LINK, score, f"probability {probability:.4f} >= {thresholds.auto_link}")
        outcome = Decision(REVIEW, score, f"above the link threshold, but {conflict}")
    elif probability >= thresholds.review:
        outcome = Decision(REVIEW, score, f"probability {probability:.4f} between the thresholds")
    else:
        return Decision(NEW, score, f"probability {probability:.4f} < {thresholds.review}")
    two_people = identifier_shared_by_two(*pair) if pair is not None else ""
    if two_people:
        return Decision(NEW, score, f"probability {probability:.4f}, but {two_people}: two people")
    return outcome
