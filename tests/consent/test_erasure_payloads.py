"""Erasure reads the payloads that never became a record (pending, quarantined) and the rejected consent
statements: any of them naming the person, in any spelling that normalises to one of their identifiers, is
found. On PostgreSQL the database picks the candidates; the answer must be the same as reading every payload."""

import pytest

import ingestion.services
from consent.erasure import _mentioning_sql, _needles, subject_footprint
from consent.models import ConsentRejection
from ingestion.models import InboundRecord
from ingestion.services import records_receive

pytestmark = pytest.mark.django_db


def fullwidth(text: str) -> str:
    """The full-width forms of ASCII letters and digits (as East Asian keyboards type them)."""
    return "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in text)


ANN_KEYS = [("email", "ann.lee@example.org"), ("phone", "+442079460958"), ("crm", "CRM-Straße-7")]

NAMING_HER = {
    "email, other case and spaces": {"email": "  ANN.Lee@EXAMPLE.org "},
    "email, full-width domain": {"note": f"ann.lee@{fullwidth('EXAMPLE')}.org"},
    "phone in a sentence": {"note": "call +44 (0)20 7946-0958"},
    "phone, full-width digits": {"phone": fullwidth("+44 20 7946 0958")},
    "phone, Arabic-Indic digits": {"phone": "+٤٤ ٢٠ ٧٩٤٦ ٠٩٥٨"},
    "phone with an extension": {"phone": "+44 20 7946 0958 ext. 12"},
    "source id, case folded": {"ref": "crm-STRASSE-7"},
    "source id, as a key": {"refs": {"CRM-Straße-7": True}},
    "deep in a list": {"history": [{"old": ["x", {"contact": "Ann.Lee@example.org"}]}]},
}
NOT_HER = {
    "someone else": {"email": "ann.lee@example.com", "phone": "+44 20 7946 0000"},
    "her name only": {"first_name": "Ann", "last_name": "Lee"},
    "a number ending like hers, too short": {"phone": "+1 460958"},
}


@pytest.fixture
def pending(vocabulary, make_source, monkeypatch):
    """Payloads received but not processed yet (and one quarantined at intake), by description."""
    monkeypatch.setattr(ingestion.services, "_schedule", lambda batch: None)
    shop = make_source("shop", "web")
    make_source("crm", "crm")
    ids = {}
    for n, (name, attributes) in enumerate({**NAMING_HER, **NOT_HER}.items()):
        records_receive(source=shop, records=[{"external_id": f"P-{n}", "attributes": attributes}])
        ids[name] = InboundRecord.objects.get(external_id=f"P-{n}").pk
    receipt = records_receive(
        source=shop,
        records=[
            {
                "external_id": "Q-1",
                "attributes": {"email": "ANN.LEE@example.org"},
                "identifiers": {"x": ["1"]},
            }
        ],
    )
    ids["quarantined"] = InboundRecord.objects.get(batch=receipt.batch).pk
    return ids


def test_every_spelling_of_her_identifiers_is_found_and_nothing_else(pending):
    found = subject_footprint(profile_id=None, identifiers=ANN_KEYS)

    assert InboundRecord.objects.get(pk=pending["quarantined"]).status != "processed"
    expected = {pending[name] for name in NAMING_HER} | {pending["quarantined"]}
    assert found.inbound_ids == expected


def test_rejected_consent_statements_naming_her_are_found(vocabulary):
    hers = ConsentRejection.objects.create(
        recorded_by="source:shop", index=0, payload={"identifier": {"value": "+44 20 7946 0958"}}, reason="x"
    )
    ConsentRejection.objects.create(
        recorded_by="source:shop", index=1, payload={"value": "bob@x.org"}, reason="x"
    )
    ConsentRejection.objects.create(recorded_by="source:shop", index=2, payload=None, reason="x")

    found = subject_footprint(profile_id=None, identifiers=ANN_KEYS)

    assert found.rejection_ids == {hers.pk}


@pytest.mark.postgres
def test_on_postgresql_the_database_picks_the_candidates(pending):
    values = {value for _, value in ANN_KEYS} | {value.casefold() for _, value in ANN_KEYS}
    needles = _needles(values)
    assert needles is not None

    candidates = set(
        InboundRecord.objects.filter(
            pk__in=_mentioning_sql(InboundRecord, needles, external_id=True)
        ).values_list("pk", flat=True)
    )

    assert {pending[name] for name in NAMING_HER} <= candidates
    assert pending["someone else"] not in candidates
    assert pending["her name only"] not in candidates


@pytest.mark.postgres
def test_a_value_that_does_not_fold_to_ascii_reads_every_payload_in_python():
    assert _needles({"ann@bücher.example"}) is None
