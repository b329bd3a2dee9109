"""The Celery app's database connection handling around a worker's tasks."""

import time
from types import SimpleNamespace

import pytest
from django.db import connection

from cdp.celery import database_connections_check

pytestmark = pytest.mark.django_db(transaction=True)


def task(*, eager: bool) -> SimpleNamespace:
    return SimpleNamespace(request=SimpleNamespace(is_eager=eager))


def test_a_workers_connection_is_kept_for_the_next_task_while_young():
    connection.ensure_connection()
    before = connection.connection

    database_connections_check(sender=task(eager=False))

    assert connection.connection is before


@pytest.mark.postgres  # SQLite's in-memory test database is never closed
def test_a_workers_connection_past_its_age_is_closed_before_the_next_task():
    connection.ensure_connection()
    connection.close_at = time.monotonic() - 1

    database_connections_check(sender=task(eager=False))

    assert connection.connection is None


def test_an_eager_task_leaves_the_callers_connection_alone():
    connection.ensure_connection()
    connection.close_at = time.monotonic() - 1

    database_connections_check(sender=task(eager=True))

    assert connection.connection is not None
