"""Clustering of linked pairs into entities: connected components, strongest links first, with guards.

Connected components alone chain strangers: A links to B, B to C, and A and C may be different people. Two
clusters are therefore not joined when any record of one contradicts any record of the other (the same
identity conflict that keeps a pair from being linked, see ``decision.identity_conflict``: given names
disagree and no birth date or identifier confirms one person, unless a third record is confirmed with both:
``groups_conflict``), when the join would compare too many pairs to check, or when it would put more records
of one source on one profile than allowed. A refused join is returned, so it can go to review.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .comparisons import _first_name, date_level, given_names_differ, identifier_confirms
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
    if not names_differ or records_confirm(a, b):
        return ""
    if date_level(a.birth_date, b.birth_date) == 4:
        return BIRTH_DATES_AND_GIVEN_NAMES_DISAGREE
    return GIVEN_NAMES_DISAGREE_UNCONFIRMED


def records_confirm(a: MatchRecord, b: MatchRecord) -> bool:
    """Whether something personal says two records are one person whatever their given names: a birth date
    agreeing up to a typo or a day/month swap, or a national identifier up to one keying error."""
    return date_level(a.birth_date, b.birth_date) in (0, 1, 2) or identifier_confirms(
        a.national_id, b.national_id
    )


@dataclass(frozen=True)
class GroupsCheck:
    """What ``groups_conflict`` found: the pair that keeps two groups apart (with the reason), or None; and
    the pairs it let through because a third record is confirmed with both (a, b, that record)."""

    conflict: tuple[MatchRecord, MatchRecord, str] | None
    bridged: tuple[tuple[MatchRecord, MatchRecord, MatchRecord], ...] = ()


def groups_conflict(
    left: Sequence[MatchRecord],
    right: Sequence[MatchRecord],
    conflict: Callable[[MatchRecord, MatchRecord], str] = records_conflict,
) -> GroupsCheck:
    """Whether two groups of records (clusters, profiles) may become one person.

    Any pair, one record of each group, that clearly contradicts (given names and birth dates disagree) keeps
    them apart. A pair whose only objection is that nothing confirms one person (given names differ, a birth
    date missing) does not, when a third record of the two groups is confirmed with each of them
    (``records_confirm``): the groups already hold the evidence the pair lacks. "Holly Green, 1941-01-14"
    joins "Matthew Green, 1941-01-14, id 8051408" and "Matthew Green, id 8051408, no birth date". A record
    without a birth date or an identifier bridges nothing: a relative's record stays on its own profile."""
    unconfirmed = []
    for a in left:
        for b in right:
            found = conflict(a, b)
            if found == GIVEN_NAMES_DISAGREE_UNCONFIRMED:
                unconfirmed.append((a, b, found))
            elif found:
                return GroupsCheck((a, b, found))
    members = {id(record): record for record in (*left, *right)}
    confirmed_with: dict[int, set[int]] = {}  # id(record) -> ids of the other members confirmed with it

    def confirmed(record: MatchRecord) -> set[int]:
        if id(record) not in confirmed_with:
            confirmed_with[id(record)] = {
                key for key, z in members.items() if z is not record and records_confirm(record, z)
            }
        return confirmed_with[id(record)]

    bridged = []
    for a, b, found in unconfirmed:
        both = confirmed(a) & confirmed(b)
        if not both:
            return GroupsCheck((a, b, found))
        bridged.append((a, b, next(z for key, z in members.items() if key in both)))
    return GroupsCheck(None, tuple(bridged))


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
            position = {id(records[p]): p for p in (*left, *right)}
            found = groups_conflict(
                [records[p] for p in left], [records[p] for p in right], conflict
            ).conflict
            if found:
                a, b, why = found
                reason = f"records {position[id(a)]} and {position[id(b)]}: {why}"
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
