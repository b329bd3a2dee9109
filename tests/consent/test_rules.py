"""The effective-consent rules, as a table: pure functions, no database."""

from datetime import UTC, datetime, timedelta

import pytest

from consent.rules import (
    DENIED,
    GRANTED,
    OBJECTION,
    OPT_OUT_SALE,
    WITHDRAWN,
    Entry,
    PurposeRule,
    decide,
    restrictions_in_force,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=100)
EMAIL = ("email", "ann@example.org")
WORK_EMAIL = ("email", "ann@work.example")
PHONE = ("phone", "+14155550132")
PROFILE = ("profile", "2f6c7d8e-0000-4000-8000-000000000001")

MARKETING = PurposeRule("marketing", requires_consent=True, direct_marketing=True)
ANALYTICS = PurposeRule("analytics", requires_consent=False)
SALE = PurposeRule("sale_sharing", requires_consent=False, sale_sharing=True)
PURPOSES = {p.slug: p for p in (MARKETING, ANALYTICS, SALE)}


def day(n: int) -> datetime:
    return T0 + timedelta(days=n)


def e(n, contact, decision, purpose="marketing", channel="email", *, on=1, expires=None):
    """Entry number n, through ``contact``, effective on day ``on``."""
    return Entry(n, contact, purpose, channel, decision, day(on), day(expires) if expires else None)


CASES = [
    # (what a privacy officer expects, entries, purpose, channel, allowed, rule)
    (
        "nothing on record: marketing needs consent, fail closed",
        [],
        "marketing",
        "email",
        False,
        "no_consent",
    ),
    ("nothing on record: analytics does not need consent", [], "analytics", "web", True, "not_required"),
    ("a grant allows", [e(1, EMAIL, GRANTED)], "marketing", "email", True, "granted"),
    (
        "a grant for email says nothing about sms",
        [e(1, EMAIL, GRANTED)],
        "marketing",
        "sms",
        False,
        "no_consent",
    ),
    (
        "a grant for every channel covers sms",
        [e(1, EMAIL, GRANTED, channel=None)],
        "marketing",
        "sms",
        True,
        "granted",
    ),
    (
        "a later denial through the same address wins",
        [e(1, EMAIL, GRANTED, on=1), e(2, EMAIL, DENIED, on=2)],
        "marketing",
        "email",
        False,
        "restricted",
    ),
    (
        "a later grant through the same address lifts a denial",
        [e(1, EMAIL, DENIED, on=1), e(2, EMAIL, GRANTED, on=2)],
        "marketing",
        "email",
        True,
        "granted",
    ),
    (
        "a withdrawal through the phone beats an older grant through the email",
        [e(1, EMAIL, GRANTED, on=1), e(2, PHONE, WITHDRAWN, on=2)],
        "marketing",
        "email",
        False,
        "restricted",
    ),
    (
        "a later grant through another identifier does not lift a denial",
        [e(1, PHONE, DENIED, on=1), e(2, EMAIL, GRANTED, on=5)],
        "marketing",
        "email",
        False,
        "restricted",
    ),
    (
        "a denial recorded on the profile is lifted only by a later grant on the profile",
        [e(1, PROFILE, DENIED, on=1), e(2, EMAIL, GRANTED, on=2), e(3, PROFILE, GRANTED, on=3)],
        "marketing",
        "email",
        True,
        "granted",
    ),
    (
        "an objection to direct marketing blocks every marketing channel",
        [e(1, EMAIL, GRANTED, channel="sms", on=1), e(2, EMAIL, OBJECTION, channel="email", on=2)],
        "marketing",
        "sms",
        False,
        "restricted",
    ),
    (
        "an objection to direct marketing does not block analytics",
        [e(1, EMAIL, OBJECTION, on=2)],
        "analytics",
        "web",
        True,
        "not_required",
    ),
    (
        "a later grant on one channel lifts an objection for that channel only (email)",
        [e(1, EMAIL, OBJECTION, on=1), e(2, EMAIL, GRANTED, channel="email", on=2)],
        "marketing",
        "email",
        True,
        "granted",
    ),
    (
        "a later grant on one channel lifts an objection for that channel only (sms stays blocked)",
        [
            e(1, EMAIL, OBJECTION, on=1),
            e(2, EMAIL, GRANTED, channel="email", on=2),
            e(3, EMAIL, GRANTED, channel="sms", on=0),
        ],
        "marketing",
        "sms",
        False,
        "restricted",
    ),
    (
        "an opt-out of sale/sharing blocks sale on every channel",
        [e(1, WORK_EMAIL, OPT_OUT_SALE, purpose="sale_sharing", channel="web")],
        "sale_sharing",
        "email",
        False,
        "restricted",
    ),
    (
        "a denial of analytics blocks analytics although it needs no consent",
        [e(1, EMAIL, DENIED, purpose="analytics", channel=None)],
        "analytics",
        "web",
        False,
        "restricted",
    ),
    (
        "an expired grant does not allow",
        [e(1, EMAIL, GRANTED, on=1, expires=50)],
        "marketing",
        "email",
        False,
        "expired",
    ),
    (
        "an expired grant brings back the denial it lifted",
        [e(1, EMAIL, DENIED, on=1), e(2, EMAIL, GRANTED, on=2, expires=50)],
        "marketing",
        "email",
        False,
        "restricted",
    ),
    (
        "a denial and a grant at the same instant: the denial holds",
        [e(2, EMAIL, DENIED, on=3), e(1, EMAIL, GRANTED, on=3)],
        "marketing",
        "email",
        False,
        "restricted",
    ),
    (
        "a grant not yet effective does not allow",
        [e(1, EMAIL, GRANTED, on=200)],
        "marketing",
        "email",
        False,
        "no_consent",
    ),
    (
        "a denial of another purpose changes nothing",
        [e(1, EMAIL, GRANTED), e(2, EMAIL, DENIED, purpose="analytics", on=2)],
        "marketing",
        "email",
        True,
        "granted",
    ),
]


@pytest.mark.parametrize(
    ("entries", "purpose", "channel", "allowed", "rule"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_effective_consent_rules(entries, purpose, channel, allowed, rule):
    decision = decide(entries, purpose=PURPOSES[purpose], channel=channel, at=NOW)

    assert (decision.allowed, decision.rule) == (allowed, rule)


def test_the_reasons_name_every_entry_that_blocks():
    given = [e(1, EMAIL, GRANTED, on=1), e(2, PHONE, WITHDRAWN, on=2), e(3, WORK_EMAIL, DENIED, on=3)]

    decision = decide(given, purpose=MARKETING, channel="email", at=NOW)

    assert [(r.entry.id, r.effect) for r in decision.reasons] == [(2, "blocks"), (3, "blocks")]


def test_a_past_moment_is_judged_on_what_was_in_force_then():
    given = [e(1, EMAIL, GRANTED, on=1), e(2, EMAIL, WITHDRAWN, on=10)]

    before = decide(given, purpose=MARKETING, channel="email", at=day(5))
    after = decide(given, purpose=MARKETING, channel="email", at=day(11))

    assert (before.allowed, after.allowed) == (True, False)


def test_restrictions_in_force_leave_out_lifted_ones():
    given = [
        e(1, EMAIL, DENIED, on=1),
        e(2, EMAIL, GRANTED, on=2),  # lifts 1
        e(3, PROFILE, OBJECTION, on=3),
    ]

    kept = restrictions_in_force(given, purposes=PURPOSES.values(), channels=["email", "sms"], at=NOW)

    assert [entry.id for entry in kept] == [3]
