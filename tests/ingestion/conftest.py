import json

import pytest

from ingestion.pipeline import pipeline_steps


def failing_step(batch):
    """A pipeline step that breaks on records whose external id starts with BOOM (a bug, an outage)."""
    for item in batch.items:
        if item.external_id.startswith("BOOM"):
            raise RuntimeError("enrichment service unavailable")


@pytest.fixture
def broken_pipeline(settings):
    """Add ``failing_step`` to the pipeline; call the returned function to remove the cause again."""
    working = list(settings.CDP_PIPELINE)
    pipeline_steps.cache_clear()
    settings.CDP_PIPELINE = [*working, "tests.ingestion.conftest.failing_step"]

    def repair():
        settings.CDP_PIPELINE = working
        pipeline_steps.cache_clear()

    yield repair
    pipeline_steps.cache_clear()


@pytest.fixture
def post_body(source_client):
    """POST a raw body (anything, not only valid JSON) to a source's records endpoint as that source."""

    def post(source, body, content_type="application/json"):
        data = body if isinstance(body, str | bytes) else json.dumps(body)
        return source_client(source).post(
            f"/api/v1/sources/{source.slug}/records", data=data, content_type=content_type
        )

    return post
