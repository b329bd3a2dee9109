"""Test settings: the real settings, with only what tests need changed."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key")
os.environ.setdefault("CDP_SUPPRESSION_KEY", "test-only-suppression-key")

from cdp.settings import *  # noqa: F403

# Tests run tasks inline; the worker test points a real worker at the real broker explicitly.
CELERY_TASK_ALWAYS_EAGER = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
# No look for erasures in the middle of a test (query counts stay exact); tests of it set their own interval.
CDP_MEMORY_CHECK_SECONDS = 3600.0
# The test run's own process keeps CPython's collector as it is: commands under test call collector_tune.
CDP_GC_THRESHOLDS = None
