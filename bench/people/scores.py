"""How a run is scored against the truth: profile and pairwise precision / recall of a partition of the
records into profiles (``partition_scores``), why the people left split are split (``miss_report``), and
the peak memory of a run's process (``peak_rss_mb``).
"""

from __future__ import annotations

import resource
import sys
from collections import Counter
from collections.abc import Sequence

# --- Scores -------------------------------------------------------------------------------------------------


def _pairs(counts):
    return (counts * (counts - 1) // 2).sum()


def partition_scores(persons: Sequence[int], clusters: Sequence[int]) -> dict:
    """How well a partition of records into predicted profiles (``clusters[i]``, any integer labels)
    matches the truth (``persons[i]``).

    - profile precision: the share of predicted profiles that hold the records of one person only;
    - profile recall: the share of people whose records all ended on one profile;
    - over-merge rate: the share of people who share a profile with another person;
    - pairwise precision / recall / F1 over the pairs of records put on one profile (counted, not listed,
      so it costs the same at a million records).
    """
    import numpy as np

    person = np.asarray(persons, dtype=np.int64)
    cluster = np.asarray(clusters, dtype=np.int64)
    if person.shape != cluster.shape:
        raise ValueError("one cluster label per record")
    if not len(person):
        return {"records": 0, "people": 0, "profiles": 0}
    # The distinct (cluster, person) cells and how many records each holds.
    cells, cell_counts = np.unique(np.stack([cluster, person], axis=1), axis=0, return_counts=True)
    cell_cluster, cell_person = cells[:, 0], cells[:, 1]
    cluster_ids, people_per_cluster = np.unique(cell_cluster, return_counts=True)
    person_ids, clusters_per_person = np.unique(cell_person, return_counts=True)
    profiles, people = len(cluster_ids), len(person_ids)
    pure = int((people_per_cluster == 1).sum())
    complete = int((clusters_per_person == 1).sum())
    mixed = set(cluster_ids[people_per_cluster > 1].tolist())
    over_merged = len(set(cell_person[np.isin(cell_cluster, list(mixed))].tolist())) if mixed else 0
    _, records_per_cluster = np.unique(cluster, return_counts=True)
    _, records_per_person = np.unique(person, return_counts=True)
    predicted = int(_pairs(records_per_cluster))
    true = int(_pairs(records_per_person))
    hits = int(_pairs(cell_counts))
    precision = hits / predicted if predicted else 1.0
    recall = hits / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    profile_precision, profile_recall = pure / profiles, complete / people
    return {
        "records": len(person),
        "people": people,
        "profiles": profiles,
        "profile_precision": profile_precision,
        "profile_recall": profile_recall,
        "profile_f1": 2 * profile_precision * profile_recall / (profile_precision + profile_recall)
        if profile_precision + profile_recall
        else 0.0,
        "over_merge_rate": over_merged / people,
        "people_over_merged": over_merged,
        "people_split": people - complete,
        "mixed_profiles": len(mixed),
        "pair_precision": precision,
        "pair_recall": recall,
        "pair_f1": f1,
        "pairs_predicted": predicted,
        "pairs_true": true,
    }


# --- Where recall goes ---------------------------------------------------------------------------------------

MISS_NO_KEY = "no blocking key shared"
MISS_IDENTIFIER_GUARD = "shared email/phone, held apart by the identifier guard"
MISS_CLUSTER_GUARD = "pair would link, the cluster guard refused"
MISS_LINK_GUARD = "above the link threshold, given names disagree (guard)"
MISS_REVIEW = "review band (0.5 to 0.99)"
MISS_TWO_PEOPLE = "names cannot be one person's: not even suggested"
MISS_NEW = "scored below review (< 0.5)"
MISS_ORDER = (
    MISS_NO_KEY,
    MISS_IDENTIFIER_GUARD,
    MISS_CLUSTER_GUARD,
    MISS_LINK_GUARD,
    MISS_REVIEW,
    MISS_TWO_PEOPLE,
    MISS_NEW,
)
_OUTCOME_RANK = {"link": 0, "review": 1, "new": 2}


def _shared_evidence(score) -> str:
    """What a scored pair agrees on, in short ("names+postcode", "one name", "nothing")."""
    agree = {f.field for f in score.fields if f.level not in ("missing", "disagree")}
    parts = []
    names = {"first_name", "last_name"} & agree
    if len(names) == 2 or score.field_level("first_name") == "swapped_with_last_name":
        parts.append("names")
    elif names:
        parts.append("one name")
    parts += [f for f in ("email", "phone", "birth_date") if f in agree]
    if "address_line1" in agree:
        parts.append("address")
    elif "postcode" in agree:
        parts.append("postcode")
    return "+".join(parts) or "nothing"


def miss_report(records: Sequence, persons: Sequence[int], clusters: Sequence[int], model) -> dict:
    """Why people are split: for every person whose records ended on more than one profile, the pair of
    their records on two different profiles that came closest to being joined (one sharing a blocking key
    or an email / phone first, then by outcome and probability), and what stopped it. ``records`` are
    ``MatchRecord``s in the order of ``persons`` and ``clusters``; ``model`` is the model that scored them.

    Returns {category: {"people": n, "evidence": {what the pair agrees on: n}}} in ``MISS_ORDER``. Reads
    the truth only to find the split people; what it reports is what the matcher saw."""
    from collections import defaultdict

    from profiles.matching import DEFAULT_BLOCKING_RULES, decide
    from profiles.matching.cluster import identifier_shared_by_two

    by_person: dict[int, list[int]] = defaultdict(list)
    for position, person in enumerate(persons):
        by_person[person].append(position)
    keys = {}

    def keys_of(position: int) -> dict[str, str]:
        if position not in keys:
            record = records[position]
            keys[position] = {rule.name: rule.key(record) for rule in DEFAULT_BLOCKING_RULES}
        return keys[position]

    report: dict[str, dict] = {}
    for positions in by_person.values():
        if len({clusters[p] for p in positions}) < 2:
            continue
        best = None
        for x, i in enumerate(positions):
            for j in positions[x + 1 :]:
                if clusters[i] == clusters[j]:
                    continue
                a, b = records[i], records[j]
                keyed = any(v and keys_of(j)[name] == v for name, v in keys_of(i).items())
                shared_id = bool((a.email and a.email == b.email) or (a.phone and a.phone == b.phone))
                score = model.score(a, b)
                decision = decide(score, pair=(a, b))
                rank = (not (keyed or shared_id), _OUTCOME_RANK[decision.outcome], -score.probability)
                if best is None or rank < best[0]:
                    best = (rank, a, b, keyed, shared_id, score, decision)
        _, a, b, keyed, shared_id, score, decision = best
        if shared_id and identifier_shared_by_two(a, b):
            category = MISS_IDENTIFIER_GUARD
        elif not keyed and not shared_id:
            category = MISS_NO_KEY
        elif decision.outcome == "link":
            category = MISS_CLUSTER_GUARD
        elif decision.outcome == "review":
            category = MISS_LINK_GUARD if score.probability >= 0.99 else MISS_REVIEW
        else:
            category = MISS_TWO_PEOPLE if "two people" in decision.reason else MISS_NEW
        entry = report.setdefault(category, {"people": 0, "evidence": Counter()})
        entry["people"] += 1
        entry["evidence"][_shared_evidence(score)] += 1
    return {
        category: {
            "people": report[category]["people"],
            "evidence": dict(report[category]["evidence"].most_common()),
        }
        for category in MISS_ORDER
        if category in report
    }


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
