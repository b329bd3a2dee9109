"""Erasure and process memory: the per-process memos of personal data (normalised emails and phones, names in
comparison form, matchable records) are emptied by the erasing process at once and by every other process
at its next request or task."""

import sys
import time

import pytest

from cdp import memory
from consent.models import DataSubjectRequest
from ingestion.normalise import normalise_email
from profiles.services import matching
from profiles.tasks import match_model_train_task

from .conftest import ANN
from .test_erasure import erase

pytestmark = pytest.mark.django_db


def memos() -> dict[str, int]:
    """Entries held by each functools cache of the project's modules, and by the matchable-record store."""
    held = {
        f"{name}.{attribute}": value.cache_info().currsize
        for name, module in list(sys.modules.items())
        if module is not None and name.partition(".")[0] in memory.PROJECT_PACKAGES
        for attribute, value in list(vars(module).items())
        if callable(getattr(value, "cache_info", None)) and getattr(value, "__module__", None) == name
    }
    held["profiles.services.matching._matchable"] = len(matching._matchable)
    held["profiles.services.matching._MODEL_CACHE"] = len(matching._MODEL_CACHE)
    return {name: count for name, count in held.items() if count}


@pytest.fixture
def looked_just_now(monkeypatch, settings):
    """This process last looked for erasures a moment ago and saw none; it looks again after a second."""
    monkeypatch.setattr(memory, "_last", {"checked": time.monotonic(), "erasure": None})
    settings.CDP_MEMORY_CHECK_SECONDS = 1.0


def test_the_erasing_process_forgets_her_values_when_the_erasure_commits(
    ann_everywhere, dsr, looked_just_now, django_capture_on_commit_callbacks
):
    assert "ingestion.normalise._email_normalised" in memos()  # processing her records memoised her email

    with django_capture_on_commit_callbacks(execute=True):
        erase(dsr, {"type": "email", "value": ANN["email"]})

    assert memos() == {}


def test_the_cached_model_with_her_name_frequencies_is_forgotten_too(looked_just_now, monkeypatch):
    # the active model as a process keeps it: its term frequencies name people
    monkeypatch.setitem(matching._MODEL_CACHE, 1, "a model with {'okafor': 3} in its frequencies")

    memory.memory_forget()

    assert "profiles.services.matching._MODEL_CACHE" not in memos()


def test_another_process_forgets_at_its_next_request_once_an_erasure_completed(
    client, looked_just_now, settings
):
    normalise_email("ann.other@example.com")
    client.get("/api/v1/profiles")
    assert memos() != {}  # nothing erased: memos stay, and the look waits a second

    DataSubjectRequest.objects.create(
        type=DataSubjectRequest.Type.ERASURE,
        status=DataSubjectRequest.Status.COMPLETED,
        identifiers=[],
        due_at="2026-12-31T00:00:00Z",
        original_due_at="2026-12-31T00:00:00Z",
        completed_at="2026-12-03T10:00:00Z",
    )
    client.get("/api/v1/profiles")
    assert memos() != {}  # looked less than a second ago

    settings.CDP_MEMORY_CHECK_SECONDS = 0.0
    client.get("/api/v1/profiles")
    assert memos() == {}

    normalise_email("ann.other@example.com")
    client.get("/api/v1/profiles")
    assert memos() != {}  # the same erasure is not forgotten twice


def test_a_worker_forgets_at_its_next_task(looked_just_now, monkeypatch, settings):
    settings.CDP_MEMORY_CHECK_SECONDS = 0.0
    monkeypatch.setattr(memory, "_last", {"checked": time.monotonic(), "erasure": "an older erasure"})
    normalise_email("ann.other@example.com")

    match_model_train_task.apply()

    assert memos() == {}


def test_a_process_that_cannot_tell_whether_someone_was_erased_forgets(looked_just_now):
    normalise_email("ann.other@example.com")

    def database_down():
        raise ConnectionError("the database is not answering")

    assert memory.memory_forget_if_erased(database_down, every=0.0) is True
    assert memos() == {}


def test_a_fresh_process_forgets_at_its_first_look_without_asking(monkeypatch):
    monkeypatch.setattr(memory, "_last", {"checked": None, "erasure": None})
    normalise_email("ann.other@example.com")

    def not_asked():
        raise AssertionError("the first look asks nothing")

    assert memory.memory_forget_if_erased(not_asked, every=3600.0) is True
    assert memos() == {}
    assert memory.memory_forget_if_erased(not_asked, every=3600.0) is False  # then waits its interval
