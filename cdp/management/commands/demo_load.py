"""Load a small, curated demo dataset through the product's own intake path.

About fifty fictitious people, spread over a CRM, an ERP, a web shop and a social media account the way real
customer data is: the same person spelt differently (Jon / Jonathan, Müller / Mueller, accents, capitals), a
phone written three ways, an email that changed in the CRM while the ERP still has the old one, duplicate
contacts inside the CRM, an ERP account that points at its CRM contact, UK numbers read in a GB source, and
people known to one system only. Every email is on example.com/.org/.net and every number is a fictional one
(US 555-01xx, UK 07700 900xxx).

Records go through ``records_receive`` and the processing pipeline like any API request, so re-running is
safe: the records come back "unchanged" and no profile is created twice.
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from cdp.celery import app as celery_app
from ingestion.models import Source, SourceKey
from ingestion.selectors import batch_status
from ingestion.services import batch_process, records_receive, source_create, source_key_create
from profiles.models import Profile, SourceRecord

ADMIN_USERNAME = "admin"


@dataclass(frozen=True)
class DemoSource:
    slug: str
    kind: str
    name: str
    region: str


# Sent in this order: the web shop comes last so that one of its records joins two profiles made earlier
# (a merge, visible in the profile's "merges").
DEMO_SOURCES = (
    DemoSource("crm", Source.Kind.CRM, "CRM", "US"),
    DemoSource("erp", Source.Kind.ERP, "ERP", "US"),
    DemoSource("social", Source.Kind.SOCIAL, "Social media", "GB"),
    DemoSource("web", Source.Kind.WEB, "Web shop", "US"),
)


def _record(external_id: str, updated_at: str, identifiers: dict | None = None, **attributes) -> dict:
    record = {"external_id": external_id, "updated_at": updated_at, "attributes": attributes}
    if identifiers:
        record["identifiers"] = identifiers
    return record


CRM = [
    _record(
        "C-1001",
        "2025-05-02T09:15:00Z",
        first_name="Jonathan",
        last_name="Smith",
        email="jon.smith@example.com",
        phone="+1 (415) 555-0132",
        birth_date="1984-03-12",
        company="Acme Corp",
        job_title="Head of Procurement",
    ),
    _record(
        "C-1002",
        "2025-03-10T14:02:00Z",
        first_name="Anna",
        last_name="Müller",
        email="anna.mueller@example.net",
        phone="+1 212-555-0147",
        birth_date="1990-07-23",
        company="Nordlicht Design",
        city="New York",
        region="NY",
        country="US",
    ),
    _record(
        "C-1003",
        "2024-12-01T10:30:00Z",
        first_name="José",
        last_name="García",
        email="jose.garcia@example.org",
        phone="(305) 555-0178",
        city="Miami",
        region="FL",
        country="US",
    ),
    # Maria Rossi changed her email; the CRM has the new one, the ERP (below) still the old one.
    _record(
        "C-1004",
        "2025-06-18T08:45:00Z",
        first_name="Maria",
        last_name="Rossi",
        email="maria.rossi@example.com",
        phone="+1 617 555 0165",
        birth_date="1979-11-02",
        company="Rossi & Figli Imports",
        job_title="Owner",
    ),
    _record(
        "C-1005",
        "2023-09-14T16:20:00Z",
        first_name="Robert",
        last_name="Johnson",
        email="bob.johnson@example.com",
        phone="+1 312 555 0110",
        city="Chicago",
        region="IL",
        country="US",
    ),
    _record(
        "C-1006",
        "2024-02-27T11:00:00Z",
        first_name="Linda",
        last_name="Chen",
        email="linda.chen@example.org",
        phone="(206) 555-0124",
        company="Chen Analytics",
        job_title="Founder",
        city="Seattle",
        region="WA",
        country="US",
    ),
    _record(
        "C-1007",
        "2025-01-08T13:10:00Z",
        first_name="Priya",
        last_name="Patel",
        email="priya.patel@example.com",
        phone="+1 512 555 0191",
        company="Patel Consulting LLC",
        job_title="Managing Partner",
        city="Austin",
        region="TX",
        country="US",
    ),
    _record(
        "C-1008",
        "2024-10-19T09:05:00Z",
        first_name="Sarah",
        last_name="O'Connor",
        email="sarah.oconnor@example.net",
        phone="+1 503 555 0138",
        birth_date="1988-05-30",
    ),
    _record(
        "C-1009",
        "2024-08-03T15:45:00Z",
        first_name="William",
        last_name="Turner",
        email="bill.turner@example.com",
        phone="+1 720 555 0102",
        company="Turner Outdoor Supply",
    ),
    _record(
        "C-1010",
        "2025-02-11T10:00:00Z",
        first_name="Oliver",
        last_name="Bennett",
        email="oliver.bennett@example.net",
        city="London",
        country="GB",
    ),
    _record(
        "C-1011",
        "2024-06-21T12:30:00Z",
        first_name="Katherine",
        last_name="Nguyen",
        email="kate.nguyen@example.org",
        phone="+1 408 555 0150",
        job_title="Product Manager",
        company="Bayview Robotics",
    ),
    _record(
        "C-1012",
        "2024-04-04T08:00:00Z",
        first_name="François",
        last_name="Lefèvre",
        email="francois.lefevre@example.net",
        phone="+1 646 555 0129",
        city="New York",
        region="NY",
        country="US",
    ),
    _record(
        "C-1013",
        "2025-04-15T17:25:00Z",
        first_name="Zoë",
        last_name="Dubois",
        email="zoe.dubois@example.com",
        phone="+1 415 555 0187",
        birth_date="1995-01-17",
    ),
    _record(
        "C-1014",
        "2023-12-12T10:10:00Z",
        first_name="Søren",
        last_name="Nielsen",
        email="soren.nielsen@example.org",
        phone="+1 612 555 0144",
        city="Minneapolis",
        region="MN",
        country="US",
    ),
    _record(
        "C-1015",
        "2024-09-09T09:09:00Z",
        first_name="Elizabeth",
        last_name="Walker",
        email="liz.walker@example.com",
        phone="+1 404 555 0119",
        city="Atlanta",
        region="GA",
        country="US",
    ),
    _record(
        "C-1016",
        "2024-07-01T14:00:00Z",
        first_name="Michael",
        last_name="O'Brien",
        email="michael.obrien@example.net",
        phone="+1 617 555 0173",
        company="Harbor Freight Partners",
    ),
    _record(
        "C-1017",
        "2025-03-03T11:11:00Z",
        first_name="Aisha",
        last_name="Mohammed",
        email="aisha.mohammed@example.com",
        phone="+1 713 555 0155",
        job_title="Procurement Lead",
    ),
    _record(
        "C-1018",
        "2024-05-05T10:00:00Z",
        first_name="David",
        last_name="Kim",
        email="david.kim@example.org",
        phone="+1 213 555 0196",
        city="Los Angeles",
        region="CA",
        country="US",
    ),
    _record(
        "C-1019",
        "2023-11-20T16:40:00Z",
        first_name="Emily",
        last_name="Davis",
        email="emily.davis@example.com",
        job_title="Office Manager",
        company="Greenleaf Dental",
    ),
    _record(
        "C-1020",
        "2024-03-18T07:55:00Z",
        first_name="Hiroshi",
        last_name="Tanaka",
        email="hiroshi.tanaka@example.net",
        phone="+1 808 555 0107",
        city="Honolulu",
        region="HI",
        country="US",
    ),
    _record(
        "C-1021",
        "2025-01-27T12:00:00Z",
        first_name="Charlotte",
        last_name="Evans",
        email="charlotte.evans@example.org",
        phone="+44 7700 900456",
        city="Manchester",
        country="GB",
    ),
    _record(
        "C-1022",
        "2024-11-11T11:11:00Z",
        first_name="Lucas",
        last_name="Silva",
        email="lucas.silva@example.com",
        phone="+1 617 555 0126",
    ),
    _record(
        "C-1023",
        "2025-05-20T10:30:00Z",
        first_name="Fatima",
        last_name="Haddad",
        email="fatima.haddad@example.org",
        phone="+1 313 555 0168",
        city="Dearborn",
        region="MI",
        country="US",
    ),
    _record(
        "C-1024",
        "2024-01-15T09:00:00Z",
        first_name="Daniel",
        last_name="Murphy",
        email="dan.murphy@example.com",
        phone="+1 919 555 0163",
        company="Murphy & Sons Builders",
    ),
    # Same surname and city as Maria Rossi, but another person: nothing shared, so no link.
    _record(
        "C-1025",
        "2024-10-02T13:00:00Z",
        first_name="Sofia",
        last_name="Rossi",
        email="sofia.rossi@example.net",
        phone="+1 617 555 0140",
        city="Boston",
        region="MA",
        country="US",
    ),
    # Another John Smith, in Chicago: a same name is not the same person.
    _record(
        "C-1026",
        "2024-12-12T12:12:00Z",
        first_name="John",
        last_name="Smith",
        email="john.smith@example.net",
        phone="+1 312 555 0181",
        city="Chicago",
        region="IL",
        country="US",
    ),
    _record(
        "C-1027",
        "2023-06-30T10:00:00Z",
        first_name="Ana María",
        last_name="López",
        email="anamaria.lopez@example.org",
        phone="+1 210 555 0133",
        city="San Antonio",
        region="TX",
        country="US",
    ),
    _record(
        "C-1028",
        "2024-02-02T08:30:00Z",
        first_name="Peter",
        last_name="Schmidt",
        email="peter.schmidt@example.net",
        phone="+1 414 555 0115",
        company="Schmidt Precision Parts",
    ),
    # Duplicate contacts entered by another sales rep: same email in other capitals, same phone in another
    # format. Each ends on the profile of the original contact.
    _record(
        "C-1042",
        "2024-06-05T10:15:00Z",
        first_name="Bob",
        last_name="Johnson",
        email="Bob.Johnson@Example.com",
        company="Johnson Hardware",
    ),
    _record(
        "C-1043",
        "2024-08-22T15:30:00Z",
        first_name="Linda",
        last_name="Chen",
        phone="206.555.0124",
        company="Chen Analytics",
    ),
]

ERP = [
    _record(
        "E-50001",
        "2024-11-20T06:00:00Z",
        identifiers={"crm": "C-1001"},
        first_name="Jon",
        last_name="Smith",
        email="JON.SMITH@EXAMPLE.COM",
        phone="415.555.0132",
        company="ACME Corporation",
        address_line1="500 Market Street, Suite 1200",
        city="San Francisco",
        postcode="94105",
        region="CA",
        country="US",
        payment_terms="NET30",
    ),
    # The old email, the same phone in another format.
    _record(
        "E-50002",
        "2023-02-14T06:00:00Z",
        first_name="Maria",
        last_name="Rossi",
        email="m.rossi@example.org",
        phone="617-555-0165",
        company="Rossi & Figli Imports",
        address_line1="88 Hanover Street",
        city="Boston",
        postcode="02113",
        region="MA",
        country="US",
        payment_terms="NET15",
    ),
    _record(
        "E-50003",
        "2024-09-30T06:00:00Z",
        first_name="Jose",
        last_name="Garcia",
        phone="305-555-0178",
        address_line1="1450 Brickell Avenue",
        city="Miami",
        postcode="33131",
        region="FL",
        country="US",
    ),
    _record(
        "E-50004",
        "2022-08-08T06:00:00Z",
        first_name="SARAH",
        last_name="O'CONNOR",
        email="SARAH.OCONNOR@EXAMPLE.NET",
        address_line1="1200 NW Couch Street",
        city="PORTLAND",
        postcode="97209",
        region="OR",
        country="US",
    ),
    # The billing contact is a shared mailbox; only the CRM id ties the account to Priya.
    _record(
        "E-50005",
        "2025-01-09T06:00:00Z",
        identifiers={"crm": "C-1007"},
        first_name="Priya",
        last_name="Patel",
        email="ap@example.org",
        company="Patel Consulting LLC",
        address_line1="301 Congress Avenue",
        city="Austin",
        postcode="78701",
        region="TX",
        country="US",
        payment_terms="NET45",
    ),
    _record(
        "E-50006",
        "2024-08-04T06:00:00Z",
        first_name="Bill",
        last_name="Turner",
        email="bill.turner@example.com",
        company="Turner Outdoor Supply",
        address_line1="1701 Wynkoop Street",
        city="Denver",
        postcode="80202",
        region="CO",
        country="US",
    ),
    _record(
        "E-50007",
        "2024-03-01T06:00:00Z",
        first_name="Linda",
        last_name="Chen",
        phone="2065550124",
        company="Chen Analytics LLC",
        address_line1="400 Pine Street",
        city="Seattle",
        postcode="98101",
        region="WA",
        country="US",
    ),
    _record(
        "E-50008",
        "2023-05-17T06:00:00Z",
        first_name="Thomas",
        last_name="Becker",
        email="thomas.becker@example.net",
        phone="+1 216 555 0188",
        company="Becker Tools Inc",
        address_line1="1300 East 9th Street",
        city="Cleveland",
        postcode="44114",
        region="OH",
        country="US",
    ),
    _record(
        "E-50009",
        "2024-10-10T06:00:00Z",
        first_name="Grace",
        last_name="Liu",
        email="grace.liu@example.com",
        company="Liu Family Bakery",
        address_line1="845 Grant Avenue",
        city="San Francisco",
        postcode="94108",
        region="CA",
        country="US",
    ),
    _record(
        "E-50010",
        "2025-03-04T06:00:00Z",
        first_name="Aisha",
        last_name="Mohammed",
        email="aisha.mohammed@example.com",
        address_line1="910 Louisiana Street",
        city="Houston",
        postcode="77002",
        region="TX",
        country="US",
    ),
    _record(
        "E-50011",
        "2024-07-07T06:00:00Z",
        first_name="Rajesh",
        last_name="Kumar",
        email="rajesh.kumar@example.org",
        phone="+1 408 555 0199",
        company="Kumar Systems",
        address_line1="2855 Stevens Creek Blvd",
        city="Santa Clara",
        postcode="95050",
        region="CA",
        country="US",
    ),
    _record(
        "E-50012",
        "2024-07-02T06:00:00Z",
        first_name="Mike",
        last_name="OBrien",
        phone="(617) 555-0173",
        company="Harbor Freight Partners",
        address_line1="1 Seaport Lane",
        city="Boston",
        postcode="02210",
        region="MA",
        country="US",
    ),
    _record(
        "E-50013",
        "2023-03-23T06:00:00Z",
        first_name="Olga",
        last_name="Petrova",
        email="olga.petrova@example.net",
        company="Petrova Translations",
        address_line1="55 Water Street",
        city="Brooklyn",
        postcode="11201",
        region="NY",
        country="US",
    ),
    _record(
        "E-50014",
        "2024-01-16T06:00:00Z",
        first_name="Dan",
        last_name="Murphy",
        phone="919-555-0163",
        company="Murphy & Sons Builders",
        address_line1="421 Fayetteville Street",
        city="Raleigh",
        postcode="27601",
        region="NC",
        country="US",
    ),
    _record(
        "E-50015",
        "2024-02-03T06:00:00Z",
        first_name="PETER",
        last_name="SCHMIDT",
        email="Peter.Schmidt@example.net",
        address_line1="777 East Wisconsin Avenue",
        city="Milwaukee",
        postcode="53202",
        region="WI",
        country="US",
    ),
]

# A UK-based social media account: national numbers (07700 ...) are read as GB numbers.
SOCIAL = [
    _record(
        "S-7001",
        "2025-04-01T20:00:00Z",
        first_name="Jon",
        last_name="Smith",
        email="jon.smith@example.com",
        social_handle="@jonsmith_sf",
        city="San Francisco",
    ),
    _record(
        "S-7002",
        "2025-02-14T19:30:00Z",
        first_name="Anna",
        last_name="Müller",
        email="anna.mueller@example.net",
        social_handle="@anna.mueller.design",
    ),
    _record(
        "S-7003",
        "2025-01-05T18:00:00Z",
        first_name="Olly",
        last_name="Bennett",
        phone="07700 900123",
        social_handle="@olly_b",
        city="London",
        country="GB",
    ),
    _record(
        "S-7004",
        "2024-12-24T10:00:00Z",
        first_name="Charlotte",
        last_name="Evans",
        phone="07700 900456",
        social_handle="@charlotte.evans",
    ),
    _record(
        "S-7005",
        "2024-11-30T21:00:00Z",
        first_name="Lucas",
        last_name="Silva",
        email="lucas.silva@example.com",
        social_handle="@lucas_silva",
    ),
    _record(
        "S-7006",
        "2025-03-22T09:45:00Z",
        first_name="Björn",
        last_name="Larsson",
        email="bjorn.larsson@example.net",
        social_handle="@bjorn.larsson",
    ),
    _record(
        "S-7007",
        "2024-09-15T12:00:00Z",
        first_name="Harry",
        last_name="Clarke",
        phone="07700 900789",
        social_handle="@harryclarke",
        city="Leeds",
        country="GB",
    ),
    _record(
        "S-7008",
        "2024-10-31T22:00:00Z",
        first_name="Amelia",
        last_name="Wright",
        phone="07700900234",
        social_handle="@amelia_wright",
        city="Bristol",
        country="GB",
    ),
    _record(
        "S-7009",
        "2025-04-16T08:00:00Z",
        first_name="Zoe",
        last_name="Dubois",
        email="zoe.dubois@example.com",
        social_handle="@zoe_dbs",
    ),
    _record(
        "S-7010",
        "2025-05-01T07:30:00Z",
        first_name="Isla",
        last_name="Thompson",
        phone="07700 900567",
        social_handle="@isla.t",
        city="Edinburgh",
        country="GB",
    ),
    _record(
        "S-7011",
        "2024-08-18T16:00:00Z",
        first_name="Kenji",
        last_name="Watanabe",
        email="kenji.watanabe@example.org",
        social_handle="@kenji_w",
    ),
    _record(
        "S-7012",
        "2024-10-12T11:00:00Z",
        first_name="Grace",
        last_name="Liu",
        email="GRACE.LIU@example.com",
        social_handle="@liufamilybakery",
    ),
]

WEB = [
    _record(
        "W-9001",
        "2025-05-28T19:12:00Z",
        first_name="jon",
        last_name="smith",
        email="jon.smith@example.com",
        phone="4155550132",
        birth_date="1984-03-12",
        loyalty_tier="gold",
    ),
    _record(
        "W-9002",
        "2025-03-11T08:00:00Z",
        first_name="Anna",
        last_name="Mueller",
        email="Anna.Mueller@example.net",
        address_line1="210 Berry Street, Apt 4B",
        city="Brooklyn",
        postcode="11249",
        region="NY",
        country="US",
        loyalty_tier="silver",
    ),
    _record(
        "W-9003",
        "2024-12-02T21:40:00Z",
        first_name="Jose",
        last_name="Garcia",
        email="jose.garcia@example.org",
        loyalty_tier="bronze",
    ),
    # Joins the CRM contact (email) and the social profile (phone) into one person: a merge.
    _record(
        "W-9004",
        "2025-02-12T13:00:00Z",
        first_name="Oliver",
        last_name="Bennett",
        email="oliver.bennett@example.net",
        phone="+44 7700 900123",
        address_line1="14 Camden High Street",
        city="London",
        postcode="NW1 0JH",
        country="GB",
        loyalty_tier="silver",
    ),
    _record(
        "W-9005",
        "2024-06-22T20:00:00Z",
        first_name="Kate",
        last_name="Nguyen",
        email="kate.nguyen@example.org",
        phone="408-555-0150",
        loyalty_tier="gold",
    ),
    _record(
        "W-9006",
        "2025-04-16T09:00:00Z",
        first_name="Zoe",
        last_name="Dubois",
        email="ZOE.DUBOIS@example.com",
        loyalty_tier="bronze",
    ),
    _record(
        "W-9007",
        "2023-12-13T18:00:00Z",
        first_name="Soren",
        last_name="Nielsen",
        email="soren.nielsen@example.org",
    ),
    # Another email for Liz Walker, linked to her CRM contact by the phone.
    _record(
        "W-9008",
        "2024-09-10T18:30:00Z",
        first_name="Liz",
        last_name="Walker",
        email="lizw@example.net",
        phone="404.555.0119",
        loyalty_tier="silver",
    ),
    # Test accounts share test@example.com, a blocked value: it never links people.
    _record("W-9009", "2024-01-01T00:00:00Z", first_name="Test", last_name="User", email="test@example.com"),
    _record("W-9010", "2024-01-02T00:00:00Z", first_name="QA", last_name="Tester", email="test@example.com"),
    _record(
        "W-9011",
        "2025-05-05T10:10:00Z",
        first_name="Noah",
        last_name="Wilson",
        email="noah.wilson@example.com",
        phone="+1 503 555 0171",
        loyalty_tier="bronze",
    ),
    _record(
        "W-9012",
        "2025-02-02T14:00:00Z",
        first_name="Mia",
        last_name="Hernández",
        email="mia.hernandez@example.org",
        address_line1="2300 Mission Street",
        city="San Francisco",
        postcode="94110",
        region="CA",
        country="US",
    ),
    _record(
        "W-9013",
        "2024-11-29T23:00:00Z",
        first_name="Ethan",
        last_name="Brooks",
        email="ethan.brooks@example.net",
        phone="(702) 555-0112",
    ),
    _record(
        "W-9014",
        "2024-12-20T12:00:00Z",
        first_name="Ava",
        last_name="Martin",
        email="ava.martin@example.com",
        loyalty_tier="gold",
    ),
    _record(
        "W-9015",
        "2025-01-28T12:00:00Z",
        first_name="Charlotte",
        last_name="Evans",
        email="charlotte.evans@example.org",
        phone="+44 7700 900456",
        country="GB",
    ),
    _record(
        "W-9016",
        "2025-01-10T10:00:00Z",
        first_name="Priya",
        last_name="Patel",
        email="priya.patel@example.com",
        loyalty_tier="gold",
    ),
    _record(
        "W-9017",
        "2025-03-23T10:00:00Z",
        first_name="Bjorn",
        last_name="Larsson",
        email="bjorn.larsson@example.net",
        phone="+1 206 555 0193",
        city="Seattle",
        region="WA",
        country="US",
    ),
    _record(
        "W-9018",
        "2025-05-21T16:00:00Z",
        first_name="Fatima",
        last_name="Haddad",
        email="Fatima.Haddad@example.org",
        loyalty_tier="silver",
    ),
    _record(
        "W-9019",
        "2024-12-13T09:00:00Z",
        first_name="John",
        last_name="Smith",
        email="john.smith@example.net",
        address_line1="233 South Wacker Drive",
        city="Chicago",
        postcode="60606",
        region="IL",
        country="US",
    ),
    _record(
        "W-9020",
        "2025-04-04T04:04:00Z",
        first_name="Yuki",
        last_name="Sato",
        email="yuki.sato@example.com",
        phone="+1 503 555 0157",
    ),
    _record(
        "W-9021",
        "2024-08-08T08:08:00Z",
        first_name="Liam",
        last_name="O'Sullivan",
        email="liam.osullivan@example.net",
    ),
    _record(
        "W-9022",
        "2025-03-05T10:00:00Z",
        first_name="Aisha",
        last_name="Mohammed",
        email="aisha.mohammed@example.com",
        phone="713.555.0155",
        loyalty_tier="bronze",
    ),
    _record(
        "W-9023",
        "2024-11-12T11:00:00Z",
        first_name="Michael",
        last_name="O'Brien",
        email="Michael.OBrien@example.net",
    ),
    _record(
        "W-9024",
        "2024-05-06T12:00:00Z",
        first_name="David",
        last_name="Kim",
        email="david.kim@example.org",
        loyalty_tier="bronze",
    ),
]

DEMO_RECORDS = {"crm": CRM, "erp": ERP, "social": SOCIAL, "web": WEB}


@contextmanager
def _tasks_run_inline() -> Iterator[None]:
    """Process the demo right here, even when a broker is configured and no worker runs yet, without a log
    line per task drowning the summary."""
    previous = celery_app.conf.task_always_eager
    loggers = [logging.getLogger(name) for name in ("celery", "kombu")]
    levels = [logger.level for logger in loggers]
    celery_app.conf.task_always_eager = True
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = previous
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


class Command(BaseCommand):
    help = (
        "Load demo sources, about fifty people's records and an admin user (idempotent), then print how to "
        "log in and a curl example with a new web shop key."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--admin-password",
            default="",
            help="Password for the 'admin' superuser (default: a new random one).",
        )
        parser.add_argument(
            "--base-url", default="http://127.0.0.1:8000", help="Where the server will listen."
        )

    def handle(self, *args, admin_password: str, base_url: str, **options):
        outcomes: Counter[str] = Counter()
        sources = {}
        with _tasks_run_inline():
            for demo in DEMO_SOURCES:
                sources[demo.slug] = self._source_ensure(demo)
            for slug, records in DEMO_RECORDS.items():
                outcomes += self._send(sources[slug], records)

        password = admin_password or secrets.token_urlsafe(12)
        self._admin_ensure(password)
        _, key = source_key_create(
            source=sources["web"],
            scopes=[*SourceKey.DEFAULT_SCOPES, SourceKey.Scope.PROFILES_READ.value],
            name="demo",
        )
        self._summary(outcomes, password, key, base_url.rstrip("/"))

    def _source_ensure(self, demo: DemoSource) -> Source:
        source = Source.objects.filter(slug=demo.slug).first()
        if source is None:
            source = source_create(slug=demo.slug, kind=demo.kind, name=demo.name, default_region=demo.region)
        return source

    def _send(self, source: Source, records: list[dict]) -> Counter[str]:
        receipt = records_receive(source=source, records=records)
        # Normally processed when the intake transaction commits; inside an outer transaction (a test) that
        # has not happened yet, so process now. Either way a record is processed once.
        batch_process(batch_id=receipt.batch.pk)
        status = batch_status(receipt.batch)
        outcomes = Counter(status["outcomes"])
        for error in status["errors"]:
            outcomes["failed"] += 1
            self.stderr.write(f"{source.slug} {error['external_id']}: {error['field']} {error['reason']}")
        return outcomes

    def _admin_ensure(self, password: str) -> None:
        user = get_user_model().objects.filter(username=ADMIN_USERNAME).first()
        if user is None:
            user = get_user_model()(username=ADMIN_USERNAME, email="admin@example.com")
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password(password)
        user.save()

    def _summary(self, outcomes: Counter[str], password: str, key: str, base_url: str) -> None:
        records = SourceRecord.objects.filter(deleted_at__isnull=True).count()
        profiles = Profile.objects.filter(status=Profile.Status.ACTIVE).count()
        this_run = ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items()))
        curl = (
            f"curl -s -X POST {base_url}/api/v1/sources/web/records \\\n"
            f"    -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\n"
            """    -d '{"records": [{"external_id": "W-9100", "attributes": """
            """{"first_name": "Jonathan", "phone": "415 555 0132", "loyalty_tier": "platinum"}}]}'\n"""
            f"  curl -s '{base_url}/api/v1/profiles/lookup?type=phone&value=415.555.0132' \\\n"
            f"    -H 'Authorization: Bearer {key}'"
        )
        self.stdout.write(
            f"Demo data ready: {records} records from {Source.objects.count()} sources, resolved to {profiles} "
            f"profiles. This run: {this_run}.\n"
            "\n"
            f"  Admin     {base_url}/admin/\n"
            f"  API docs  {base_url}/api/docs/  (once logged in)\n"
            f"  Login     user {ADMIN_USERNAME}, password {password}\n"
            "\n"
            "Try the API with a new key of the web shop (shown once): send a record, then look the person up\n"
            "by a phone written another way.\n"
            f"  {curl}\n"
        )
