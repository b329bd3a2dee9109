"""Everything the platform holds about one person, found once, for an export or an erasure.

The footprint of a person starts from their profile (and the tombstones merged into it) and from the
identifiers of their request, and reaches every table: identities, source records and the raw payloads they
came in, tracking events, record history, merges, resolution conflicts, consent ledger entries and rejected
consent statements. Raw payloads that never became a source record (quarantined, pending) are matched by
reading them: any string in them that normalises to one of the person's identifiers, or that is one of their
national identifiers in the form matching compares them (``suppression.national_id_key``).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from uuid import UUID

from django.conf import settings
from django.db import connection
from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL

from ingestion.models import IdentifierType, InboundRecord, Source
from ingestion.normalise import InvalidValue, normalise_email, normalise_phone
from profiles.models import (
    Event,
    Identity,
    MergeEvent,
    Profile,
    RecordChange,
    ResolutionConflict,
    SourceRecord,
)
from profiles.selectors import profile_get
from profiles.services.resolution import identifier_keys_lock

from .models import ConsentEntry, ConsentRejection
from .suppression import NATIONAL_ID, national_id_key, suppression_keys

Key = tuple[str, str]


@dataclass
class Footprint:
    profile_ids: set[UUID] = field(default_factory=set)
    identifiers: set[Key] = field(default_factory=set)
    # The national identifiers of the person's records (the ``national_id`` attribute, and declared
    # identifiers of that type), as ``national_id_key`` gives them: not identifiers, but they identify.
    national_ids: set[str] = field(default_factory=set)
    record_ids: set[int] = field(default_factory=set)
    event_ids: set[int] = field(default_factory=set)
    inbound_ids: set[int] = field(default_factory=set)
    rejection_ids: set[int] = field(default_factory=set)

    def suppression_keys(self) -> set[Key]:
        """What an erasure puts on the suppression list: every identifier and every national identifier."""
        return self.identifiers | {(NATIONAL_ID, value) for value in self.national_ids}

    def ledger(self):
        condition = Q(pk__in=[])
        for kind, value in self.identifiers:
            condition |= Q(identifier_value=value, identifier_type=kind)
        if self.profile_ids:
            ids = list(self.profile_ids)
            condition |= Q(subject_profile_id__in=ids) | Q(recorded_for_profile_id__in=ids)
        return ConsentEntry.objects.filter(condition)

    def merges(self):
        ids = list(self.profile_ids)
        return MergeEvent.objects.filter(Q(survivor_id__in=ids) | Q(merged_id__in=ids))

    def record_changes(self):
        return RecordChange.objects.filter(
            Q(record_id__in=list(self.record_ids)) | Q(profile_id__in=list(self.profile_ids))
        )

    def conflicts(self):
        return ResolutionConflict.objects.filter(
            Q(record_id__in=list(self.record_ids)) | Q(profile_id__in=list(self.profile_ids))
        )


def _profile_family(profile_id: UUID | None) -> set[UUID]:
    """The profile and every tombstone that was merged into it, directly or through another tombstone."""
    if profile_id is None:
        return set()
    family, frontier = {profile_id}, {profile_id}
    while frontier:
        frontier = (
            set(Profile.objects.filter(merged_into_id__in=frontier).values_list("pk", flat=True)) - family
        )
        family |= frontier
    return family


def _strings(value: object) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _national_ids(attributes: object) -> set[str]:
    """The national identifier of a record's normalised attributes, as ``national_id_key`` gives it."""
    value = national_id_key(attributes.get(NATIONAL_ID)) if isinstance(attributes, dict) else ""
    return {value} if value else set()


def _identifying(national_ids: set[str], record_ids: set[int]) -> set[str]:
    """The national identifiers that identify the person alone: numbers (``national_id_key`` gives no
    placeholder), not a blocked value of a declared identifier type of that name, and on no live record of
    anybody else (a value a source fills in for everyone it lacks one for, "000000000"). Suppressing or
    erasing the others would reach other people."""
    kept = set(national_ids) - {""}
    if not kept:
        return kept
    blocked = IdentifierType.objects.filter(name=NATIONAL_ID).values_list("blocked_values", flat=True).first()
    kept -= {national_id_key(value) for value in blocked or []}
    others = SourceRecord.objects.filter(deleted_at__isnull=True, attributes__has_key=NATIONAL_ID).exclude(
        pk__in=record_ids
    )
    if connection.vendor == "postgresql":
        # The stored spellings differ ("AB 12 34 56 C", "ab123456c"). An ASCII one folds as lower case
        # letters and digits, in the query; any other is read (see the payload patterns below).
        others = others.alias(
            may_be=RawSQL(
                "CASE WHEN octet_length(attributes->>%s) = length(attributes->>%s) "
                "THEN regexp_replace(lower(attributes->>%s), '[^a-z0-9]+', '', 'g') = ANY(%s) ELSE true END",
                [NATIONAL_ID, NATIONAL_ID, NATIONAL_ID, sorted(kept)],
                output_field=BooleanField(),
            )
        ).filter(may_be=True)
    for attributes in others.values_list("attributes", flat=True).iterator(chunk_size=2000):
        kept -= _national_ids(attributes)
    return kept


def _mentions(payload: object, values: set[str], region: str, national_ids: Iterable[str] = ()) -> bool:
    """Whether any string in the payload is one of the values, in any spelling that normalises the same, or
    one of the national identifiers (a whole string, spelled any way matching reads as the same number)."""
    for text in _strings(payload):
        candidate = " ".join(text.split())
        if candidate in values or candidate.casefold() in values:
            return True
        if national_ids and national_id_key(candidate) in national_ids:
            return True
        if "@" in candidate:
            try:
                if normalise_email(candidate) in values:
                    return True
            except InvalidValue:
                pass
        elif sum(c.isdigit() for c in candidate) >= 6:
            try:
                if normalise_phone(candidate, region) in values:
                    return True
            except InvalidValue:
                pass
    return False


def subject_footprint(*, profile_id: UUID | None, identifiers: Iterable[Key]) -> Footprint:
    """Find every row about the person. Reads only; the caller holds the transaction (and the locks)."""
    found = Footprint(profile_ids=_profile_family(profile_id), identifiers={tuple(k) for k in identifiers})
    ids = list(found.profile_ids)
    found.identifiers |= set(Identity.objects.filter(profile_id__in=ids).values_list("type", "value"))
    source_slugs = set(Source.objects.values_list("slug", flat=True))
    own_ids = Q(pk__in=[])
    for kind, value in found.identifiers:
        if kind in source_slugs:
            own_ids |= Q(source__slug=kind, external_id=value)
    records = list(
        SourceRecord.objects.filter(Q(profile_id__in=ids) | own_ids).values_list(
            "pk", "source_id", "external_id", "identifiers", "attributes"
        )
    )
    found.record_ids = {pk for pk, *_ in records}
    for _, _, _, record_identifiers, attributes in records:
        found.identifiers |= {tuple(key) for key in record_identifiers or []}
        found.national_ids |= _national_ids(attributes)
    # A declared identifier type of that name spells a national identifier too.
    found.national_ids |= {national_id_key(value) for kind, value in found.identifiers if kind == NATIONAL_ID}
    found.national_ids = _identifying(found.national_ids, found.record_ids)
    record_keys = {(source_id, external_id) for _, source_id, external_id, _, _ in records}

    anonymous = [value for kind, value in found.identifiers if kind == "anonymous_id"]
    by_user = Q(pk__in=[])
    for source_id, external_id in record_keys:
        by_user |= Q(source_id=source_id, user_id=external_id)
    events = Event.objects.filter(Q(profile_id__in=ids) | Q(anonymous_id__in=anonymous) | by_user)
    event_keys = set(events.values_list("source_id", "message_id"))
    found.event_ids = set(events.values_list("pk", flat=True))

    inbound = Q(pk__in=[])
    for source_id, external_id in record_keys | event_keys:
        inbound |= Q(source_id=source_id, external_id=external_id)
    found.inbound_ids = set(InboundRecord.objects.filter(inbound).values_list("pk", flat=True))

    # Payloads that never became a record or an event of theirs: read them (the database picks the
    # candidates where it can, Python decides).
    values = {value for _, value in found.identifiers} | {value.casefold() for _, value in found.identifiers}
    regions = dict(Source.objects.values_list("pk", "default_region"))
    unresolved = (
        InboundRecord.objects.exclude(status=InboundRecord.Status.PROCESSED)
        .exclude(pk__in=list(found.inbound_ids))
        .values_list("pk", "source_id", "external_id", "payload")
    )
    rejections = ConsentRejection.objects.values_list("pk", "payload")
    needles = _needles(values, found.national_ids)
    if needles is not None:
        unresolved = unresolved.filter(pk__in=_mentioning_sql(InboundRecord, needles, external_id=True))
        rejections = rejections.filter(pk__in=_mentioning_sql(ConsentRejection, needles, external_id=False))
    for pk, source_id, external_id, payload in unresolved.iterator(chunk_size=2000):
        region = regions.get(source_id, settings.CDP_DEFAULT_PHONE_REGION)
        if _mentions([external_id, payload], values, region, found.national_ids):
            found.inbound_ids.add(pk)
    for pk, payload in rejections.iterator(chunk_size=2000):
        if _mentions(payload, values, settings.CDP_DEFAULT_PHONE_REGION, found.national_ids):
            found.rejection_ids.add(pk)
    return found


# --- Finding payloads in the database ----------------------------------------------------------------------
#
# ``_mentions`` compares every string of a payload with the person's values after normalising it the way
# identifiers are (whitespace, case folding, email and phone syntax). On PostgreSQL a query first keeps only
# the rows that could pass: it must never leave out a row ``_mentions`` would accept, and may let through a
# few it rejects (Python then decides). It reads the payload's JSON text (its escapes of control characters
# read as spaces) and the external id, and keeps a row when
#
# - folded (NFKC, lower case, ß -> ss, without whitespace) the text contains a value folded the same way: for
#   every character whose case folding is ASCII this equals Python's ``casefold`` (checked over all of
#   Unicode), and a string's folded form stays contiguous inside the folded text;
# - it matches ``%local%@domain%`` for an email address ``local@domain`` (quotes around the local part);
# - the last six digits of a phone number appear in order with only what phone parsing drops between them:
#   any non-digit, or (a number spelled with letters, ``1-800-FLOWERS``) any non-alphanumeric character with
#   letters read as a keypad's; digits of every script count. The end of a number survives every way of
#   writing it (national prefixes, country codes, extensions, the Argentinian "15");
# - a national identifier (lower case letters and digits, ``national_id_key``) is contained in the text of an
#   ASCII row lower-cased and without anything but letters and digits: for ASCII, ``fold`` is just that, and
#   it drops every separator a number may be written with. A row with any other character may spell it
#   through a transliteration (full-width digits, other scripts) that only ``fold`` knows: it is read.
#
# A value that does not fold to plain ASCII (an internationalised address, a backslash or a quote in an id)
# falls back to reading every payload in Python, as on SQLite.

_KEYPAD = {
    "2": "ABC",
    "3": "DEF",
    "4": "GHI",
    "5": "JKL",
    "6": "MNO",
    "7": "PQRS",
    "8": "TUV",
    "9": "WXYZ",
}


@cache
def _whitespace_class() -> str:
    """Every character Python's ``str.split()`` splits on, as a regular expression class."""
    return "[" + "".join(f"\\u{c:04x}" for c in range(0x10000) if chr(c).isspace()) + "]"


@cache
def _digits_of_value() -> dict[str, str]:
    """Each ASCII digit and the digits of every other script with its value (phone parsing reads them all)."""
    found = {str(d): str(d) for d in range(10)}
    for c in range(0x80, 0x110000):
        if unicodedata.category(chr(c)) == "Nd":
            found[str(unicodedata.decimal(chr(c)))] += chr(c)
    return found


def _phone_pattern(digits: str) -> str:
    """A regular expression finding these digits as any spelling of a phone number may hold them."""
    plain = "[^0-9]*".join(f"[{_digits_of_value()[d]}]" for d in digits)
    keypad = "[^0-9A-Za-z]*".join(
        f"[{_digits_of_value()[d]}{_KEYPAD.get(d, '')}{_KEYPAD.get(d, '').lower()}]" for d in digits
    )
    return f"({plain})|({keypad})"


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class Needles:
    folded: list[str]  # LIKE patterns on the folded text
    phone: str | None  # a regular expression on the text
    national: list[str] = field(default_factory=list)  # LIKE patterns on the text's letters and digits


def _needles(values: set[str], national_ids: Iterable[str] = ()) -> Needles | None:
    """The patterns of the query, or None where only Python can tell (SQLite, a value not folding to plain
    ASCII)."""
    national = sorted(f"%{_like_escape(value)}%" for value in national_ids if value)
    if connection.vendor != "postgresql" or not (values or national):
        return None
    folded, phones = set(), set()
    for value in values:
        squashed = "".join(value.casefold().split())
        if not squashed.isascii() or not squashed.isprintable() or "\\" in squashed or '"' in squashed:
            return None
        folded.add(f"%{_like_escape(squashed)}%")
        local, at, domain = squashed.rpartition("@")
        if at and local and domain:
            folded.add(f"%{_like_escape(local)}%@{_like_escape(domain)}%")
        if value.startswith("+") and value[1:].isdigit() and len(value) > 6:
            phones.add(_phone_pattern(value[-6:]))
    return Needles(folded=sorted(folded), phone="|".join(sorted(phones)) or None, national=national)


def _mentioning_sql(model, needles: Needles, *, external_id: bool):
    """The ids of the model's rows whose payload (or external id) could mention the person (see above)."""
    from django.db.models.expressions import RawSQL

    text = "coalesce(t.payload::text, '')"
    text = f"CASE WHEN strpos({text}, '\\') > 0 THEN regexp_replace({text}, %s, ' ', 'g') ELSE {text} END"
    params: list = [r"\\[tnrfb]|\\u00[01][0-9a-fA-F]"]
    if external_id:
        text = f"regexp_replace(t.external_id, %s, ' ', 'g') || ' ' || {text}"
        params.insert(0, _whitespace_class())
    folded = (
        "CASE WHEN octet_length(w.w) = length(w.w) THEN replace(lower(w.w), ' ', '') "
        "ELSE regexp_replace(replace(replace(lower(normalize(w.w, NFKC)), 'ß', 'ss'), 'ẞ', 'ss'), %s, '', 'g') END"
    )
    params += [_whitespace_class(), needles.folded]
    condition = f"{folded} LIKE ANY(%s)"
    if needles.phone:
        condition += " OR w.w ~ %s"
        params.append(needles.phone)
    if needles.national:
        condition += (
            " OR CASE WHEN octet_length(w.w) = length(w.w) "
            "THEN regexp_replace(lower(w.w), '[^a-z0-9]+', '', 'g') LIKE ANY(%s) ELSE true END"
        )
        params.append(needles.national)
    sql = f"SELECT t.id FROM {model._meta.db_table} t, LATERAL (SELECT {text}) w(w) WHERE {condition}"
    return RawSQL(sql, params)


def _current_profile(profile_id: UUID | None, asked: set[Key]) -> UUID | None:
    """The active profile now standing for the person: the one named (or its survivor, should it have been
    merged meanwhile), else the one profile holding the identifiers asked about, if exactly one does."""
    if profile_id is not None:
        current = profile_get(profile_id=profile_id)
        if current is not None:
            return current.pk
    owners = set()
    for kind, value in asked:
        owner = Identity.objects.filter(type=kind, value=value).values_list("profile_id", flat=True).first()
        current = profile_get(profile_id=owner) if owner else None
        if current is not None:
            owners.add(current.pk)
    return owners.pop() if len(owners) == 1 else None


def _person_keys(profile_id: UUID | None, asked: set[Key]) -> tuple[set[Key], set[Key]]:
    """Every identifier key a record of the person could arrive with: those asked about, the profile's
    identities and the identifiers (the sources' own ids included) of its records; and apart, the suppression
    keys of the person's national identifiers (``drop_suppressed`` locks them too)."""
    keys = set(asked)
    nationals: set[str] = set()
    ids = list(_profile_family(profile_id))
    if ids:
        keys |= set(Identity.objects.filter(profile_id__in=ids).values_list("type", "value"))
        for identifiers, attributes in SourceRecord.objects.filter(profile_id__in=ids).values_list(
            "identifiers", "attributes"
        ):
            keys |= {tuple(key) for key in identifiers or []}
            nationals |= _national_ids(attributes)
    national_keys = {(NATIONAL_ID, value) for value in nationals}
    national_keys |= {key for key in suppression_keys(keys) - keys if key[0] == NATIONAL_ID}
    return keys, national_keys


def subject_footprint_lock(
    *, profile_id: UUID | None, identifiers: Iterable[Key]
) -> tuple[UUID | None, Footprint]:
    """The person's footprint, read while holding the resolver's advisory locks on every identifier key of the
    person (until the transaction ends). Returns the profile that stands for them now, and the footprint.

    A record of the person being resolved at this moment holds one of these keys: it either commits first
    (and its rows are found here) or waits and then meets the suppression list (``drop_suppressed`` checks it
    under the same locks). The keys are known only by reading, and reading is safe only under the locks, so it
    repeats until a read under the locks finds no key not locked yet (a record merging the person into
    another profile just before counts too: that profile is followed). The keys of the person's national
    identifiers are locked after the identifier keys read with them, as ``drop_suppressed`` takes them after
    the claim step's identifier keys: a batch waiting for a national identifier's lock the erasure holds holds
    no key the erasure waits for (keys first found in a later round aside)."""
    asked = {tuple(key) for key in identifiers}
    locked: set[Key] = set()
    while True:
        profile_id = _current_profile(profile_id, asked)
        keys, national_keys = _person_keys(profile_id, asked)
        if keys | national_keys <= locked:
            return profile_id, subject_footprint(profile_id=profile_id, identifiers=asked)
        identifier_keys_lock(keys - locked)
        identifier_keys_lock(national_keys - keys - locked)
        locked |= keys | national_keys
