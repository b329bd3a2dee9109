"""Python's cyclic garbage collector, tuned for the long-running processes: web processes and Celery workers.

CPython's defaults collect the youngest generation every 700 net allocations and the whole heap whenever the
objects that survived grew by a quarter. A resolution worker allocates hundreds of thousands of objects a
second (rows read, records, candidates) and keeps large structures alive (Django itself, the matcher's
caches, a training sample). Timed with ``gc.callbacks`` on ``bench.ingest`` (100,000 records, 2 workers),
each worker spent 7.8 s in the collector, 40 of its full collections taking 150 ms each: a quarter of the
run. Nearly all of that garbage is freed by reference counting the moment it is dropped; the collector only
has to find reference cycles, which are rare here.

So each process, once started: ``gc.freeze()`` moves what it holds after start-up (modules, Django's
registries, settings) out of the collector's sight for good, and ``CDP_GC_THRESHOLDS`` makes collections
rarer (CPython's defaults are 700, 10, 10). The collector's time per worker fell to about 1.6 s, and the
benchmark's end-to-end rate rose by 15 to 39 % (three interleaved pairs of runs; bench/README.md).
"""

from __future__ import annotations

import gc

from django.conf import settings


def collector_tune() -> None:
    """Freeze the start-up heap and set the thresholds (see the module docstring). Call once the process is
    set up: at the end of the WSGI module, in each Celery worker process, in the commands that work through
    many records."""
    if settings.CDP_GC_THRESHOLDS is None:  # left alone (the test settings)
        return
    gc.freeze()
    gc.set_threshold(*settings.CDP_GC_THRESHOLDS)
