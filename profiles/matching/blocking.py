"""Candidate generation: several blocking keys per record; only records sharing a key are compared.

Each rule yields at most one key per record. A block larger than ``max_block_size`` is subdivided by the
initials of the names; a sub-block still too large is skipped and counted (it would compare strangers by
the thousand, and the other rules usually catch its true pairs).
"""

from __future__ import annotations

import random
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .records import MatchRecord

MAX_BLOCK_SIZE = 200


@dataclass(frozen=True)
class BlockingRule:
    name: str
    key: Callable[[MatchRecord], str]


def _postcode(r: MatchRecord) -> str:
    return r.postcode


def _surname_sound_birth_year(r: MatchRecord) -> str:
    return f"{r.last_name_phonetic}|{r.birth_date[0]}" if r.last_name_phonetic and r.birth_date else ""


def _name_sounds(r: MatchRecord) -> str:
    """The sounds of the given and the family name, in sorted order: a record with the two names swapped
    ("McKane Caleb") shares the key."""
    if not (r.first_name_phonetic and r.last_name_phonetic):
        return ""
    return "|".join(sorted((r.first_name_phonetic, r.last_name_phonetic)))


def _surname_sound_city(r: MatchRecord) -> str:
    """Catches a mistyped or changed postcode within one town."""
    return f"{r.last_name_phonetic}|{r.city}" if r.last_name_phonetic and r.city else ""


def _birth_date(r: MatchRecord) -> str:
    return "-".join(r.birth_date) if r.birth_date else ""


def _address(r: MatchRecord) -> str:
    """House number and street, spaces left out ("coplanddrive" / "copland drive")."""
    return f"{r.house_number}|{r.street.replace(' ', '')}" if r.house_number and r.street else ""


def _given_name_sound_street(r: MatchRecord) -> str:
    """Catches a mistyped or transposed house number ("51 Hensman Street" / "15 Hensman Street") when the
    postcode and the birth date disagree too."""
    return (
        f"{r.first_name_phonetic}|{r.street.replace(' ', '')}" if r.first_name_phonetic and r.street else ""
    )


def _phone_tail(r: MatchRecord) -> str:
    return r.phone[-8:] if len(r.phone) >= 8 else ""


def _email_local(r: MatchRecord) -> str:
    return r.email_local if len(r.email_local) >= 3 else ""


def _national_id(r: MatchRecord) -> str:
    return r.national_id


DEFAULT_BLOCKING_RULES: tuple[BlockingRule, ...] = (
    BlockingRule("postcode", _postcode),
    BlockingRule("surname_sound+birth_year", _surname_sound_birth_year),
    BlockingRule("name_sounds", _name_sounds),
    BlockingRule("surname_sound+city", _surname_sound_city),
    BlockingRule("birth_date", _birth_date),
    BlockingRule("address", _address),
    BlockingRule("given_name_sound+street", _given_name_sound_street),
    BlockingRule("phone_tail", _phone_tail),
    BlockingRule("email_local_part", _email_local),
    BlockingRule("national_id", _national_id),
)


def _subkey(r: MatchRecord) -> str:
    return f"{r.first_name[:1]}{r.last_name[:1]}"


_NONE = np.empty(0, dtype=np.int64)


def _sorted_unique(codes: np.ndarray) -> np.ndarray:
    """``np.unique`` for integers, by sorting (numpy 2's hash-based ``unique`` is several times slower)."""
    codes = np.sort(codes)
    return codes[np.concatenate(([True], codes[1:] != codes[:-1]))] if len(codes) else codes


def _pair_codes(groups: list[list[int]], size: int, n: int) -> np.ndarray:
    """Every pair inside each of these blocks of ``size`` positions, coded ``i * n + j`` with ``i < j``."""
    members = np.array(groups, dtype=np.int64)
    left, right = np.triu_indices(size, k=1)
    a, b = members[:, left], members[:, right]
    return (np.minimum(a, b) * n + np.maximum(a, b)).ravel()


class Pairs(Sequence[tuple[int, int]]):
    """Pairs of record positions ``(i, j)``, kept as two arrays of 32-bit integers: 8 bytes a pair, where a
    list of tuples takes about 110 (a batch of a million records has some twenty million candidate pairs).
    Read like a list of tuples; a boolean mask selects a subset (``pairs[mask]``)."""

    __slots__ = ("left", "right")

    def __init__(self, left: np.ndarray, right: np.ndarray):
        self.left, self.right = left, right

    def __len__(self) -> int:
        return len(self.left)

    def __getitem__(self, index):
        if isinstance(index, int | np.integer):
            return int(self.left[index]), int(self.right[index])
        return Pairs(self.left[index], self.right[index])

    def __iter__(self) -> Iterator[tuple[int, int]]:
        step = 1 << 16  # Python integers for one slice at a time
        for start in range(0, len(self.left), step):
            yield from zip(
                self.left[start : start + step].tolist(),
                self.right[start : start + step].tolist(),
                strict=True,
            )


@dataclass
class BlockingStats:
    pairs_per_rule: dict[str, int] = field(default_factory=dict)
    oversize_blocks_skipped: int = 0
    records_in_skipped_blocks: int = 0


class BlockingIndex:
    """Blocks of record positions, per rule. Used in batch (``candidate_pairs``) and incrementally
    (``add`` one record, then ``candidates`` for the next one)."""

    def __init__(
        self,
        rules: tuple[BlockingRule, ...] = DEFAULT_BLOCKING_RULES,
        *,
        max_block_size: int = MAX_BLOCK_SIZE,
    ):
        self.rules = rules
        self.max_block_size = max_block_size
        self.records: list[MatchRecord] = []
        self.blocks: list[dict[str, list[int]]] = [defaultdict(list) for _ in rules]

    def add(self, record: MatchRecord) -> int:
        position = len(self.records)
        self.records.append(record)
        for rule, blocks in zip(self.rules, self.blocks, strict=True):
            key = rule.key(record)
            if key:
                blocks[key].append(position)
        return position

    def extend(self, records: Iterable[MatchRecord]) -> None:
        for record in records:
            self.add(record)

    def _groups(self, members: list[int]) -> list[list[int]]:
        if len(members) <= self.max_block_size:
            return [members]
        sub: dict[str, list[int]] = defaultdict(list)
        for position in members:
            sub[_subkey(self.records[position])].append(position)
        return list(sub.values())

    def _pairable_groups(self, blocks: dict[str, list[int]], stats: BlockingStats) -> Iterator[list[int]]:
        """The groups of two or more positions of one rule's blocks that are compared (big blocks split by
        initials); the groups still too big are skipped and counted in ``stats``."""
        for members in blocks.values():
            if len(members) < 2:
                continue
            for group in self._groups(members):
                if len(group) > self.max_block_size:
                    stats.oversize_blocks_skipped += 1
                    stats.records_in_skipped_blocks += len(group)
                elif len(group) > 1:
                    yield group

    def candidate_pairs(self, *, link_only: bool = False) -> tuple[Pairs, BlockingStats]:
        """Every pair of positions sharing a block, each once, ``i < j``; with ``link_only``, only pairs
        of records from different sources. In block order: the pairs of one block follow each other, so the
        comparisons' caches of value pairs hit (sorted pairs made a batch of 100,000 records 15% slower).

        The pairs are collected as integer codes ``i * (len(records) + 1) + j`` and the repeats (a pair
        sharing several keys) dropped at the end, each pair kept where it first came: no set or tuple per
        pair is ever held."""
        codes = array("q")
        ends = []  # where each rule's codes end
        stats = BlockingStats()
        n = len(self.records) + 1
        for blocks in self.blocks:
            for group in self._pairable_groups(blocks, stats):
                for x, i in enumerate(group):
                    ri, base = self.records[i], i * n
                    for j in group[x + 1 :]:
                        if link_only and ri.source == self.records[j].source:
                            continue
                        codes.append(base + j)
            ends.append(len(codes))
        found = np.frombuffer(codes, dtype=np.int64) if codes else _NONE
        first = np.unique(found, return_index=True)[1]
        first.sort()
        per_rule = np.bincount(np.searchsorted(ends, first, side="right"), minlength=len(self.rules))
        for rule, count in zip(self.rules, per_rule.tolist(), strict=True):
            stats.pairs_per_rule[rule.name] = count
        kept = found[first]
        return Pairs((kept // n).astype(np.int32), (kept % n).astype(np.int32)), stats

    def candidate_pair_codes(self, *, link_only: bool = False) -> tuple[np.ndarray, BlockingStats]:
        """The same pairs as ``candidate_pairs``, each as one integer ``i * (len(records) + 1) + j``, each
        rule's new pairs sorted: for a caller that counts or samples them without building them all (the
        training counts millions on its sample of 50,000 records).

        Vectorised: the blocks of one size are stacked into one array and paired at once, and the codes are
        de-duplicated by sorting (the loop of ``candidate_pairs`` was a third of a training's time)."""
        stats = BlockingStats()
        n = len(self.records) + 1
        sources = None
        if link_only:
            numbers: dict[str, int] = {}
            sources = np.fromiter(
                (numbers.setdefault(r.source, len(numbers)) for r in self.records),
                dtype=np.int64,
                count=len(self.records),
            )
        seen, found = _NONE, []
        for rule, blocks in zip(self.rules, self.blocks, strict=True):
            by_size: dict[int, list[list[int]]] = defaultdict(list)
            for group in self._pairable_groups(blocks, stats):
                by_size[len(group)].append(group)
            codes = _sorted_unique(
                np.concatenate([_pair_codes(groups, size, n) for size, groups in by_size.items()] or [_NONE])
            )
            if sources is not None:
                codes = codes[sources[codes // n] != sources[codes % n]]
            if len(seen):
                at = np.minimum(np.searchsorted(seen, codes), len(seen) - 1)
                codes = codes[seen[at] != codes]
            stats.pairs_per_rule[rule.name] = len(codes)
            found.append(codes)
            seen = np.sort(np.concatenate([seen, codes]), kind="stable")  # two sorted runs: a merge
        return np.concatenate(found or [_NONE]), stats

    def candidate_pairs_sample(self, rng: random.Random, limit: int) -> tuple[list[tuple[int, int]], int]:
        """A uniform sample of at most ``limit`` candidate pairs (all of them when there are no more), and
        how many there are; only the sampled pairs are built."""
        codes, _ = self.candidate_pair_codes()
        sampled = codes[rng.sample(range(len(codes)), limit)] if len(codes) > limit else codes
        n = len(self.records) + 1
        return list(zip((sampled // n).tolist(), (sampled % n).tolist(), strict=True)), len(codes)

    def candidates(self, record: MatchRecord) -> set[int]:
        """Positions of the indexed records that share a block with ``record`` (which need not be added)."""
        found: set[int] = set()
        sub = _subkey(record)
        for rule, blocks in zip(self.rules, self.blocks, strict=True):
            key = rule.key(record)
            members = blocks.get(key) if key else None
            if not members:
                continue
            if len(members) >= self.max_block_size:
                members = [p for p in members if _subkey(self.records[p]) == sub]
                if len(members) >= self.max_block_size:
                    continue
            found.update(members)
        return found
