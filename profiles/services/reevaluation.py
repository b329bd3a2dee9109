"""Re-evaluating every live record (``manage.py resolve --all``): what the profiles would be under the current
identifier rules and matching model, compared with what they are, and the merges and splits that get there.

The plan is computed in memory, in batch:

1. deterministic components: records in the order they were first stored, joined through their matchable
   identifiers (blocked values ignored), unless the join would break an identifier limit or put two
   never-linked records on one profile (as the incremental resolver decides);
2. probabilistic links between those components: the engine (``link_records``) over all records with the
   active model, links taken strongest first and joined under the same guardrails as incremental matching
   (``matching._guard``: conflicting records, records per source, identifier limits, never-links).

Applying it splits first (``profile_unmerge`` moves the records of every part but the one holding the
profile's oldest record to a new profile) and then merges (``profiles_merge``, one per resulting group).
Memory grows with the number of live records (every record's comparison form and identifiers are held).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from uuid import UUID

from django.conf import settings
from django.db import transaction

from profiles.matching import LINK, REVIEW, MatchModel, MatchRecord, link_records
from profiles.matching.cluster import identifier_shared_by_two
from profiles.matching.decision import DEFAULT_THRESHOLDS
from profiles.models import MatchSuggestion, NeverLink, SourceRecord

from .matching import RULE_PROBABILISTIC, _guard, _source_slugs, match_keys_rebuild, match_model_active
from .merge import MergeRefused, profiles_merge
from .resolution import IdentifierRules, identifier_rules_load


@dataclass
class ResolutionRecord:
    id: int
    profile_id: UUID
    source: str
    external_id: str
    keys: list[tuple[str, str]]
    match: MatchRecord

    def reference(self) -> dict:
        return {"id": self.id, "source": self.source, "external_id": self.external_id}


@dataclass
class PlannedMerge:
    profile_ids: list[UUID]
    records: list[dict]  # the records of the resulting profile
    rule: str
    evidence: dict


@dataclass
class PlannedSplit:
    profile_id: UUID
    keep: list[dict]
    parts: list[list[dict]]  # each moves to a new profile


@dataclass
class ResolutionPlan:
    records: int
    profiles: int
    model_version: int | None
    merges: list[PlannedMerge] = field(default_factory=list)
    splits: list[PlannedSplit] = field(default_factory=list)
    suggestions: list[tuple[int, int, dict, float]] = field(default_factory=list)
    groups: list[list[int]] = field(default_factory=list)

    @property
    def profiles_merging(self) -> int:
        return sum(len(merge.profile_ids) for merge in self.merges)

    @property
    def profiles_after(self) -> int:
        return len(self.groups)


def resolution_plan() -> ResolutionPlan:
    """What ``resolve --all`` would do; reads only."""
    slugs = _source_slugs()
    rules = identifier_rules_load()
    records = [
        ResolutionRecord(
            pk,
            profile_id,
            slugs[source_id],
            external_id,
            [tuple(key) for key in identifiers if not rules.is_blocked(tuple(key))],
            MatchRecord.from_attributes(pk, attributes or {}, source=slugs[source_id]),
        )
        for pk, profile_id, source_id, external_id, attributes, identifiers in SourceRecord.objects.filter(
            deleted_at__isnull=True, profile_id__isnull=False
        )
        .order_by("id")
        .values_list("id", "profile_id", "source_id", "external_id", "attributes", "identifiers")
    ]
    position = {record.id: n for n, record in enumerate(records)}
    never: dict[int, set[int]] = defaultdict(set)
    for a, b in NeverLink.objects.values_list("record_a_id", "record_b_id"):
        if a in position and b in position:
            never[position[a]].add(position[b])
            never[position[b]].add(position[a])
    active = match_model_active()
    plan = ResolutionPlan(len(records), len({r.profile_id for r in records}), active and active[0])
    members, how, plan.suggestions = records_group(records, rules, never, active)

    # 3. Compare with the profiles as they are.
    plan.groups = [[records[n].id for n in group] for group in members.values()]
    group_of = {n: root for root, group in members.items() for n in group}
    by_profile: dict[UUID, list[int]] = defaultdict(list)
    for n, record in enumerate(records):
        by_profile[record.profile_id].append(n)
    for profile_id, ns in by_profile.items():
        parts: dict[int, list[int]] = defaultdict(list)
        for n in ns:
            parts[group_of[n]].append(n)
        if len(parts) > 1:
            ordered = sorted(parts.values(), key=lambda part: min(part))  # the oldest record's part stays
            plan.splits.append(
                PlannedSplit(
                    profile_id,
                    [records[n].reference() for n in ordered[0]],
                    [[records[n].reference() for n in part] for part in ordered[1:]],
                )
            )
    for root, group in members.items():
        profiles = list(dict.fromkeys(records[n].profile_id for n in group))
        if len(profiles) > 1:
            links = how.get(root, {}).get("links", [])
            probabilistic = any(link["kind"] == RULE_PROBABILISTIC for link in links)
            plan.merges.append(
                PlannedMerge(
                    profiles,
                    [records[n].reference() for n in group],
                    "resolve-all:" + ("probabilistic" if probabilistic else "deterministic"),
                    {"command": "resolve --all", "links": links},
                )
            )
    return plan


def records_group(
    records: list[ResolutionRecord],
    rules: IdentifierRules,
    never: Mapping[int, set[int]],
    active: tuple[int, MatchModel] | None,
) -> tuple[dict[int, list[int]], dict[int, dict], list[tuple[int, int, dict, float]]]:
    """Steps 1 and 2 of the module docstring, in memory: the groups of record positions that are one person
    (root -> members), the evidence of each group's joins, and the pairs left for review (record ids and
    explanation). ``never``: per position, the positions it must never share a profile with; ``active``: the
    model (and its version id) to link with, or None for identifiers only. No database access."""
    never = defaultdict(set, never)
    parent = list(range(len(records)))
    members: dict[int, list[int]] = {n: [n] for n in range(len(records))}
    keys: dict[int, set] = {n: set() for n in range(len(records))}
    how: dict[int, dict] = {}  # group root -> evidence of the joins

    def find(n: int) -> int:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    def separated(left: int, right: int) -> bool:
        right_members = set(members[right])
        return any(never[n] & right_members for n in members[left])

    def clashes(n: int, group: int) -> bool:
        """Clearly different people sharing an identifier (``profiles.services.guard``, as the resolver)."""
        return any(identifier_shared_by_two(records[n].match, records[m].match) for m in members[group])

    def union(left: int, right: int) -> int:
        if len(members[left]) < len(members[right]):
            left, right = right, left
        parent[right] = left
        members[left] += members.pop(right)
        keys[left] |= keys.pop(right)
        links = how.pop(left, {}).get("links", []) + how.pop(right, {}).get("links", [])
        how[left] = {"links": links}
        return left

    # 1. Deterministic components, in the order the records were first stored.
    owner: dict[tuple[str, str], int] = {}
    for n, record in enumerate(records):
        found = list(dict.fromkeys(find(owner[key]) for key in record.keys if key in owner))
        # An identifier shared with a clearly different person links nothing; the others still link.
        found = [group for group in found if not clashes(n, group)]
        target = n
        if found:
            joined = set(record.keys).union(*(keys[g] for g in found))
            parts = [n, *found]
            if rules.violation(joined) is None and not any(
                separated(left, right) for i, left in enumerate(parts) for right in parts[i + 1 :]
            ):
                for group in found:
                    shared = sorted(
                        f"{k}:{v}" for k, v in record.keys if (k, v) in owner and find(owner[(k, v)]) == group
                    )
                    target = union(find(target), find(group))
                    how[target]["links"].append(
                        {"kind": "identifiers", "record": record.reference(), "identifiers": shared}
                    )
        target = find(target)
        for key in record.keys:
            if key not in owner and rules.violation([*keys[target], key]) is None:
                owner[key] = target
                keys[target].add(key)
    # 2. Probabilistic links between the components.
    suggestions: list[tuple[int, int, dict, float]] = []
    if active is not None and len(records) > 1:
        version_id, model = active
        result = link_records(
            [r.match for r in records],
            model=model,
            thresholds=DEFAULT_THRESHOLDS,
            cluster=False,
            joined=[find(n) for n in range(len(records))],  # already one profile: nothing to decide
        )
        limit = settings.CDP_MATCH_MAX_RECORDS_PER_SOURCE
        decided = sorted(result.decisions.items(), key=lambda item: -item[1].probability)
        for (i, j), decision in decided:
            left, right = find(i), find(j)
            if left == right or separated(left, right):
                continue
            explanation = decision.explanation() | {
                "model_version": version_id,
                "record": records[j].reference(),
                "candidate_record": records[i].reference(),
            }
            if decision.outcome == LINK:
                stopped, bridged = _guard(
                    [records[n].match for n in members[left]],
                    [records[n].match for n in members[right]],
                    limit,
                )
                violation = None if stopped else rules.violation(keys[left] | keys[right])
                if violation is not None:
                    kind, count, most = violation
                    stopped = f"merging would put {count} {kind} identifiers on one profile (limit {most})"
                if not stopped:
                    if bridged:
                        explanation["guard_bridged"] = bridged
                    root = union(left, right)
                    how[root]["links"].append({"kind": RULE_PROBABILISTIC, **explanation})
                    continue
                explanation |= {"outcome": REVIEW, "reason": f"above the link threshold, but {stopped}"}
            suggestions.append((records[j].id, records[i].id, explanation, decision.probability))

    return members, how, suggestions


@dataclass
class ResolutionApplied:
    merged_profiles: int = 0
    new_profiles: int = 0
    refused: list[str] = field(default_factory=list)
    suggestions: int = 0


def resolution_plan_apply(*, plan: ResolutionPlan, actor: str = "system") -> ResolutionApplied:
    """Split, then merge, as planned; store the planned suggestions not yet open. Each split and each merge
    is its own transaction (a long re-evaluation must not hold every profile's lock at once)."""
    from .unmerge import profile_unmerge  # the unmerge service builds on this app's models only

    applied = ResolutionApplied()
    match_keys_rebuild()
    new_profile_of: dict[int, UUID] = {}
    for split in plan.splits:
        for part in split.parts:
            ids = [record["id"] for record in part]
            with transaction.atomic():
                new = profile_unmerge(
                    profile_id=split.profile_id,
                    record_ids=ids,
                    actor=actor,
                    reason="resolve --all: the current identifier rules and matching model separate these records",
                )
            applied.new_profiles += 1
            new_profile_of.update(dict.fromkeys(ids, new.pk))
    for merge in plan.merges:
        ids = [record["id"] for record in merge.records]
        with transaction.atomic():
            profiles = set(SourceRecord.objects.filter(id__in=ids).values_list("profile_id", flat=True))
            try:
                profiles_merge(profile_ids=profiles, rule=merge.rule, evidence=merge.evidence, actor=actor)
            except MergeRefused as refusal:
                applied.refused.append(str(refusal))
                continue
        applied.merged_profiles += len(profiles) - 1
    with transaction.atomic():
        profile_of = dict(
            SourceRecord.objects.filter(
                id__in={pk for a, b, _, _ in plan.suggestions for pk in (a, b)}
            ).values_list("id", "profile_id")
        )
        open_pairs = {
            frozenset(pair)
            for pair in MatchSuggestion.objects.filter(status=MatchSuggestion.Status.OPEN).values_list(
                "record_id", "candidate_record_id"
            )
        }
        fresh = []
        for record_id, candidate_id, explanation, probability in plan.suggestions:
            pair = frozenset((record_id, candidate_id))
            profile, candidate = profile_of.get(record_id), profile_of.get(candidate_id)
            if pair in open_pairs or profile is None or candidate is None or profile == candidate:
                continue
            open_pairs.add(pair)
            fresh.append(
                MatchSuggestion(
                    record_id=record_id,
                    candidate_record_id=candidate_id,
                    profile_id=profile,
                    candidate_profile_id=candidate,
                    probability=probability,
                    explanation=explanation,
                )
            )
        MatchSuggestion.objects.bulk_create(fresh, ignore_conflicts=True)
        applied.suggestions = len(fresh)
    return applied


def plan_summary(plan: ResolutionPlan) -> dict:
    """Counts for a report."""
    return {
        "records": plan.records,
        "profiles_now": plan.profiles,
        "profiles_after": plan.profiles_after,
        "merges": len(plan.merges),
        "profiles_merging": plan.profiles_merging,
        "splits": len(plan.splits),
        "records_moving": sum(len(part) for split in plan.splits for part in split.parts),
        "suggestions": len(plan.suggestions),
        "rules": dict(Counter(merge.rule for merge in plan.merges)),
    }
