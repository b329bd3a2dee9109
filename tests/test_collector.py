"""The garbage collector's tuning of the long-running processes (cdp/collector.py)."""

import gc

import pytest
from celery.signals import worker_process_init

from cdp.collector import collector_tune


@pytest.fixture
def collector_restored():
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_tuning_freezes_the_start_up_heap_and_sets_the_thresholds(settings, collector_restored):
    settings.CDP_GC_THRESHOLDS = (12_345, 7, 3)
    gc.unfreeze()

    collector_tune()

    assert gc.get_threshold() == (12_345, 7, 3)
    assert gc.get_freeze_count() > 10_000  # modules, Django, the test run: out of the collector's sight


def test_each_celery_worker_process_tunes_itself(settings, collector_restored):
    settings.CDP_GC_THRESHOLDS = (23_456, 5, 4)

    worker_process_init.send(sender=None)

    assert gc.get_threshold() == (23_456, 5, 4)


def test_the_wsgi_application_is_tuned_when_loaded(settings, collector_restored):
    import importlib

    import cdp.wsgi

    settings.CDP_GC_THRESHOLDS = (34_567, 6, 5)
    importlib.reload(cdp.wsgi)

    assert gc.get_threshold() == (34_567, 6, 5)


def test_without_thresholds_the_collector_is_left_alone(settings, collector_restored):
    settings.CDP_GC_THRESHOLDS = None
    gc.unfreeze()
    before = gc.get_threshold()

    collector_tune()

    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
