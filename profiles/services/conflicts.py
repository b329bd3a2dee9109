from collections.abc import Iterable

from profiles.models import ResolutionConflict


def conflicts_close(*, conflict_ids: Iterable[int], status: str) -> int:
    """A steward settled these conflicts (resolved or dismissed)."""
    if status not in {ResolutionConflict.Status.RESOLVED, ResolutionConflict.Status.DISMISSED}:
        raise ValueError(f"cannot close a conflict as {status!r}")
    return (
        ResolutionConflict.objects.filter(pk__in=list(conflict_ids))
        .exclude(status=status)
        .update(status=status)
    )
