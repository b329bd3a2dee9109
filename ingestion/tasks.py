"""Celery adapters: take ids, call one service. Safe to run twice: only pending records are processed and
the pipeline itself is idempotent."""

from celery import shared_task
from django.db import DatabaseError, InterfaceError


@shared_task(
    acks_late=True,
    autoretry_for=(DatabaseError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=8,
)
def batch_process_task(batch_id: str) -> dict:
    from .services import batch_process

    result = batch_process(batch_id=batch_id)
    return {"processed": result.processed, "quarantined": result.quarantined}
