from collections.abc import Iterable
from uuid import UUID

from django.db import transaction

from profiles.models import ResolutionConflict

from .merge import profiles_merge


def conflicts_close(*, conflict_ids: Iterable[int], status: str) -> int:
    """A steward settled these conflicts (resolved or dismissed)."""
    if status not in {ResolutionConflict.Status.RESOLVED, ResolutionConflict.Status.DISMISSED}:
        raise ValueError(f"cannot close a conflict as {status!r}")
    return (
        ResolutionConflict.objects.filter(pk__in=list(conflict_ids))
        .exclude(status=status)
        .update(status=status)
    )


def conflict_merge(*, conflict_id: int, actor: str) -> UUID:
    """A steward decided that the link the resolver refused is right: merge the record's profile with the
    profiles it would have linked, audited as ``review:conflict``, and close the conflict as resolved.

    Raises ``MergeRefused`` when a never-link pair or an identifier limit still forbids it (the guard against
    different people sharing an identifier is what the steward overrules here; those two are not).
    """
    with transaction.atomic():
        conflict = ResolutionConflict.objects.select_for_update().get(pk=conflict_id)
        if conflict.status != ResolutionConflict.Status.OPEN:
            raise ValueError(f"conflict {conflict_id} is already {conflict.status}")
        survivor = profiles_merge(
            profile_ids=[conflict.profile_id, *(UUID(pk) for pk in conflict.other_profiles)],
            rule="review:conflict",
            evidence={"conflict": conflict.pk, "record": conflict.record_id, "reason": conflict.reason},
            actor=actor,
        )
        ResolutionConflict.objects.filter(pk=conflict.pk).update(status=ResolutionConflict.Status.RESOLVED)
    return survivor
