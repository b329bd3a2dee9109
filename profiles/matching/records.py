"""The record the matcher works on: canonical attributes in, comparison-ready forms precomputed once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import jellyfish

from .normalise import (
    address_parts,
    date_parts,
    email_parts,
    fold,
    given_names,
    name_from_email,
    name_key,
    phone_digits,
    postcode_key,
)


@lru_cache(maxsize=1 << 16)
def _metaphone(name: str) -> str:
    return jellyfish.metaphone(name) if name else ""


@dataclass(frozen=True, slots=True)
class MatchRecord:
    """One source record (or one profile's golden values) as the matcher sees it.

    Build it with :meth:`from_attributes` from the canonical attributes of ``ingestion.normalise``; an
    attribute that is missing or blank is "missing", which neither supports nor contradicts a match.
    """

    record_id: object
    source: str
    first_name: str
    first_names: tuple[str, ...]
    middle_name: str
    last_name: str
    birth_date: tuple[str, str, str] | None
    gender: str
    house_number: str
    street: str
    address_line1: str
    address_line2: str
    city: str
    postcode: str
    region: str
    email: str
    email_local: str
    phone: str
    national_id: str
    last_name_phonetic: str
    first_name_phonetic: str
    # False when the record states no given name (it may have read one from its email address): the
    # deterministic guard compares stated given names only (``cluster.identifier_shared_by_two``).
    given_stated: bool = True

    @classmethod
    def from_attributes(
        cls, record_id: object, attributes: Mapping[str, object], *, source: str = ""
    ) -> MatchRecord:
        first_tokens = given_names(attributes.get("first_name"))
        last_name = name_key(attributes.get("last_name"))
        if not first_tokens and not last_name and attributes.get("full_name"):
            tokens = fold(attributes["full_name"]).split()
            # "Mary F. Delettholm": a single letter after the given name is a middle initial, not a part
            # of the family name.
            inner = tokens[1:-1]
            first_tokens = tokens[:1] + [token for token in inner if len(token) == 1]
            last_name = "".join([token for token in inner if len(token) > 1] + tokens[1:][-1:])
        given_stated = bool(first_tokens)
        email_local, _ = email_parts(attributes.get("email"))
        if not (first_tokens and last_name) and email_local:
            # A web sign-up with "jordan.johnson@..." and at most one of the names: the other is in the address.
            given, last_name = name_from_email(
                email_local, first_tokens[0] if first_tokens else "", last_name
            )
            if given and not first_tokens:
                first_tokens = [given]
        first_name = first_tokens[0] if first_tokens else ""
        house_number, street = address_parts(attributes.get("address_line1"))
        phone = phone_digits(attributes.get("phone"))
        return cls(
            record_id=record_id,
            source=source,
            first_name=first_name,
            first_names=tuple(first_tokens),
            middle_name=name_key(attributes.get("middle_name")),
            last_name=last_name,
            birth_date=date_parts(attributes.get("birth_date")),
            gender=fold(attributes.get("gender"))[:1],
            house_number=house_number,
            street=street,
            address_line1=f"{house_number} {street}".strip(),
            address_line2=fold(attributes.get("address_line2")),
            city=fold(attributes.get("city")),
            postcode=postcode_key(attributes.get("postcode")),
            region=fold(attributes.get("region")),
            email=str(attributes.get("email") or "").strip().casefold(),
            email_local=email_local,
            phone=phone,
            national_id=fold(attributes.get("national_id")).replace(" ", ""),
            last_name_phonetic=_metaphone(last_name),
            first_name_phonetic=_metaphone(first_name),
            given_stated=given_stated,
        )
