"""Clustering of linked pairs into entities: connected components, strongest links first, with guards.

Connected components alone chain strangers: A links to B, B to C, and A and C may be different people. Two
clusters are therefore not joined when any record of one clearly contradicts any record of the other (the
same identity conflict that keeps a pair from being linked, see ``decision.identity_conflict``: given
names disagree and no birth date or identifier confirms one person), when the
join would compare too many pairs to check, or when it would put more records of one source on one profile
than allowed. A refused join is returned, so it can go to review.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .comparisons import _first_name, date_level, given_names_differ
from .records import MatchRecord

MAX_CROSS_PAIRS = 10_000

BIRTH_DATES_AND_GIVEN_NAMES_DISAGREE = "birth dates and given names disagree"
GIVEN_NAMES_DISAGREE_UNCONFIRMED = "given names disagree and no birth date or identifier confirms one person"


@dataclass(frozen=True)
class RefusedJoin:
    pair: tuple[int, int]
    probability: float
    reason: str


def records_conflict(a: MatchRecord, b: MatchRecord) -> str:
    """Why two records may belong to different people: the rule of ``decision.identity_conflict`` (given
    names disagree, and neither the birth date nor an identifier confirms one person)."""
    return _unconfirmed(a, b, names_differ=_first_name(a, b) == 5)


def identifier_shared_by_two(a: MatchRecord, b: MatchRecord) -> str:
    """Why two records that share an email or a phone still look like two people, or "".

    The test of the deterministic resolver's guard (``profiles.services.guard``): the given names cannot be
    one person's (``comparisons.given_names_differ``: beyond typo, nickname, initial, sound and swap
    tolerance) and neither the birth date (up to a typo or a day/month swap) nor a national identifier
    confirms one person. Laxer on names than ``records_conflict``, since the shared identifier already
    speaks for one person; a missing given name contradicts nothing, and neither does one read from the
    email address ("lee.family@..." spells no given name, and the address is what the two records share)."""
    if not (a.given_stated and b.given_stated):
        return ""
    return _unconfirmed(a, b, names_differ=given_names_differ(a, b))


def _unconfirmed(a: MatchRecord, b: MatchRecord, *, names_differ: bool) -> str:
    """The reason, when the given names differ and neither a birth date nor a national id confirms one
    person; "" otherwise."""
    if not names_differ or (a.national_id and a.national_id == b.national_id):
        return ""
    level = date_level(a.birth_date, b.birth_date)
    if level in (0, 1, 2):
        return ""
    if level == 4:
        return BIRTH_DATES_AND_GIVEN_NAMES_DISAGREE
    return GIVEN_NAMES_DISAGREE_UNCONFIRMED


def cluster_links(
    records: Sequence[MatchRecord],
    links: Sequence[tuple[int, int, float]],
    *,
    conflict: Callable[[MatchRecord, MatchRecord], str] = records_conflict,
    max_records_per_source: int | None = None,
    max_cross_pairs: int = MAX_CROSS_PAIRS,
) -> tuple[list[list[int]], list[RefusedJoin]]:
    """Clusters (lists of record positions, singletons included) from links ``(i, j, probability)``."""
    parent = list(range(len(records)))
    members: dict[int, list[int]] = {i: [i] for i in range(len(records))}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    refused: list[RefusedJoin] = []
    for i, j, probability in sorted(links, key=lambda link: (-link[2], link[0], link[1])):
        root_i, root_j = find(i), find(j)
        if root_i == root_j:
            continue
        left, right = members[root_i], members[root_j]
        reason = ""
        if len(left) * len(right) > max_cross_pairs:
            reason = f"joining would compare {len(left) * len(right)} pairs"
        elif len(left) > 1 or len(right) > 1:
            for x in left:
                for y in right:
                    found = conflict(records[x], records[y])
                    if found:
                        reason = f"records {x} and {y}: {found}"
                        break
                if reason:
                    break
        if not reason and max_records_per_source is not None:
            per_source = Counter(records[p].source for p in (*left, *right))
            source, count = per_source.most_common(1)[0]
            if count > max_records_per_source:
                reason = f"{count} records of source {source!r} on one profile"
        if reason:
            refused.append(RefusedJoin((i, j), probability, reason))
            continue
        if len(left) < len(right):
            root_i, root_j, left, right = root_j, root_i, right, left
        parent[root_j] = root_i
        left.extend(right)
        del members[root_j]
    return sorted((sorted(group) for group in members.values()), key=lambda g: g[0]), refused
