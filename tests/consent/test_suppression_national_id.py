"""An erased person's national identifier follows them: a later record carrying only it (a source that knows
her by her social security number and her name, no email or phone) does not bring her back."""

import pytest
from django.db import connection

import ingestion.services
from consent.erasure import _mentioning_sql, _needles, subject_footprint
from consent.models import DataSubjectRequest, SuppressionEntry
from consent.pipeline import drop_suppressed
from consent.services import SUPPRESSED_REASON
from consent.suppression import national_id_key, suppression_hash
from ingestion.models import IdentifierType, InboundRecord
from ingestion.normalise import NormalisedRecord
from ingestion.pipeline import PipelineBatch, PipelineItem
from ingestion.services import records_receive
from profiles.matching.records import MatchRecord
from profiles.models import Profile, SourceRecord

from .conftest import statement
from .test_erasure import whole_database
from .test_erasure_payloads import fullwidth

pytestmark = pytest.mark.django_db

ANN = {
    "first_name": "Annabel",
    "last_name": "Zyxwortle",
    "email": "annabel.zyx@example.org",
    "national_id": "AB 12 34 56 C",
}
ANN_NATIONAL_ID = "ab123456c"  # as matching compares it


@pytest.fixture
def crm(vocabulary, make_source):
    return make_source("crm", "crm")


@pytest.fixture
def erp(vocabulary, make_source):
    return make_source("erp", "erp")


def erase_ann(dsr) -> dict:
    opened = dsr(
        "post", "", {"type": "erasure", "identifier": {"type": "email", "value": ANN["email"]}}, expect=201
    )
    dsr("post", f"/{opened['id']}/verify", {"method": "email link"})
    return dsr("post", f"/{opened['id']}/execute")


@pytest.fixture
def ann_erased(crm, erp, ingest, dsr):
    """Ann was known to the CRM with her national identifier, and erased (asked by her email)."""
    ingest(crm, [{"external_id": "CRM-ANN", "attributes": ANN}])
    return erase_ann(dsr)


def inbound_of(receipt) -> InboundRecord:
    return InboundRecord.objects.get(batch=receipt.batch)


@pytest.mark.parametrize(
    "spelling",
    ["ab123456c", "AB-12-34-56-C", "  Ab 1234 56c ", fullwidth("AB123456C")],
    ids=["folded", "dashes", "other-spaces-and-case", "full-width"],
)
def test_her_national_id_alone_in_any_spelling_is_dropped(ann_erased, erp, ingest, spelling):
    receipt = ingest(
        erp,
        [{"external_id": "ERP-7", "attributes": {"first_name": "Annabel", "national_id": spelling}}],
    )

    inbound = inbound_of(receipt)
    assert (inbound.status, inbound.outcome) == ("processed", "suppressed")
    assert inbound.payload is None and inbound.normalised is None  # not even the raw payload is kept
    assert not SourceRecord.objects.exists() and not Profile.objects.exists()
    entry = SuppressionEntry.objects.get(identifier_type="national_id")
    assert entry.hits == 1


def test_someone_with_another_national_id_is_ingested(ann_erased, erp, ingest):
    receipt = ingest(
        erp,
        [
            {"external_id": "ERP-8", "attributes": {"first_name": "Annabel", "national_id": "AB 12 34 56 D"}},
            {"external_id": "ERP-9", "attributes": {"first_name": "Carol", "national_id": "ZZ 99 88 77 Z"}},
        ],
    )

    assert not InboundRecord.objects.filter(batch=receipt.batch, outcome="suppressed").exists()
    assert SourceRecord.objects.count() == 2 and Profile.objects.count() == 2
    assert SuppressionEntry.objects.get(identifier_type="national_id").hits == 0


def test_the_erasure_lists_her_national_id_among_the_suppressed(ann_erased):
    request = DataSubjectRequest.objects.get(pk=ann_erased["id"])
    entries = set(SuppressionEntry.objects.filter(request=request).values_list("identifier_type", "key_hash"))

    assert entries == {
        ("email", suppression_hash("email", ANN["email"])),
        ("crm", suppression_hash("crm", "CRM-ANN")),
        ("national_id", suppression_hash("national_id", ANN_NATIONAL_ID)),
    }
    assert ann_erased["outcome"]["suppressed_identifiers"] == 3
    after = whole_database()
    assert ANN_NATIONAL_ID not in after and ANN["national_id"].casefold() not in after


def test_the_suppressed_form_is_the_one_matching_compares():
    for spelling in ["AB 12 34 56 C", "ab-123456-c", "Ab.12.34.56.C", 7200837, fullwidth("07200837")]:
        assert (
            national_id_key(spelling) == MatchRecord.from_attributes(0, {"national_id": spelling}).national_id
        )
    assert national_id_key(" - ") == "" and national_id_key(None) == ""


@pytest.fixture
def declared(vocabulary):
    """A source system that sends the national identifier as an identifier: the type is declared too."""
    return IdentifierType.objects.create(name="national_id", normaliser=IdentifierType.Normaliser.TEXT)


def test_a_declared_national_id_identifier_and_the_attribute_share_one_hash(
    declared, ann_erased, erp, ingest
):
    receipt = ingest(
        erp,
        [
            {
                "external_id": "ERP-7",
                "attributes": {"first_name": "Annabel"},
                "identifiers": {"national_id": "AB-123456-C"},
            }
        ],
    )

    assert inbound_of(receipt).outcome == "suppressed"
    assert SuppressionEntry.objects.get(identifier_type="national_id").hits == 1


def test_erased_by_her_declared_identifier_the_attribute_is_suppressed_too(declared, crm, erp, ingest, dsr):
    ingest(
        crm,
        [
            {
                "external_id": "CRM-ANN",
                "attributes": {"email": ANN["email"]},
                "identifiers": {"national_id": "AB 12 34 56 C"},
            }
        ],
    )
    erase_ann(dsr)

    receipt = ingest(erp, [{"external_id": "ERP-7", "attributes": {"national_id": "ab123456c"}}])

    assert inbound_of(receipt).outcome == "suppressed"


def test_a_consent_statement_for_her_declared_national_id_is_refused(declared, ann_erased, record_consents):
    answer = record_consents(statement(("national_id", "ab-12-34-56-c")))

    assert answer["recorded"] == []
    assert answer["rejected"] == [{"index": 0, "field": "identifier", "reason": SUPPRESSED_REASON}]


def items(*attributes: dict) -> list[PipelineItem]:
    return [
        PipelineItem(
            i,
            "upsert",
            f"X-{i}",
            version_at=None,
            record=NormalisedRecord(
                f"X-{i}", None, dict(attrs), [("crm", f"X-{i}"), ("email", f"x{i}@example.com")]
            ),
        )
        for i, attrs in enumerate(attributes)
    ]


def test_records_without_a_national_id_cost_no_extra_query(crm, django_assert_num_queries):
    batch = PipelineBatch(source=crm, items=items(*[{"first_name": "Ann", "city": "Leeds"}] * 50))
    # As before national identifiers were checked: the identifier locks (PostgreSQL only), the list.
    with django_assert_num_queries(2 if connection.vendor == "postgresql" else 1):
        drop_suppressed(batch)
    assert not any(item.finished for item in batch.items)


def test_national_ids_are_checked_in_the_same_query_as_identifiers(crm, django_assert_num_queries):
    batch = PipelineBatch(source=crm, items=items(*[{"national_id": f"AB {i:06} C"} for i in range(50)]))
    # Their locks are one statement more (PostgreSQL only, after the identifiers'); still one read of the list.
    with django_assert_num_queries(3 if connection.vendor == "postgresql" else 1):
        drop_suppressed(batch)
    assert ("national_id", "ab000007c") in batch.locked_keys


# --- Payloads that never became a record ----------------------------------------------------------------


@pytest.fixture
def pending(crm, erp, ingest, monkeypatch):
    """Ann's CRM record (processed), then payloads of the ERP received but not processed yet."""
    ingest(crm, [{"external_id": "CRM-ANN", "attributes": ANN}])
    monkeypatch.setattr(ingestion.services, "_schedule", lambda batch: None)
    payloads = {
        "hers, other spelling": {"national_id": "ab-1234-56c"},
        "hers, full-width": {"national_id": fullwidth("AB123456C"), "first_name": "Annabel"},
        "hers, in a custom field": {"ssn": "AB.12.34.56.C"},
        "someone else": {"national_id": "AB 12 34 56 D", "first_name": "Carol"},
        "a longer number holding hers": {"note": "XAB 12 34 56 C"},
    }
    ids = {}
    for n, (name, attributes) in enumerate(payloads.items()):
        receipt = records_receive(source=erp, records=[{"external_id": f"P-{n}", "attributes": attributes}])
        ids[name] = InboundRecord.objects.get(batch=receipt.batch).pk
    return ids


def test_erasure_finds_payloads_naming_her_national_id(pending):
    profile = Profile.objects.get()
    found = subject_footprint(profile_id=profile.pk, identifiers=[("email", ANN["email"])])

    assert found.national_ids == {ANN_NATIONAL_ID}
    hers = {pending[name] for name in pending if name.startswith("hers")}
    assert hers <= found.inbound_ids
    assert pending["someone else"] not in found.inbound_ids
    assert pending["a longer number holding hers"] not in found.inbound_ids


@pytest.mark.postgres
def test_on_postgresql_the_database_picks_the_payloads_naming_her_national_id(pending):
    needles = _needles({"crm-ann"}, {ANN_NATIONAL_ID})
    assert needles is not None

    candidates = set(
        InboundRecord.objects.filter(
            pk__in=_mentioning_sql(InboundRecord, needles, external_id=True)
        ).values_list("pk", flat=True)
    )

    assert {pending[name] for name in pending if name.startswith("hers")} <= candidates
    assert pending["someone else"] not in candidates


@pytest.mark.parametrize("placeholder", ["unknown", "N/A", "0000", "-"])
def test_a_placeholder_in_her_national_id_is_not_suppressed(crm, erp, ingest, dsr, placeholder):
    """A source that fills the field with a placeholder for everyone it lacks a number for: erasing her must
    not keep everybody else with that placeholder out."""
    ingest(crm, [{"external_id": "CRM-ANN", "attributes": {**ANN, "national_id": placeholder}}])
    erase_ann(dsr)

    receipt = ingest(
        erp, [{"external_id": "ERP-9", "attributes": {"first_name": "Carol", "national_id": placeholder}}]
    )

    assert not InboundRecord.objects.filter(batch=receipt.batch, outcome="suppressed").exists()
    assert not SuppressionEntry.objects.filter(identifier_type="national_id").exists()


def test_a_national_id_someone_else_carries_too_is_not_suppressed(crm, erp, ingest, dsr):
    """A number another person's record carries as well (a shared dummy "000 000 000", or a keying error
    on one side) does not identify her: it stays off the list, and that person's records stay."""
    ingest(crm, [{"external_id": "CRM-ANN", "attributes": {**ANN, "national_id": "123 456 789"}}])
    ingest(
        erp,
        [
            {
                "external_id": "ERP-BOB",
                "attributes": {"first_name": "Bob", "email": "bob@example.net", "national_id": "123-456-789"},
            }
        ],
    )
    assert Profile.objects.filter(status="active").count() == 2  # different people, not merged

    erase_ann(dsr)

    assert not SuppressionEntry.objects.filter(identifier_type="national_id").exists()
    assert SourceRecord.objects.filter(external_id="ERP-BOB").exists()
    receipt = ingest(
        erp, [{"external_id": "ERP-10", "attributes": {"first_name": "Bob", "national_id": "123456789"}}]
    )
    assert not InboundRecord.objects.filter(batch=receipt.batch, outcome="suppressed").exists()


def test_a_blocked_value_of_a_declared_national_id_type_is_not_suppressed(crm, ingest, dsr):
    IdentifierType.objects.update_or_create(
        name="national_id", defaults={"normaliser": "casefold", "blocked_values": ["999-99-9999"]}
    )
    ingest(crm, [{"external_id": "CRM-ANN", "attributes": {**ANN, "national_id": "999 99 9999"}}])
    erase_ann(dsr)

    assert not SuppressionEntry.objects.filter(identifier_type="national_id").exists()


def test_an_invalid_record_carrying_only_her_national_id_keeps_no_payload(ann_erased, erp):
    """Rejected at intake (a birth date that is no date), it would wait in the quarantine with her number."""
    receipt = records_receive(
        source=erp,
        records=[
            {"external_id": "ERP-7", "attributes": {"national_id": "ab-123456-C", "birth_date": "soon"}},
            {"external_id": "ERP-8", "attributes": {"national_id": "ZZ 99 88 77 Z", "birth_date": "soon"}},
        ],
    )

    assert [r.index for r in receipt.rejections] == [0, 1]  # both reported invalid to the sender
    hers, other = InboundRecord.objects.filter(batch=receipt.batch).order_by("index")
    assert (hers.payload, hers.status, hers.outcome) == (None, "processed", "suppressed")
    assert other.status == "quarantined" and other.payload["external_id"] == "ERP-8"
