"""Celery adapters of the profiles app: take arguments, call one service, safe to run twice."""

from celery import shared_task
from django.db import DatabaseError, InterfaceError


@shared_task(
    acks_late=True,
    autoretry_for=(DatabaseError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=8,
)
def golden_records_refresh_task(all_profiles: bool = False) -> int:
    """Recompute golden records after a survivorship rule changed (only the stale ones, unless told)."""
    from .services.refresh import golden_records_refresh

    return golden_records_refresh(all_profiles=all_profiles)


@shared_task(acks_late=True, autoretry_for=(DatabaseError, InterfaceError), retry_backoff=True, max_retries=5)
def match_model_train_task() -> int | None:
    """Estimate the matching model when one is due (a no-op otherwise); returns the new version's id."""
    from .services.matching import match_model_train_if_due

    training = match_model_train_if_due()
    return training.version.pk if training else None
