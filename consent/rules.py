"""Effective consent, derived from ledger entries. Pure functions on plain data: no database here.

The ledger holds what people said, through which contact point (an identifier such as an email address or a
phone number, or a profile id when staff recorded it on the person). Whether a purpose is allowed on a channel
is decided from every entry of every contact point of one person, so it follows merges and splits of profiles
without anything to refresh:

1. An entry counts only between its ``effective_at`` and its ``expires_at``.
2. For each contact point, the latest entry that speaks to the purpose and channel is that contact point's
   stance. A denial, a withdrawal, an objection to direct marketing (every direct-marketing purpose, every
   channel) and an opt-out of sale/sharing (every sale/sharing purpose, every channel) are restrictions; a
   grant lifts a restriction only when it is later and comes through the same contact point. At the same
   instant a restriction beats a grant.
3. A restriction that is any contact point's stance blocks, whatever other contact points say (the strictest
   statement holds: an opt-out given anywhere is honoured everywhere).
4. Otherwise a purpose that needs consent is allowed only with a valid, unexpired grant through some contact
   point (fail closed: no grant, an expired grant, or an unknown person is "not allowed"); a purpose that does
   not need consent is allowed.

Above all of this, a restriction of processing the person asked for (a data-subject request, GDPR art. 18)
blocks every purpose until it is lifted; its rule code is its own, so a caller can tell it from a denial.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

GRANTED = "granted"
DENIED = "denied"
WITHDRAWN = "withdrawn"
OBJECTION = "objection_direct_marketing"
OPT_OUT_SALE = "opt_out_sale_sharing"

DECISIONS = (GRANTED, DENIED, WITHDRAWN, OBJECTION, OPT_OUT_SALE)
RESTRICTIONS = frozenset({DENIED, WITHDRAWN, OBJECTION, OPT_OUT_SALE})

# Rule codes of a decision.
RESTRICTED = "restricted"  # a denial, withdrawal, objection or opt-out in force
PROCESSING_RESTRICTED = "processing_restricted"  # a data-subject request restricting processing
GRANTED_RULE = "granted"
EXPIRED = "expired"
NO_CONSENT = "no_consent"
NOT_REQUIRED = "not_required"

ContactPoint = tuple[str, str]  # (identifier type, normalised value), or ("profile", profile id)


@dataclass(frozen=True)
class PurposeRule:
    slug: str
    requires_consent: bool
    direct_marketing: bool = False  # an objection to direct marketing blocks it
    sale_sharing: bool = False  # an opt-out of sale/sharing blocks it


@dataclass(frozen=True)
class Entry:
    """One ledger row, as the rules need it."""

    id: int
    contact_point: ContactPoint
    purpose: str
    channel: str | None  # None: every channel
    decision: str
    effective_at: datetime
    expires_at: datetime | None = None

    @property
    def restricts(self) -> bool:
        return self.decision in RESTRICTIONS

    def in_force(self, at: datetime) -> bool:
        return self.effective_at <= at and (self.expires_at is None or at < self.expires_at)

    def speaks_to(self, purpose: PurposeRule, channel: str) -> bool:
        """Whether this entry says anything about this purpose on this channel."""
        if self.decision == OBJECTION:
            return purpose.direct_marketing or (self.purpose == purpose.slug and self._covers(channel))
        if self.decision == OPT_OUT_SALE:
            return purpose.sale_sharing or (self.purpose == purpose.slug and self._covers(channel))
        return self.purpose == purpose.slug and self._covers(channel)

    def _covers(self, channel: str) -> bool:
        return self.channel is None or self.channel == channel


@dataclass(frozen=True)
class Reason:
    entry: Entry
    effect: str  # "blocks", "allows", "expired"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: str  # a short code of the rule that decided it
    explanation: str
    reasons: tuple[Reason, ...] = field(default_factory=tuple)
    restriction_request: str | None = None  # with PROCESSING_RESTRICTED: the request that restricts


def processing_restricted(*, request_id: object) -> Decision:
    """The answer for a person whose processing is restricted by a data-subject request, whatever the ledger
    says."""
    return Decision(
        allowed=False,
        rule=PROCESSING_RESTRICTED,
        explanation="Processing of this person is restricted (a data-subject request) until lifted.",
        restriction_request=str(request_id),
    )


def _order(entry: Entry) -> tuple:
    # Latest last; at the same instant a restriction sorts after (beats) a grant; then ledger order.
    return (entry.effective_at, entry.restricts, entry.id)


def decide(entries: Iterable[Entry], *, purpose: PurposeRule, channel: str, at: datetime) -> Decision:
    """Whether ``purpose`` is allowed on ``channel`` at ``at`` for the person these entries belong to."""
    relevant = [e for e in entries if e.speaks_to(purpose, channel) and e.effective_at <= at]
    stance: dict[ContactPoint, Entry] = {}
    for entry in sorted((e for e in relevant if e.in_force(at)), key=_order):
        stance[entry.contact_point] = entry

    blocking = sorted((e for e in stance.values() if e.restricts), key=_order)
    if blocking:
        return Decision(
            allowed=False,
            rule=RESTRICTED,
            explanation="A denial, withdrawal, objection or opt-out through one of the person's contact points "
            "has not been lifted by a later grant through the same contact point.",
            reasons=tuple(Reason(e, "blocks") for e in blocking),
        )
    grants = sorted((e for e in stance.values() if e.decision == GRANTED), key=_order)
    if grants:
        return Decision(
            allowed=True,
            rule=GRANTED_RULE,
            explanation="A valid grant and no restriction in force.",
            reasons=tuple(Reason(e, "allows") for e in grants),
        )
    if purpose.requires_consent:
        expired = sorted((e for e in relevant if e.decision == GRANTED and not e.in_force(at)), key=_order)
        return Decision(
            allowed=False,
            rule=EXPIRED if expired else NO_CONSENT,
            explanation=f"{purpose.slug} needs consent and no valid, unexpired grant is on record."
            + (" The grants on record have expired." if expired else ""),
            reasons=tuple(Reason(e, "expired") for e in expired[-5:]),
        )
    return Decision(
        allowed=True,
        rule=NOT_REQUIRED,
        explanation=f"{purpose.slug} does not need consent and nothing on record objects to it.",
    )


def effective_state(
    entries: Sequence[Entry], *, purposes: Iterable[PurposeRule], channels: Iterable[str], at: datetime
) -> dict[tuple[str, str], Decision]:
    """The decision for every purpose x channel."""
    channels = list(channels)
    return {
        (purpose.slug, channel): decide(entries, purpose=purpose, channel=channel, at=at)
        for purpose in purposes
        for channel in channels
    }


def restrictions_in_force(
    entries: Sequence[Entry], *, purposes: Iterable[PurposeRule], channels: Iterable[str], at: datetime
) -> list[Entry]:
    """The restrictions that decide some purpose x channel now: what must stay with every half of a split."""
    found: dict[int, Entry] = {}
    for decision in effective_state(entries, purposes=purposes, channels=channels, at=at).values():
        for reason in decision.reasons:
            if reason.effect == "blocks":
                found[reason.entry.id] = reason.entry
    return sorted(found.values(), key=_order)
