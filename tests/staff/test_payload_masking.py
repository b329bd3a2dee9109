"""Raw payloads in the admin (source records, records as received) are masked by the viewer's role, the way
the API masks profiles: under the source's own field names, in identifiers and in tracking traits."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from cdp import roles
from ingestion.models import InboundRecord
from profiles.masking import DEFAULT_PII_MASKING, mask_payload
from profiles.models import SourceRecord

SUPPORT = DEFAULT_PII_MASKING[roles.SUPPORT_AGENT]
SHOP_MAPPING = {"EMail": "email", "Tel": "phone", "Street": "address_line1", "DOB": "birth_date"}
SHOP_RECORD = {
    "external_id": "S1",
    "attributes": {
        "FirstName": "Nora",
        "EMail": "nora.finch@example.org",
        "Tel": "(415) 555-0177",
        "Street": "7 Elm Row",
        "DOB": "1990-07-14",
        "referrer": "friend nora.f@mail.example",
        "backup_contact": "nora.f@mail.example",
    },
    "identifiers": {"email": ["nora.work@example.com"], "phone": "+1 415 555 0178"},
}
CLEAR = (
    "nora.finch@example.org",
    "(415) 555-0177",
    "7 Elm Row",
    "1990-07-14",
    "nora.work@example.com",
    "+1 415 555 0178",
    "+14155550177",
    "nora.f@mail.example",
)


def test_a_payload_is_masked_under_the_source_field_names_and_identifier_types():
    masked = mask_payload(SHOP_RECORD, SUPPORT, SHOP_MAPPING)

    assert masked["attributes"] == {
        "FirstName": "Nora",
        "EMail": "n•••@example.org",
        "Tel": "•••0177",
        "Street": "•••",
        "DOB": "1990-**-**",
        "referrer": "friend n•••@mail.example",  # custom fields: every email address in them
        "backup_contact": "n•••@mail.example",
    }
    assert masked["identifiers"] == {"email": ["n•••@example.com"], "phone": "•••0178"}
    assert SHOP_RECORD["attributes"]["EMail"] == "nora.finch@example.org"  # the evidence itself is untouched


def test_tracking_traits_and_their_address_are_masked():
    message = {
        "type": "identify",
        "userId": "nora.finch@example.org",
        "traits": {
            "firstName": "Nora",
            "birthday": "1990-07-14",
            "phone": "415 555 0177",
            "address": {"street": "7 Elm Row", "city": "Leeds"},
        },
        "context": {"traits": {"email": "nora.finch@example.org"}},
    }

    masked = mask_payload(message, SUPPORT)

    assert masked["userId"] == "n•••@example.org"
    assert masked["traits"] == {
        "firstName": "Nora",
        "birthday": "1990-**-**",
        "phone": "•••0177",
        "address": {"street": "•••", "city": "Leeds"},
    }
    assert masked["context"]["traits"]["email"] == "n•••@example.org"


def test_nothing_is_masked_for_a_role_that_sees_everything():
    assert mask_payload(SHOP_RECORD, {}, SHOP_MAPPING) == SHOP_RECORD


@pytest.fixture
def nora(make_source, ingest):
    shop = make_source("shop", "web", field_mapping=SHOP_MAPPING)
    ingest(shop, [SHOP_RECORD])
    return SourceRecord.objects.get(source=shop, external_id="S1")


@pytest.fixture
def support_with_record_access(client_as):
    """A support agent whose group staff allowed to open source records and received payloads."""
    group = Group.objects.get(name=roles.SUPPORT_AGENT)
    group.permissions.add(
        *Permission.objects.filter(codename__in=["view_sourcerecord", "view_inboundrecord"])
    )
    return client_as(roles.SUPPORT_AGENT)


def pages(client, record: SourceRecord) -> list[str]:
    inbound = InboundRecord.objects.get(source=record.source, external_id=record.external_id)
    urls = [
        reverse("admin:profiles_sourcerecord_change", args=[record.pk]),
        reverse("admin:ingestion_inboundrecord_change", args=[inbound.pk]),
    ]
    responses = [client.get(url) for url in urls]
    assert [r.status_code for r in responses] == [200, 200]
    return [r.content.decode() for r in responses]


def test_a_support_agent_sees_source_payloads_masked_in_the_admin(nora, support_with_record_access):
    record_page, inbound_page = pages(support_with_record_access, nora)

    for page in (record_page, inbound_page):
        for value in CLEAR:
            assert value not in page
        assert "n•••@example.org" in page and "1990-**-**" in page
        assert "Nora" in page  # names are not masked for this role
    assert "•••0177" in record_page  # the normalised attributes and identifiers too


def test_a_data_steward_sees_source_payloads_in_clear(nora, client_as):
    record_page, inbound_page = pages(client_as(roles.DATA_STEWARD), nora)

    for page in (record_page, inbound_page):
        assert "nora.finch@example.org" in page and "7 Elm Row" in page and "1990-07-14" in page
    assert "+14155550177" in record_page
