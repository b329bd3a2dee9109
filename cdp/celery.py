"""The Celery app. Without a configured broker (CELERY_BROKER_URL) tasks run eagerly in-process."""

import os

from celery import Celery
from celery.signals import task_prerun, worker_init, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")

app = Celery("cdp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
def database_connections_check(sender=None, **kwargs) -> None:
    """Before a worker's task, close a database connection that is older than ``CONN_MAX_AGE`` or failed
    (Django's rules for a request). Celery's own fixup keeps it for ``CELERY_DB_REUSE_MAX`` tasks only."""
    if sender is None or getattr(sender.request, "is_eager", False):
        return  # an eager task runs inside the caller's request and connection
    from django.db import close_old_connections

    close_old_connections()


@worker_init.connect
@worker_process_init.connect
def collector_tune(**kwargs) -> None:
    """Tune the garbage collector once a worker is set up: in the main process before it forks its pool
    (the children inherit the frozen heap) and again in each child (``cdp.collector``)."""
    from cdp.collector import collector_tune

    collector_tune()
