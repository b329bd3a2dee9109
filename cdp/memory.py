"""Personal data a process keeps in memory between requests and tasks, and how it is forgotten.

Hot paths memoise per process: normalised emails and phones (``ingestion.normalise``), names and addresses
in comparison form (``profiles.matching``), the matchable form of the records compared last
(``profiles.services.matching``). None of it may outlive an erasure:

- ``memory_forget`` empties every such memo of this process: each ``functools`` cache of the project's own
  modules, and the stores registered with ``memory_store``;
- the process that erases a person calls it when the erasure commits (``consent.dsr``);
- every other process (web processes, Celery workers) calls ``memory_forget_if_erased`` at the start of each
  request and each task (``consent.apps`` connects it): it reads when the latest erasure completed, at most
  once every ``CDP_MEMORY_CHECK_SECONDS`` (one second), and forgets when that changed since it last looked,
  or when it cannot tell.

So a person's values leave a busy process's memory by its next request or task after the erasure. What a
process memoises, it memoises for reuse across requests; clearing it costs a few cold lookups, nothing else.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from datetime import datetime

logger = logging.getLogger(__name__)

PROJECT_PACKAGES = frozenset({"cdp", "profiles", "ingestion", "consent"})
_stores: list[Callable[[], None]] = []
_UNKNOWN = object()  # the latest erasure, before the first look
_last = {"checked": None, "erasure": _UNKNOWN}


def memory_store(clear: Callable[[], None]) -> Callable[[], None]:
    """Register how to empty a per-process store of personal data other than a ``functools`` cache (a dict
    kept by a module, say); returns ``clear``."""
    _stores.append(clear)
    return clear


def memory_forget() -> int:
    """Empty this process's memos of personal data; returns how many caches and stores were emptied."""
    emptied = 0
    for name, module in list(sys.modules.items()):
        if module is None or name.partition(".")[0] not in PROJECT_PACKAGES:
            continue
        for value in list(vars(module).values()):
            # functools caches (lru_cache, cache) carry cache_clear; only the module's own, not imported ones
            if callable(getattr(value, "cache_clear", None)) and getattr(value, "__module__", None) == name:
                value.cache_clear()
                emptied += 1
    for clear in _stores:
        clear()
        emptied += 1
    return emptied


def memory_forget_if_erased(latest_erasure: Callable[[], datetime | None], *, every: float) -> bool:
    """Forget when an erasure completed since this process last looked, looking at most every ``every``
    seconds. The first call forgets without looking (a fresh process holds next to nothing; nothing says it
    predates every erasure); a look that fails forgets too. Returns whether it forgot."""
    now = time.monotonic()
    checked = _last["checked"]
    if checked is not None and now - checked < every:
        return False
    _last["checked"] = now
    if checked is None:
        memory_forget()
        return True
    try:
        erasure = latest_erasure()
    except Exception:  # a receiver of every request must not fail it: forget, the safe side
        logger.warning("could not read the latest erasure; forgetting this process's memos", exc_info=True)
        memory_forget()
        return True
    if erasure == _last["erasure"]:
        return False
    _last["erasure"] = erasure
    memory_forget()
    return True
