"""The consent check reads a person in one statement on PostgreSQL, with the vocabulary (purposes, channels,
identifier types) cached in the process: the cache must never answer with an outdated vocabulary, and the one
statement must answer exactly as the plain ORM reads do."""

import itertools
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from consent import selectors
from consent.models import Channel, Purpose
from ingestion.models import IdentifierType
from profiles.models import Profile
from tests.consent.conftest import statement

ANN_EMAIL = ("email", "ann@example.org")
ANN_PHONE = ("phone", "+14155550132")


@pytest.fixture
def ann(consent_source, ingest):
    ingest(
        consent_source,
        [{"external_id": "A1", "attributes": {"email": "Ann@Example.org", "phone": "415 555 0132"}}],
    )
    return Profile.objects.get(records__external_id="A1")


def test_an_edited_purpose_is_seen_by_the_next_check(ann, check):
    """Edited as another process would (a queryset update: no signal reaches this process's cache)."""
    assert check(str(ann.pk), purpose="analytics", channel="web")["rule"] == "not_required"

    Purpose.objects.filter(slug="analytics").update(requires_consent=True)

    answer = check(str(ann.pk), purpose="analytics", channel="web")
    assert (answer["allowed"], answer["rule"]) == (False, "no_consent")


def test_a_purpose_or_channel_added_or_removed_is_seen_by_the_next_check(ann, check, record_consents):
    check(str(ann.pk))  # the vocabulary is cached now
    Purpose.objects.create(slug="surveys", name="Surveys", requires_consent=True)
    Channel.objects.create(slug="whatsapp", name="WhatsApp")
    record_consents(statement(ANN_PHONE, purpose="surveys", channel="whatsapp"))

    assert check(str(ann.pk), purpose="surveys", channel="whatsapp")["allowed"] is True

    Channel.objects.filter(slug="post").delete()
    assert check(str(ann.pk), channel="post", expect=400)["errors"][0]["field"] == "channel"


def test_an_identifier_type_declared_after_the_cache_was_filled_is_known(ann, check, record_consents):
    check(str(ann.pk))
    IdentifierType.objects.create(name="loyalty_card", normaliser=IdentifierType.Normaliser.CASEFOLD)
    record_consents(statement(("loyalty_card", "LC-77")))

    answer = check({"type": "loyalty_card", "value": "lc-77"})
    assert (answer["allowed"], answer["profile"]) == (True, None)


def test_a_past_moment_leaves_out_entries_recorded_later(ann, check, record_consents):
    record_consents(statement(ANN_EMAIL, effective_at="2020-01-01T00:00:00Z"))
    before = check({"type": "phone", "value": "415 555 0132"}, at="2020-06-01T00:00:00Z")
    now = check({"type": "phone", "value": "415 555 0132"})

    assert (before["rule"], now["rule"]) == ("no_consent", "granted")


@pytest.mark.postgres
def test_a_check_is_one_statement_on_postgresql(ann, record_consents, consent_client):
    record_consents(statement(ANN_EMAIL), statement(ANN_PHONE, channel="sms", decision="denied"))
    selectors.vocabulary_load()

    with CaptureQueriesContext(connection) as work:
        subject = selectors.subject_resolve(identifier={"type": "phone", "value": "(415) 555-0132"})
        decision = selectors.consent_check(subject=subject, purpose="marketing", channel="email")
    body = json.dumps({"profile": str(ann.pk), "purpose": "marketing", "channel": "email"})
    with CaptureQueriesContext(connection) as request:
        response = consent_client.post("/api/v1/consent/check", data=body, content_type="application/json")

    assert decision.allowed is True and response.json()["allowed"] is True
    assert len(work.captured_queries) == 1
    assert len(request.captured_queries) <= 3  # the key, perhaps its last use, the check


@pytest.mark.postgres
def test_the_one_statement_answers_as_the_orm_reads_do(
    consent_source, make_source, ingest, record_consents, dsr, vocabulary
):
    """People with merges, tombstones, entries on identifiers, on profile ids and on merged-away ids,
    expired grants, an unknown identifier and a restriction: every purpose x channel, now and in the past."""
    crm = make_source("crm", "crm")
    ingest(consent_source, [{"external_id": "W1", "attributes": {"email": "eve@example.org"}}])
    first = Profile.objects.get(records__external_id="W1")
    ingest(crm, [{"external_id": "C1", "attributes": {"phone": "+1 617 555 0111"}}])
    ingest(crm, [{"external_id": "C2", "attributes": {"email": "fay@example.org"}}])
    record_consents(
        statement(("email", "eve@example.org"), effective_at="2025-01-01T00:00:00Z"),
        statement(("phone", "+16175550111"), channel="sms", effective_at="2025-01-01T00:00:00Z"),
        statement(
            ("email", "eve@example.org"),
            purpose="personalisation",
            channel=None,
            effective_at="2025-01-01T00:00:00Z",
            expires_at="2025-06-01T00:00:00Z",
        ),
        statement(profile=first.pk, purpose="analytics", channel=None, decision="denied"),
        statement(("phone", "+16175550111"), purpose="sale_sharing", decision="opt_out_sale_sharing"),
        statement(("email", "nobody@example.org"), effective_at="2025-03-01T00:00:00Z"),
        statement(("email", "fay@example.org"), decision="objection_direct_marketing", channel=None),
    )
    ingest(
        crm, [{"external_id": "C3", "attributes": {"phone": "+1 617 555 0111", "email": "eve@example.org"}}]
    )
    # Gus changes his email: the opt-out given through the old one keeps reaching him.
    ingest(
        crm,
        [
            {
                "external_id": "G1",
                "updated_at": "2025-01-01T00:00:00Z",
                "attributes": {"email": "gus@example.org"},
            }
        ],
    )
    record_consents(
        statement(("email", "gus@example.org"), purpose="sale_sharing", decision="opt_out_sale_sharing")
    )
    ingest(
        crm,
        [
            {
                "external_id": "G1",
                "updated_at": "2025-06-01T00:00:00Z",
                "attributes": {"email": "gus@new.example"},
            }
        ],
    )
    fay = Profile.objects.get(records__external_id="C2")
    opened = dsr(
        "post",
        "",
        {"type": "restriction", "identifier": {"type": "email", "value": "fay@example.org"}},
        expect=201,
    )
    dsr("post", f"/{opened['id']}/verify", {"method": "phone call"})
    dsr("post", f"/{opened['id']}/execute")
    assert Profile.objects.filter(status="merged").exists()

    questions = [
        {"profile_id": str(first.pk)},  # merged away by now
        {"profile_id": str(fay.pk)},
        {"identifier": {"type": "phone", "value": "(617) 555-0111"}},
        {"identifier": {"type": "email", "value": "NOBODY@example.org"}},
        {"identifier": {"type": "email", "value": "stranger@example.org"}},
        {"identifier": {"type": "email", "value": "gus@new.example"}},
    ]
    purposes = list(Purpose.objects.values_list("slug", flat=True))
    channels = list(Channel.objects.values_list("slug", flat=True))
    for who, at in itertools.product(questions, [None, *map(_moment, ["2025-02-01", "2099-01-01"])]):
        fast = selectors.subject_resolve(**who)
        plain = selectors._subject_resolve_orm(
            profile_id=who.get("profile_id"), identifier=who.get("identifier")
        )
        assert fast.snapshot is not None and plain.snapshot is None
        assert (fast.profile_id, set(fast.profile_ids), set(fast.identifiers)) == (
            plain.profile_id,
            set(plain.profile_ids),
            set(plain.identifiers),
        )
        for purpose, channel in itertools.product(purposes, channels):
            answers = [
                selectors.decision_as_dict(
                    selectors.consent_check(subject=subject, purpose=purpose, channel=channel, at=at)
                )
                for subject in (fast, plain)
            ]
            assert answers[0] == answers[1], (who, purpose, channel, at)


def _moment(day: str):
    from ingestion.normalise import parse_timestamp

    return parse_timestamp(f"{day}T00:00:00Z")
