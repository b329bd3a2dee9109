"""Deterministic synthetic source records describing overlapping people, for the ingestion benchmark.

No Django and no database here: plain data in, JSON payloads out.

Each generated person appears in 1 to 4 sources (sometimes twice in one source: the duplicate customer every
CRM has), and the records of one person overlap the way real exports do:

- the same email in different case and with stray whitespace;
- phones in national and international formats (a GB source reads ``07...`` numbers in its own region, a
  US source gets ``(415) 555-0134``, ``1-415-555-0134`` or ``+1 415.555.0134``);
- records that share only a phone with the person's other records (social and web records without email);
- a few changed emails (an older record still carries the previous address, sometimes with nothing else to
  link it: a second profile is then the right answer for deterministic resolution);
- ERP records that reference the CRM id (``"identifiers": {"crm": "C-..."}``) and use their own field names
  (``FirstName``, ``EMail``, ...) mapped by the source's field mapping;
- first names with variants (Robert / Bob, José / Jose) and case changes;
- about 2 % of the records are later versions of an earlier record (same external id, newer ``updated_at``,
  another job title or city, sometimes a new email).

The generator also computes the *expected* number of profiles for purely deterministic resolution: the
connected components of the records over their normalised identifiers (own external id, email, phone, CRM
reference), from the ground truth, without calling the product's normaliser.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

# --- Sources ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceSpec:
    slug: str
    kind: str
    region: str
    field_mapping: dict = field(default_factory=dict, hash=False)


ERP_MAPPING = {
    "FirstName": "first_name",
    "LastName": "last_name",
    "EMail": "email",
    "Phone": "phone",
    "Street": "address_line1",
    "City": "city",
    "Zip": "postcode",
    "Country": "country",
}

SOURCE_SPECS = [
    SourceSpec("crm", "crm", "US"),
    SourceSpec("erp", "erp", "US", ERP_MAPPING),
    SourceSpec("web", "web", "US"),
    SourceSpec("social", "social", "GB"),
    SourceSpec("support", "support", "US"),
    SourceSpec("survey", "survey", "US"),
]


def source_specs(count: int) -> list[SourceSpec]:
    """The first ``count`` sources: crm, erp, web, social, support, survey, then other1, other2, ..."""
    if count < 1:
        raise ValueError("at least one source")
    specs = SOURCE_SPECS[:count]
    specs += [SourceSpec(f"other{n}", "other", "US") for n in range(1, count - len(specs) + 1)]
    return specs


# --- People -------------------------------------------------------------------------------------------------

FIRST_NAMES = {
    "Robert": ["Bob", "Rob"],
    "William": ["Bill", "Will"],
    "Jonathan": ["Jon"],
    "Katherine": ["Kate", "Kathy"],
    "Elizabeth": ["Liz", "Beth"],
    "José": ["Jose"],
    "Zoë": ["Zoe"],
    "Margaret": ["Maggie", "Peggy"],
    "Michael": ["Mike"],
    "Christopher": ["Chris"],
    "Alexander": ["Alex"],
    "Jennifer": ["Jen"],
    "Daniel": ["Dan"],
    "Anna": [],
    "Lucía": ["Lucia"],
    "François": ["Francois"],
    "Søren": ["Soren"],
    "Mary": [],
    "James": ["Jim", "Jimmy"],
    "Patricia": ["Pat", "Trish"],
    "Mohammed": ["Mohamed", "Muhammad"],
    "Aoife": [],
    "Wei": [],
    "Olga": [],
}
LAST_NAMES = [
    ("Smith", "Smith"),
    ("Johnson", "Johnson"),
    ("Müller", "Mueller"),
    ("O'Brien", "OBrien"),
    ("García", "Garcia"),
    ("Nguyen", "Nguyen"),
    ("Kowalski", "Kowalski"),
    ("Dubois", "Dubois"),
    ("Rossi", "Rossi"),
    ("Andersson", "Andersson"),
    ("Brown", "Brown"),
    ("Okafor", "Okafor"),
    ("Tanaka", "Tanaka"),
    ("Van der Berg", "Vanderberg"),
    ("Murphy", "Murphy"),
    ("Schneider", "Schneider"),
]
EMAIL_DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "icloud.com", "proton.me", "example.org", "acme.io"]
US_AREAS = ["212", "415", "312", "617", "206", "303", "512", "702"]
US_CITIES = [("New York", "10001"), ("San Francisco", "94103"), ("Chicago", "60601"), ("Boston", "02108")]
GB_CITIES = [("London", "SW1A 1AA"), ("Manchester", "M1 1AE"), ("Leeds", "LS1 4AP"), ("Bristol", "BS1 4DJ")]
COMPANIES = ["Acme Corp", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries", ""]
JOB_TITLES = ["Engineer", "Buyer", "Head of Sales", "Nurse", "Teacher", "Analyst", "Founder", "Designer"]
ASCII = str.maketrans("éëíóöüçñøáÉÖÜ", "eeioouncoaEOU")

# How many sources a person appears in (weights for 1, 2, 3, 4).
SOURCES_PER_PERSON = (0.30, 0.35, 0.25, 0.10)
DUPLICATE_IN_SOURCE = 0.04  # a second record of the same person in one source
CHANGED_EMAIL = 0.06  # an older record still carries the previous address
UPDATE_SHARE = 0.02  # records that are later versions of earlier ones
GB_SHARE = 0.10
HAS_PHONE = 0.75
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass
class Person:
    index: int
    first: str
    last: str
    last_ascii: str
    country: str  # US or GB
    email: str  # canonical (lower case)
    old_email: str | None
    phone_nsn: str | None  # national significant number
    city: str
    postcode: str
    birth_date: str
    company: str
    job_title: str

    @property
    def phone_e164(self) -> str | None:
        if self.phone_nsn is None:
            return None
        return ("+1" if self.country == "US" else "+44") + self.phone_nsn


def _person(rng: random.Random, index: int) -> Person:
    first = rng.choice(list(FIRST_NAMES))
    last, last_ascii = rng.choice(LAST_NAMES)
    country = "GB" if rng.random() < GB_SHARE else "US"
    local = rng.choice(
        [
            f"{first.translate(ASCII)}.{last_ascii}.{index}",
            f"{first.translate(ASCII)[0]}{last_ascii}{index}",
            f"{last_ascii}_{index}",
        ]
    ).lower()
    email = f"{local}@{rng.choice(EMAIL_DOMAINS)}"
    old_email = f"{local}.old@{rng.choice(EMAIL_DOMAINS)}" if rng.random() < CHANGED_EMAIL else None
    phone = None
    if rng.random() < HAS_PHONE:
        if country == "US":
            area, rest = US_AREAS[index % len(US_AREAS)], index // len(US_AREAS)
            phone = f"{area}{200 + (rest // 10000) % 800:03d}{rest % 10000:04d}"
        else:
            phone = f"7{400000000 + index:09d}"
    city, postcode = rng.choice(US_CITIES if country == "US" else GB_CITIES)
    birth = EPOCH.date() - timedelta(days=rng.randint(18 * 365, 85 * 365))
    return Person(
        index=index,
        first=first,
        last=last,
        last_ascii=last_ascii,
        country=country,
        email=email,
        old_email=old_email,
        phone_nsn=phone,
        city=city,
        postcode=postcode,
        birth_date=birth.isoformat(),
        company=rng.choice(COMPANIES),
        job_title=rng.choice(JOB_TITLES),
    )


# --- Presentation variants ----------------------------------------------------------------------------------


def _email_variant(rng: random.Random, email: str) -> str:
    local, _, domain = email.partition("@")
    roll = rng.random()
    if roll < 0.15:
        email = email.upper()
    elif roll < 0.45:
        email = f"{local.title()}@{domain.capitalize()}"
    if rng.random() < 0.15:
        email = rng.choice([" ", "  ", "\t"]) + email + rng.choice(["", " ", " \n"])
    return email


def _phone_variant(rng: random.Random, person: Person, source_region: str) -> str:
    nsn = person.phone_nsn
    assert nsn is not None
    if person.country == "US":
        a, e, line = nsn[:3], nsn[3:6], nsn[6:]
        international = [f"+1 {a}-{e}-{line}", f"+1 ({a}) {e}-{line}", f"+1{nsn}", f"+1 {a}.{e}.{line}"]
        if source_region == "US":
            return rng.choice([f"({a}) {e}-{line}", f"{a}-{e}-{line}", f"1-{a}-{e}-{line}", *international])
        return rng.choice([*international, f"001 {a} {e} {line}"])
    international = [f"+44 {nsn[:4]} {nsn[4:]}", f"+44{nsn}", f"+44 (0){nsn[:4]} {nsn[4:]}"]
    if source_region == "GB":
        return rng.choice([f"0{nsn[:4]} {nsn[4:]}", f"0{nsn}", *international])
    return rng.choice([*international, f"011 44 {nsn[:4]} {nsn[4:]}"])


def _first_name_variant(rng: random.Random, first: str) -> str:
    roll = rng.random()
    variants = FIRST_NAMES[first]
    if roll < 0.25 and variants:
        return rng.choice(variants)
    if roll < 0.32:
        return first.upper()
    if roll < 0.38:
        return f" {first.lower()} "
    return first


# --- Records ------------------------------------------------------------------------------------------------


@dataclass
class _Record:
    source: SourceSpec
    external_id: str
    person: Person
    payload: dict
    keys: list[tuple[str, str]]  # ground-truth normalised identifiers


def _record(
    rng: random.Random,
    source: SourceSpec,
    person: Person,
    external_id: str,
    updated_at: datetime,
    email: str,
    crm_ref: str | None,
) -> _Record:
    keys = [(source.slug, external_id)]
    region = source.region
    phone = None
    kind = source.kind
    if kind == "crm" or kind == "other":
        use_email, use_phone = True, rng.random() < 0.8
    elif kind == "erp":
        use_email, use_phone = rng.random() < 0.85, rng.random() < 0.6
    elif kind == "web":
        use_email, use_phone = rng.random() < 0.9, rng.random() < 0.3
    elif kind == "social":
        # Half of them share only a phone with the person's other records.
        use_email = person.phone_nsn is None or rng.random() < 0.5
        use_phone = not use_email or rng.random() < 0.3
    else:
        use_email, use_phone = True, rng.random() < 0.5
    if use_phone and person.phone_nsn is not None:
        phone = _phone_variant(rng, person, region)
        keys.append(("phone", person.phone_e164))
    if use_email:
        keys.append(("email", email))
        email = _email_variant(rng, email)
    else:
        email = None

    first = _first_name_variant(rng, person.first)
    attributes: dict = {}
    identifiers: dict = {}
    if kind == "erp":
        attributes = {"FirstName": first, "LastName": person.last, "EMail": email, "Phone": phone}
        if rng.random() < 0.7:
            attributes.update(
                Street=f"{rng.randint(1, 999)} Main St",
                City=person.city,
                Zip=person.postcode,
                Country=person.country,
            )
        attributes["customer_group"] = rng.choice(["retail", "wholesale", "staff"])
        if crm_ref is not None and rng.random() < 0.4:
            identifiers["crm"] = crm_ref
            keys.append(("crm", crm_ref))
    elif kind == "social":
        attributes = {"full_name": f"{first} {person.last}", "email": email, "phone": phone}
        attributes["handle"] = f"@{person.first.translate(ASCII).lower()}_{person.index}"
    elif kind == "web":
        attributes = {"email": email, "phone": phone}
        if rng.random() < 0.5:
            attributes["first_name"] = first
        attributes["newsletter"] = rng.random() < 0.4
        attributes["last_page"] = rng.choice(["/", "/pricing", "/checkout", "/blog/cdp"])
    else:
        attributes = {"first_name": first, "last_name": person.last, "email": email, "phone": phone}
        if rng.random() < 0.6:
            attributes["birth_date"] = person.birth_date
        attributes.update(city=person.city, postcode=person.postcode, country=person.country)
        if person.company and rng.random() < 0.5:
            attributes.update(company=person.company, job_title=person.job_title)
        attributes["segment"] = rng.choice(["gold", "silver", "bronze"])
    attributes = {name: value for name, value in attributes.items() if value is not None}
    payload: dict = {
        "external_id": external_id,
        "updated_at": updated_at.isoformat(),
        "attributes": attributes,
    }
    if identifiers:
        payload["identifiers"] = identifiers
    return _Record(source, external_id, person, payload, keys)


@dataclass
class Dataset:
    sources: list[SourceSpec]
    batches: list[tuple[str, list[bytes]]]  # (source slug, JSON payloads), in sending order
    records: int
    people: int
    updates: int
    expected_profiles: int
    per_source: dict[str, int]

    def payloads(self):
        """Every payload as a JSON string, in sending order (for the raw-copy baseline)."""
        for _, payloads in self.batches:
            for payload in payloads:
                yield payload.decode()


def generate(*, records: int, sources: int = 4, batch_size: int = 1000, seed: int = 1) -> Dataset:
    """``records`` payloads over ``sources`` sources, cut into batches of ``batch_size`` per source, in a
    deterministic interleaved sending order."""
    if records < 1:
        raise ValueError("at least one record")
    rng = random.Random(seed)
    specs = source_specs(sources)
    updates = int(records * UPDATE_SHARE) if records >= 100 else 0
    originals_wanted = records - updates
    originals: dict[str, list[_Record]] = {spec.slug: [] for spec in specs}
    counters = dict.fromkeys(originals, 0)
    weights = SOURCES_PER_PERSON[: len(specs)]
    total, index, people = 0, 0, 0
    while total < originals_wanted:
        person = _person(rng, index)
        index += 1
        k = rng.choices(range(1, len(weights) + 1), weights=weights)[0]
        chosen = rng.sample(specs, k)
        if rng.random() < DUPLICATE_IN_SOURCE:
            chosen.append(rng.choice(chosen))
        external_ids = []
        for spec in chosen:
            counters[spec.slug] += 1
            external_ids.append(f"{spec.slug[:1].upper()}-{counters[spec.slug]:07d}")
        crm_ref = next(
            (eid for spec, eid in zip(chosen, external_ids, strict=True) if spec.slug == "crm"), None
        )
        made = 0
        for position, (spec, external_id) in enumerate(zip(chosen, external_ids, strict=True)):
            if total >= originals_wanted:
                break
            email = person.old_email if person.old_email and position == len(chosen) - 1 else person.email
            updated_at = EPOCH + timedelta(seconds=rng.randint(0, 300 * 86400))
            originals[spec.slug].append(_record(rng, spec, person, external_id, updated_at, email, crm_ref))
            total += 1
            made += 1
        people += made > 0

    # Later versions of some records, sent after everything else of their source.
    later: dict[str, list[_Record]] = {slug: [] for slug in originals}
    pool = [record for records_ in originals.values() for record in records_]
    for record in rng.sample(pool, updates):
        # Same identifiers (so the expected components do not depend on the order of arrival), newer
        # change time, other values.
        payload = json.loads(json.dumps(record.payload))
        payload["updated_at"] = (
            datetime.fromisoformat(payload["updated_at"]) + timedelta(days=30)
        ).isoformat()
        attributes = payload["attributes"]
        if "City" in attributes or "city" in attributes:
            attributes["City" if "City" in attributes else "city"] = rng.choice(US_CITIES + GB_CITIES)[0]
        if "email" in attributes:
            attributes["email"] = _email_variant(rng, attributes["email"].strip().lower())
        attributes["job_title"] = rng.choice(JOB_TITLES)
        later[record.source.slug].append(
            _Record(record.source, record.external_id, record.person, payload, record.keys)
        )

    expected = _components(
        [record for records_ in (*originals.values(), *later.values()) for record in records_]
    )

    streams: dict[str, list[bytes]] = {}
    for slug, records_ in originals.items():
        rng.shuffle(records_)
        extra = later[slug]
        rng.shuffle(extra)
        streams[slug] = [
            json.dumps(record.payload, ensure_ascii=False, separators=(",", ":")).encode()
            for record in (*records_, *extra)
        ]
    return Dataset(
        sources=specs,
        batches=_interleave(streams, batch_size),
        records=records,
        people=people,
        updates=updates,
        expected_profiles=expected,
        per_source={slug: len(stream) for slug, stream in streams.items()},
    )


def _interleave(streams: dict[str, list[bytes]], batch_size: int) -> list[tuple[str, list[bytes]]]:
    """Cut each source's stream into batches and interleave them, each source progressing evenly."""
    order = []
    for rank, (slug, stream) in enumerate(streams.items()):
        count = -(-len(stream) // batch_size)
        for n in range(count):
            order.append(((n + 1) / count, rank, slug, stream[n * batch_size : (n + 1) * batch_size]))
    order.sort(key=lambda entry: entry[:2])
    return [(slug, payloads) for _, _, slug, payloads in order]


def _components(records: list[_Record]) -> int:
    """Connected components of the records over their ground-truth identifiers (union-find)."""
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(key):
        root = key
        while parent[root] != root:
            root = parent[root]
        while parent[key] != root:
            parent[key], key = root, parent[key]
        return root

    for record in records:
        for key in record.keys:
            parent.setdefault(key, key)
        first = find(record.keys[0])
        for key in record.keys[1:]:
            other = find(key)
            if other != first:
                parent[other] = first
    return len({find(record.keys[0]) for record in records})
