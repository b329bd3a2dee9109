"""The review queue: a data steward decides on a suggested match.

Accepting merges the two profiles the suggestion's records are on now (they may have moved since it was made);
rejecting records that the two records are different people, which the resolver and every later merge respect.
A decision is final: a suggestion decided, or made obsolete by what happened since, cannot be decided again.
"""

from __future__ import annotations

from uuid import UUID

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from profiles.models import MatchSuggestion, NeverLink, SourceRecord

from .merge import MergeRefused, profiles_merge
from .resolution import MAX_LOCK_ROUNDS, ResolutionRetry, profiles_lock

ACCEPT_RULE = "review:accepted"
REJECT_REASON = "review:rejected"


class ReviewError(Exception):
    """The decision cannot be taken; the message says why."""


class SuggestionNotFound(ReviewError):
    pass


class SuggestionClosed(ReviewError):
    """Already decided, or obsolete (the records are one profile already, or one is gone)."""


class SuggestionRefused(ReviewError):
    """Accepting would join people a steward separated, or break an identifier rule."""


def _record_profiles(suggestion: MatchSuggestion) -> dict[int, UUID | None]:
    return dict(
        SourceRecord.objects.filter(
            pk__in=[suggestion.record_id, suggestion.candidate_record_id], deleted_at__isnull=True
        ).values_list("pk", "profile_id")
    )


def _lock(suggestion_id: int) -> tuple[MatchSuggestion, UUID | None, UUID | None]:
    """Lock like a merge: the two profiles first (primary-key order), then the suggestion. Returns the locked
    suggestion and the live profiles of its record and candidate record (None for a record gone)."""
    suggestion = MatchSuggestion.objects.filter(pk=suggestion_id).first()
    if suggestion is None:
        raise SuggestionNotFound(f"no match suggestion {suggestion_id}")
    for _ in range(MAX_LOCK_ROUNDS):
        before = _record_profiles(suggestion)
        profiles_lock([pk for pk in before.values() if pk is not None])
        now = _record_profiles(suggestion)
        if now == before:  # records move only under their profile's lock: what we read holds now
            locked = MatchSuggestion.objects.select_for_update().get(pk=suggestion_id)
            return locked, now.get(suggestion.record_id), now.get(suggestion.candidate_record_id)
    raise ResolutionRetry("the suggestion's profiles kept changing while being locked")


def _open_or_obsolete(suggestion: MatchSuggestion, mine, theirs, actor: str) -> str:
    """Why the suggestion cannot be decided, or "". Marks it obsolete when that is the reason."""
    if suggestion.status != MatchSuggestion.Status.OPEN:
        by = f" by {suggestion.decided_by}" if suggestion.decided_by else ""
        return (
            f"suggestion {suggestion.pk} was already decided{by}: {suggestion.get_status_display().lower()}"
        )
    obsolete = ""
    if mine is None or theirs is None:
        obsolete = "one of its records was deleted"
    elif mine == theirs:
        obsolete = "its records are on one profile already"
    if obsolete:
        suggestion.status = MatchSuggestion.Status.OBSOLETE
        suggestion.decided_by, suggestion.decided_at = actor, timezone.now()
        suggestion.save(update_fields=["status", "decided_by", "decided_at"])
        return f"suggestion {suggestion.pk} is obsolete: {obsolete}"
    return ""


def _decide(suggestion: MatchSuggestion, status: str, actor: str) -> None:
    suggestion.status = status
    suggestion.decided_by, suggestion.decided_at = actor, timezone.now()
    suggestion.save(update_fields=["status", "decided_by", "decided_at", "profile", "candidate_profile"])


def suggestion_accept(*, suggestion_id: int, actor: str) -> MatchSuggestion:
    """The two records are one person: merge their profiles (rule ``review:accepted``, the suggestion's
    explanation as evidence). Other open suggestions between the same two profiles are settled with it.

    Raises ``SuggestionNotFound``, ``SuggestionClosed`` (decided or obsolete; an obsolete one is marked so),
    or ``SuggestionRefused`` (a never-link pair or an identifier limit stands in the way; nothing changes).
    """
    with transaction.atomic():
        suggestion, mine, theirs = _lock(suggestion_id)
        closed = _open_or_obsolete(suggestion, mine, theirs, actor)
        if not closed:
            evidence = {
                **suggestion.explanation,
                "suggestion": suggestion.pk,
                "record": suggestion.record_id,
                "candidate_record": suggestion.candidate_record_id,
            }
            try:
                survivor = profiles_merge(
                    profile_ids=[mine, theirs], rule=ACCEPT_RULE, evidence=evidence, actor=actor
                )
            except MergeRefused as exc:
                raise SuggestionRefused(f"cannot merge: {exc}") from exc
            suggestion.profile_id, suggestion.candidate_profile_id = mine, theirs
            _decide(suggestion, MatchSuggestion.Status.ACCEPTED, actor)
            _others_settle(suggestion, [mine, theirs], survivor, actor)
            return suggestion
    raise SuggestionClosed(closed)


def suggestion_reject(*, suggestion_id: int, actor: str) -> MatchSuggestion:
    """The two records are different people: record the never-link pair (reason ``review:rejected``), which
    the resolver and every later merge respect. The two profiles can no longer merge, so other open
    suggestions between them become obsolete.

    Raises ``SuggestionNotFound`` or ``SuggestionClosed``.
    """
    with transaction.atomic():
        suggestion, mine, theirs = _lock(suggestion_id)
        closed = _open_or_obsolete(suggestion, mine, theirs, actor)
        if not closed:
            a, b = sorted((suggestion.record_id, suggestion.candidate_record_id))
            NeverLink.objects.bulk_create(
                [NeverLink(record_a_id=a, record_b_id=b, reason=REJECT_REASON, actor=actor)],
                ignore_conflicts=True,
            )
            suggestion.profile_id, suggestion.candidate_profile_id = mine, theirs
            _decide(suggestion, MatchSuggestion.Status.REJECTED, actor)
            _others_settle(suggestion, [mine, theirs], None, actor)
            return suggestion
    raise SuggestionClosed(closed)


def _others_settle(suggestion: MatchSuggestion, profile_ids: list[UUID], survivor, actor: str) -> None:
    """After a decision on two profiles, the other open suggestions between those two profiles are obsolete:
    accepted, their records are one profile; rejected, the profiles can no longer merge."""
    mine, theirs = profile_ids
    between = Q(record__profile_id=mine, candidate_record__profile_id=theirs) | Q(
        record__profile_id=theirs, candidate_record__profile_id=mine
    )
    if survivor is not None:
        between = Q(record__profile_id=survivor, candidate_record__profile_id=survivor)
    MatchSuggestion.objects.filter(between, status=MatchSuggestion.Status.OPEN).exclude(
        pk=suggestion.pk
    ).update(status=MatchSuggestion.Status.OBSOLETE, decided_by=actor, decided_at=timezone.now())
