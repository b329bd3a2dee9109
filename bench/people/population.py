"""The people behind the records, the ground truth every run is scored against: how often people move,
change email or surname, share a household, and how often their records are corrupted and which fields
each kind of source holds (``COVERAGE``); then the people themselves, in households (``Address``,
``Person``, ``Population``), deterministic for a seed.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from .names import (
    CITIES,
    COMPANIES,
    EMAIL_DOMAINS,
    FEMALE_NAMES,
    MALE_NAMES,
    MOBILE_AREAS,
    PHONE_SPREAD,
    STREET_NAMES,
    STREET_TYPES,
    STREETS_PER_ZIP,
    SURNAMES,
    TAIL_HEADS,
    TAIL_MIDDLES,
    TAIL_SURNAME_SHARE,
    TAIL_TAILS,
    WORK_EMAIL_SHARE,
    ZIPS_PER_CITY,
    _words,
)

# --- Rates of corruption (per record unless said otherwise) -------------------------------------------------

HOUSEHOLD_SIZES = (0.82, 0.13, 0.04, 0.01)  # customers at one address: 1, 2, 3, 4
PARTNER_SAME_SURNAME = 0.70
TWINS = 0.03  # a child of a household with children has a twin among the customers
JUNIOR = 0.05  # a son named after his father (John Smith Jr. at his parents' address)
HAS_MOBILE = 0.88
HOUSEHOLD_LANDLINE = 0.35  # of households; their records sometimes give it instead of the mobile
LANDLINE_ON_RECORD = 0.30
FAMILY_EMAIL = 0.04  # of households with two or more customers: an address the family shares
FAMILY_EMAIL_ON_RECORD = 0.5
MOVED = 0.12  # of people: a previous address, which their older records still carry
CHANGED_EMAIL = 0.10  # of people: a previous email, which their older records still carry
MAIDEN_NAME = 0.03  # of people: a surname changed (marriage); older records carry the old one
SOURCES_PER_PERSON = (0.38, 0.34, 0.19, 0.09)  # 1, 2, 3, 4 sources
DUPLICATE_IN_SOURCE = 0.05  # a second record of the person in one source (the duplicate every CRM has)
FIRST_NAME_TYPO = 0.04
LAST_NAME_TYPO = 0.04
NICKNAME = 0.12  # of the records of people whose name has nicknames
INITIAL = 0.03
MIDDLE_INITIAL = 0.15  # of the records of people with a middle name (a third of them)
SWAPPED_NAMES = 0.02
DAY_MONTH_SWAP = 0.04  # of the records with a birth date whose day is 12 or less
BIRTH_DATE_TYPO = 0.02
EMAIL_TYPO = 0.01
PHONE_TYPO = 0.01
ADDRESS_TYPO = 0.03
ZIP_VARIANT = 0.04  # ZIP+4, or a leading zero lost in a spreadsheet
CASE_CHANGE = 0.08  # names written in capitals or lower case
CRM_REFERENCE = 0.25  # ERP records that carry the person's CRM id
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
# Field coverage per kind of source: the share of its records that hold each field (when the person has it).
COVERAGE = {
    "crm": {"first_name": 0.98, "last_name": 0.99, "email": 0.92, "phone": 0.75, "address_line1": 0.88,
            "postcode": 0.9, "birth_date": 0.55},
    "erp": {"first_name": 0.95, "last_name": 0.97, "email": 0.60, "phone": 0.55, "address_line1": 0.96,
            "postcode": 0.96, "birth_date": 0.0},
    "web": {"first_name": 0.55, "last_name": 0.35, "email": 1.0, "phone": 0.25, "address_line1": 0.0,
            "postcode": 0.35, "birth_date": 0.15},
    "support": {"first_name": 0.92, "last_name": 0.90, "email": 0.88, "phone": 0.60, "address_line1": 0.0,
                "postcode": 0.0, "birth_date": 0.0},
    "survey": {"first_name": 0.80, "last_name": 0.80, "email": 0.75, "phone": 0.20, "address_line1": 0.0,
               "postcode": 0.60, "birth_date": 0.70},
    "other": {"first_name": 0.98, "last_name": 0.98, "email": 0.90, "phone": 0.75, "address_line1": 0.88,
              "postcode": 0.9, "birth_date": 0.55},
}  # fmt: skip

CORRUPTIONS = (
    "first_name_typo",
    "last_name_typo",
    "nickname",
    "initial",
    "middle_initial",
    "swapped_names",
    "maiden_name",
    "moved_address",
    "address_typo",
    "address_abbreviated",
    "zip_variant",
    "changed_email",
    "email_typo",
    "family_email",
    "home_phone",
    "phone_typo",
    "phone_formatted",
    "birth_date_day_month_swap",
    "birth_date_typo",
    "case_change",
)
FIELDS = ("first_name", "last_name", "birth_date", "email", "phone", "address_line1", "postcode")


# --- The population -----------------------------------------------------------------------------------------


def _zipf(count: int, exponent: float = 1.0) -> list[float]:
    weights = [1.0 / (rank**exponent) for rank in range(1, count + 1)]
    total = sum(weights)
    acc, cumulative = 0.0, []
    for weight in weights:
        acc += weight / total
        cumulative.append(acc)
    return cumulative


@dataclass(frozen=True)
class Address:
    house: str
    street: str  # base name, lower case
    street_type: int  # index into STREET_TYPES
    unit: str
    city: str
    state: str
    zip: str

    def line(self, abbreviated: bool) -> str:
        kind = STREET_TYPES[self.street_type][1 if abbreviated else 0]
        line = f"{self.house} {self.street.title()} {kind}"
        return f"{line} Apt {self.unit}" if self.unit else line


@dataclass
class Person:
    """The truth about one person: what every record of theirs is a (corrupted) view of."""

    id: int
    household: int
    gender: str  # M or F
    first: str  # lower case
    middle: str  # an initial, or ""
    last: str  # lower case
    maiden: str  # a previous surname, or ""
    birth: date
    email: str
    old_email: str
    family_email: str
    mobile: str  # 10 digits, or ""
    landline: str  # the household's, or ""
    address: Address
    old_address: Address | None
    company: str


@dataclass(frozen=True)
class _Home:
    household: int
    address: Address
    landline: str
    family_email: str


class _Seen:
    """A Bloom filter of the email addresses handed out (fixed memory at any size): no false negatives, so
    an address it has not seen is new; a false positive only adds a number to an address."""

    BITS = 1 << 28

    def __init__(self) -> None:
        self.bits = bytearray(self.BITS // 8)

    def _positions(self, value: str) -> tuple[int, int]:
        digest = int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "little")
        return digest % self.BITS, (digest >> 32) % self.BITS

    def add(self, value: str) -> bool:
        """Add ``value``; whether it may have been there already."""
        positions = self._positions(value)
        present = all(self.bits[p >> 3] & (1 << (p & 7)) for p in positions)
        for p in positions:
            self.bits[p >> 3] |= 1 << (p & 7)
        return present


class Population:
    """People in households, one household at a time (``households``), deterministic for a seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(f"people:{seed}")
        self.male = _words(MALE_NAMES)
        self.female = _words(FEMALE_NAMES)
        self.male_cum, self.female_cum = _zipf(len(self.male)), _zipf(len(self.female))
        self.surnames = _words(SURNAMES)
        self.surname_cum = _zipf(len(self.surnames), 0.9)
        self.city_cum = _zipf(len(CITIES), 0.8)
        self.emails = _Seen()
        self.next_person = 0
        self.next_household = 0
        self.phone_offset = random.Random(f"phones:{seed}").randrange(1_000_000)
        geo = random.Random(f"geography:{seed}")
        self.zips = []
        for city, state, prefix, area in CITIES:
            codes = sorted(geo.sample(range(100), ZIPS_PER_CITY))
            self.zips.append(
                [
                    (f"{prefix}{code:02d}", geo.sample(STREET_NAMES, STREETS_PER_ZIP), city, state, area)
                    for code in codes
                ]
            )

    # names and places

    def _pick(self, names: list[str], cumulative: list[float]) -> str:
        return names[min(_bisect(cumulative, self.rng.random()), len(names) - 1)]

    def first_name(self, gender: str) -> str:
        if gender == "M":
            return self._pick(self.male, self.male_cum)
        return self._pick(self.female, self.female_cum)

    def surname(self) -> str:
        rng = self.rng
        if rng.random() < TAIL_SURNAME_SHARE:
            return rng.choice(TAIL_HEADS) + rng.choice(TAIL_MIDDLES) + rng.choice(TAIL_TAILS)
        return self._pick(self.surnames, self.surname_cum)

    def address(self) -> tuple[Address, str]:
        """A random address and the area code of its city."""
        rng = self.rng
        city_zips = self.zips[min(_bisect(self.city_cum, rng.random()), len(CITIES) - 1)]
        code, streets, city, state, area = city_zips[int(len(city_zips) * rng.random() ** 1.5)]
        house = str(int(10 ** rng.uniform(0, 4)))  # small house numbers are commoner
        unit = str(rng.randint(1, 30)) + rng.choice(["", "", "A", "B"]) if rng.random() < 0.15 else ""
        street_type = rng.choices(range(len(STREET_TYPES)), weights=[30, 20, 15, 10, 10, 5, 3, 3, 2, 2])[0]
        return Address(house, rng.choice(streets), street_type, unit, city, state, code), area

    def email(self, first: str, last: str, birth: date) -> str:
        rng = self.rng
        if rng.random() < WORK_EMAIL_SHARE:
            domain = rng.choice(COMPANIES) + ".com"
        else:
            domain = rng.choices([d for d, _ in EMAIL_DOMAINS], weights=[w for _, w in EMAIL_DOMAINS])[0]
        last = last.replace(" ", "")
        local = rng.choice(
            [
                f"{first}.{last}",
                f"{first[0]}{last}",
                f"{first}{last}",
                f"{first}_{last}",
                f"{last}.{first}",
                f"{first}{birth.year % 100:02d}",
                f"{first[0]}.{last}{birth.year}",
            ]
        )
        candidate = f"{local}@{domain}"
        while self.emails.add(candidate):  # taken: add a number, as the mail provider would have
            candidate = f"{local}{rng.randint(1, 9999)}@{domain}"
        return candidate

    # Phone numbers are unique and spread thinly over the number space, as a customer base is over a
    # country's numbers (a sequential assignment would make strangers' numbers one digit apart).

    def _mobile(self, person_id: int) -> str:
        spread = (person_id * PHONE_SPREAD + self.phone_offset) % (len(MOBILE_AREAS) * 4_000_000)
        area, rest = MOBILE_AREAS[spread % len(MOBILE_AREAS)], spread // len(MOBILE_AREAS)
        return f"{area}{200 + rest // 10000}{rest % 10000:04d}"  # exchanges 200-599: mobiles

    def _landline(self, household: int, area: str) -> str:
        spread = (household * PHONE_SPREAD + self.phone_offset) % 4_000_000
        return f"{area}{600 + spread // 10000}{spread % 10000:04d}"  # exchanges 600-999: landlines

    # people

    def _person(self, home: _Home, gender: str, first: str, last: str, birth: date) -> Person:
        rng = self.rng
        pid = self.next_person
        self.next_person += 1
        maiden = self.surname() if gender == "F" and rng.random() < MAIDEN_NAME * 2 else ""
        old_address = self.address()[0] if rng.random() < MOVED else None
        email = self.email(first, last, birth)
        old_email = self.email(first, maiden or last, birth) if rng.random() < CHANGED_EMAIL else ""
        return Person(
            id=pid,
            household=home.household,
            gender=gender,
            first=first,
            middle=rng.choice("abcdefghjklmnprstw") if rng.random() < 0.3 else "",
            last=last,
            maiden=maiden,
            birth=birth,
            email=email,
            old_email=old_email,
            family_email=home.family_email,
            mobile=self._mobile(pid) if rng.random() < HAS_MOBILE else "",
            landline=home.landline,
            address=home.address,
            old_address=old_address,
            company=rng.choice(COMPANIES) if rng.random() < 0.3 else "",
        )

    def _birth(self, low: int, high: int) -> date:
        return EPOCH.date() - timedelta(days=self.rng.randint(low * 365, high * 365))

    def household(self) -> list[Person]:
        """The customers living at one address: one to four people, partners and grown-up children."""
        rng = self.rng
        hid = self.next_household
        self.next_household += 1
        size = rng.choices((1, 2, 3, 4), weights=HOUSEHOLD_SIZES)[0]
        address, area = self.address()
        landline = self._landline(hid, area) if rng.random() < HOUSEHOLD_LANDLINE else ""
        surname = self.surname()
        family_email = ""
        if size > 1 and rng.random() < FAMILY_EMAIL:
            family_email = self.email("the", surname + "s", date(2000, 1, 1))
        gender = rng.choice("MF")
        # Parents with grown-up children are older.
        head_birth = self._birth(45, 85) if size >= 3 else self._birth(18, 85)
        home = _Home(hid, address, landline, family_email)
        members = [self._person(home, gender, self.first_name(gender), surname, head_birth)]
        if size >= 2:
            partner_gender = "F" if gender == "M" and rng.random() < 0.95 else rng.choice("MF")
            partner_birth = head_birth + timedelta(days=rng.randint(-8 * 365, 8 * 365))
            partner_birth = min(partner_birth, EPOCH.date() - timedelta(days=18 * 365))
            partner_last = surname if rng.random() < PARTNER_SAME_SURNAME else self.surname()
            partner_first = self.first_name(partner_gender)
            members.append(self._person(home, partner_gender, partner_first, partner_last, partner_birth))
        father = next((m for m in members if m.gender == "M"), None)
        previous_child: Person | None = None
        for _ in range(size - 2):
            child_gender = rng.choice("MF")
            if previous_child is not None and rng.random() < TWINS:
                birth, child_gender = previous_child.birth, rng.choice("MF")
            else:
                birth = head_birth + timedelta(days=rng.randint(20 * 365, 32 * 365))
                birth = min(birth, EPOCH.date() - timedelta(days=18 * 365))
            first = self.first_name(child_gender)
            if child_gender == "M" and father is not None and rng.random() < JUNIOR:
                first = father.first
            child = self._person(home, child_gender, first, surname, birth)
            if previous_child is not None and child.birth == previous_child.birth:
                while child.first == previous_child.first:  # twins have different names
                    child.first = self.first_name(child_gender)
            members.append(child)
            previous_child = child
        return members


def _bisect(cumulative: list[float], x: float) -> int:
    lo, hi = 0, len(cumulative)
    while lo < hi:
        mid = (lo + hi) // 2
        if cumulative[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo
