"""What the source systems hold about the people: the sources (``people_sources``), the records of one
person with the corruptions they carry (``RecordMaker``), all the records in sending order (``generate``),
the JSON-lines data file every run reads (``data_write``, ``data_batches``) and the person behind each
record (``Truth``).
"""

from __future__ import annotations

import json
import random
import time
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from bench.synthetic import ERP_MAPPING, SourceSpec

from .names import EMAIL_DOMAIN_TYPOS, KEYBOARD, NICKNAMES
from .population import (
    ADDRESS_TYPO,
    BIRTH_DATE_TYPO,
    CASE_CHANGE,
    CORRUPTIONS,
    COVERAGE,
    CRM_REFERENCE,
    DAY_MONTH_SWAP,
    DUPLICATE_IN_SOURCE,
    EMAIL_TYPO,
    EPOCH,
    FAMILY_EMAIL_ON_RECORD,
    FIELDS,
    FIRST_NAME_TYPO,
    INITIAL,
    LANDLINE_ON_RECORD,
    LAST_NAME_TYPO,
    MIDDLE_INITIAL,
    NICKNAME,
    PHONE_TYPO,
    SOURCES_PER_PERSON,
    SWAPPED_NAMES,
    ZIP_VARIANT,
    Person,
    Population,
)

# --- Sources ------------------------------------------------------------------------------------------------

PEOPLE_SOURCES = [
    SourceSpec("crm", "crm", "US"),
    SourceSpec("erp", "erp", "US", ERP_MAPPING),
    SourceSpec("web", "web", "US"),
    SourceSpec("support", "support", "US"),
    SourceSpec("survey", "survey", "US"),
]
# How likely a person is to be known to each kind of source (relative weights when choosing sources).
SOURCE_REACH = {"crm": 0.35, "erp": 0.22, "web": 0.30, "support": 0.18, "survey": 0.12, "other": 0.15}
EXTERNAL_ID_PREFIX = {"crm": "CRM", "erp": "ERP", "web": "WEB", "support": "SUP", "survey": "SRV"}


def people_sources(count: int) -> list[SourceSpec]:
    """The first ``count`` sources: crm, erp, web, support, survey, then other1, other2, ..."""
    if count < 1:
        raise ValueError("at least one source")
    specs = PEOPLE_SOURCES[:count]
    specs += [SourceSpec(f"other{n}", "other", "US") for n in range(1, count - len(specs) + 1)]
    return specs


def external_id_prefix(slug: str) -> str:
    return EXTERNAL_ID_PREFIX.get(slug, slug.upper()) + "-"


# --- Records: what a source system holds about a person ------------------------------------------------------


@dataclass
class GeneratedRecord:
    """One record as a source sends it, with the truth: its person and the corruptions it carries."""

    source: str
    payload: dict
    person: Person
    corruptions: tuple[str, ...]


def _typo(rng: random.Random, word: str) -> str:
    """One keyboard slip: a neighbouring key, a dropped, doubled or swapped letter (rarely the first)."""
    if len(word) < 3:
        return word
    start = 0 if rng.random() < 0.1 else 1
    position = rng.randrange(start, len(word))
    letter = word[position]
    kind = rng.randrange(4)
    if kind == 0 and letter in KEYBOARD:
        out = word[:position] + rng.choice(KEYBOARD[letter]) + word[position + 1 :]
    elif kind == 1:
        out = word[:position] + word[position + 1 :]
    elif kind == 2:
        out = word[:position] + letter + word[position:]
    else:
        position = min(position, len(word) - 2)
        out = word[:position] + word[position + 1] + word[position] + word[position + 2 :]
    return out if out != word else word[:-1]


def _email_typo(rng: random.Random, email: str) -> str:
    """A misspelt provider, or a slip on a letter of the local part; still a valid address (a record with an
    invalid one would be quarantined at intake, which is another benchmark)."""
    local, _, domain = email.partition("@")
    if domain in EMAIL_DOMAIN_TYPOS and rng.random() < 0.5:
        return f"{local}@{rng.choice(EMAIL_DOMAIN_TYPOS[domain])}"
    letters = [i for i, ch in enumerate(local) if ch.isalpha()]
    position = rng.choice(letters)
    letter = local[position]
    roll = rng.random()
    if roll < 0.5 and letter in KEYBOARD:
        changed = local[:position] + rng.choice(KEYBOARD[letter]) + local[position + 1 :]
    else:
        changed = local[:position] + local[position + 1 :]  # a dropped letter
    if roll >= 0.75 or ".." in changed or changed.startswith(".") or changed.endswith(".") or not changed:
        changed = local[:position] + letter + local[position:]  # a doubled one
    return f"{changed}@{domain}"


def _name_case(rng: random.Random, name: str, kinds: list[str]) -> str:
    if rng.random() < CASE_CHANGE:
        kinds.append("case_change")
        return name.upper() if rng.random() < 0.6 else name.lower()
    return " ".join(part.capitalize() for part in name.split(" "))


def _phone_text(rng: random.Random, digits: str) -> str:
    a, e, line = digits[:3], digits[3:6], digits[6:]
    return rng.choice(
        [
            f"({a}) {e}-{line}",
            f"{a}-{e}-{line}",
            f"{a}.{e}.{line}",
            f"{a}{e}{line}",
            f"1-{a}-{e}-{line}",
            f"+1 {a} {e} {line}",
            f"+1{digits}",
            f"+1 ({a}) {e}-{line}",
        ]
    )


class RecordMaker:
    """The records of one person in the sources they are known to, with each source's field coverage."""

    def __init__(self, rng: random.Random, specs: list[SourceSpec]) -> None:
        self.rng = rng
        self.specs = specs
        self.reach = [SOURCE_REACH.get(spec.kind, 0.15) for spec in specs]
        self.counters = Counter()

    def _external_id(self, spec: SourceSpec) -> str:
        self.counters[spec.slug] += 1
        return f"{external_id_prefix(spec.slug)}{self.counters[spec.slug]:08d}"

    def records(self, person: Person) -> list[GeneratedRecord]:
        rng = self.rng
        count = min(rng.choices((1, 2, 3, 4), weights=SOURCES_PER_PERSON)[0], len(self.specs))
        chosen: list[SourceSpec] = []
        pool, weights = list(self.specs), list(self.reach)
        for _ in range(count):
            index = rng.choices(range(len(pool)), weights=weights)[0]
            chosen.append(pool.pop(index))
            weights.pop(index)
        if rng.random() < DUPLICATE_IN_SOURCE:
            chosen.append(rng.choice(chosen))
        ids = [self._external_id(spec) for spec in chosen]
        crm_id = next((eid for spec, eid in zip(chosen, ids, strict=True) if spec.slug == "crm"), None)
        # The older records carry what changed since (a previous address, email or surname).
        ages = sorted((rng.random() for _ in chosen), reverse=True)
        out = []
        for spec, external_id, age in zip(chosen, ids, ages, strict=True):
            older = age > 0.6 and len(chosen) > 1
            out.append(self.record(spec, external_id, person, older=older, age=age, crm_id=crm_id))
        return out

    def record(
        self,
        spec: SourceSpec,
        external_id: str,
        person: Person,
        *,
        older: bool,
        age: float,
        crm_id: str | None,
    ) -> GeneratedRecord:
        rng = self.rng
        kinds: list[str] = []
        kind = spec.kind
        coverage = COVERAGE.get(kind, COVERAGE["other"])
        has = {name: rng.random() < share for name, share in coverage.items()}

        # Names
        first, last = person.first, person.last
        if older and person.maiden:
            last = person.maiden
            kinds.append("maiden_name")
        roll = rng.random()
        if person.first in NICKNAMES and roll < NICKNAME:
            first = rng.choice(NICKNAMES[person.first])
            kinds.append("nickname")
        elif rng.random() < INITIAL and has["first_name"] and kind != "web":
            first = first[0]
            kinds.append("initial")
        if len(first) > 1 and rng.random() < FIRST_NAME_TYPO:
            first = _typo(rng, first)
            kinds.append("first_name_typo")
        if rng.random() < LAST_NAME_TYPO:
            last = _typo(rng, last)
            kinds.append("last_name_typo")
        if len(first) == 1:
            first_name = first.upper() + rng.choice(["", "."])
        else:
            first_name = _name_case(rng, first, kinds)
        if person.middle and rng.random() < MIDDLE_INITIAL:
            first_name = f"{first_name} {person.middle.upper()}."
            kinds.append("middle_initial")
        last_name = _name_case(rng, last, kinds)
        if not has["first_name"]:
            first_name = None
            kinds = [
                k for k in kinds if k not in {"nickname", "initial", "first_name_typo", "middle_initial"}
            ]
        if not has["last_name"]:
            last_name = None
            kinds = [k for k in kinds if k not in {"maiden_name", "last_name_typo"}]
        if first_name and last_name and rng.random() < SWAPPED_NAMES:
            first_name, last_name = last_name, first_name
            kinds.append("swapped_names")

        # Email
        email = None
        if has["email"]:
            email = person.email
            if older and person.old_email:
                email = person.old_email
                kinds.append("changed_email")
            elif person.family_email and rng.random() < FAMILY_EMAIL_ON_RECORD:
                email = person.family_email
                kinds.append("family_email")
            if rng.random() < EMAIL_TYPO:
                email = _email_typo(rng, email)
                kinds.append("email_typo")
            if rng.random() < 0.1:
                email = email.capitalize() if rng.random() < 0.5 else email.upper()

        # Phone: web forms ask for a mobile; the other systems hold whatever number the customer gave.
        phone = None
        landline = bool(person.landline) and kind != "web"
        landline = landline and (not person.mobile or rng.random() < LANDLINE_ON_RECORD)
        number = person.landline if landline else person.mobile
        if has["phone"] and number:
            if landline:
                kinds.append("home_phone")
            if rng.random() < PHONE_TYPO:
                position = rng.randrange(3, 10)
                digit = str((int(number[position]) + rng.randint(1, 9)) % 10)
                number = number[:position] + digit + number[position + 1 :]
                kinds.append("phone_typo")
            phone = _phone_text(rng, number)
            if phone != f"+1{number}":
                kinds.append("phone_formatted")

        # Address
        address = person.address
        if older and person.old_address is not None:
            address = person.old_address
        line = zip_code = city = state = None
        if has["address_line1"] or has["postcode"]:
            if address is not person.address:
                kinds.append("moved_address")
            zip_code = address.zip
            if rng.random() < ZIP_VARIANT:
                if zip_code.startswith("0"):
                    zip_code = zip_code.lstrip("0")
                else:
                    zip_code = f"{zip_code}-{rng.randint(1000, 9999)}"
                kinds.append("zip_variant")
        if has["address_line1"]:
            abbreviated = rng.random() < 0.55
            if abbreviated:
                kinds.append("address_abbreviated")
            line = address.line(abbreviated)
            if rng.random() < ADDRESS_TYPO:
                house, _, rest = line.partition(" ")
                if rng.random() < 0.4:
                    house = _typo(rng, house) if len(house) >= 3 else house + str(rng.randint(0, 9))
                else:
                    words = rest.split(" ")
                    words[0] = _typo(rng, words[0])
                    rest = " ".join(words)
                line = f"{house} {rest}"
                kinds.append("address_typo")
            if rng.random() < CASE_CHANGE:
                line = line.upper()
            city, state = address.city, address.state

        # Birth date
        birth = None
        if has["birth_date"]:
            value = person.birth
            if value.day <= 12 and value.day != value.month and rng.random() < DAY_MONTH_SWAP:
                value = value.replace(month=value.day, day=value.month)
                kinds.append("birth_date_day_month_swap")
            elif rng.random() < BIRTH_DATE_TYPO:
                roll = rng.random()
                if roll < 0.4:
                    value = value.replace(year=value.year + rng.choice([-1, 1]), day=min(value.day, 28))
                elif roll < 0.8:
                    value = value.replace(day=1 + (value.day + rng.randint(0, 26)) % 28)
                else:
                    month = 1 + (value.month + rng.randint(0, 10)) % 12
                    value = value.replace(month=month, day=min(value.day, 28))
                if value != person.birth:
                    kinds.append("birth_date_typo")
            birth = value.isoformat()

        updated_at = EPOCH - timedelta(days=age * 1500 + rng.random())
        attributes = self._attributes(
            spec, person, first_name, last_name, email, phone, line, city, state, zip_code, birth
        )
        payload: dict = {
            "external_id": external_id,
            "updated_at": updated_at.isoformat(),
            "attributes": attributes,
        }
        if kind == "erp" and crm_id and rng.random() < CRM_REFERENCE:
            payload["identifiers"] = {"crm": crm_id}
        return GeneratedRecord(spec.slug, payload, person, tuple(dict.fromkeys(kinds)))

    def _attributes(
        self, spec, person, first_name, last_name, email, phone, line, city, state, zip_code, birth
    ) -> dict:
        rng = self.rng
        kind = spec.kind
        if kind == "erp":
            attributes = {
                "FirstName": first_name,
                "LastName": last_name,
                "EMail": email,
                "Phone": phone,
                "Street": line,
                "City": city,
                "Zip": zip_code,
                "Country": "US" if line else None,
                "customer_group": rng.choice(["retail", "wholesale", "staff"]),
            }
        elif kind == "support" and first_name and last_name and rng.random() < 0.6:
            attributes = {"full_name": f"{first_name} {last_name}", "email": email, "phone": phone}
            attributes["tickets"] = rng.randint(1, 12)
        else:
            attributes = {
                "first_name": first_name,
                "last_name": last_name,
                "email": email,
                "phone": phone,
                "birth_date": birth,
                "address_line1": line,
                "city": city,
                "region": state,
                "postcode": zip_code,
                "country": "US" if line else None,
            }
            if kind in {"crm", "other", "survey"} and rng.random() < 0.35:
                attributes["gender"] = person.gender
            if kind in {"crm", "other"} and person.company:
                attributes["company"] = person.company.title()
            if kind == "web":
                attributes["newsletter"] = rng.random() < 0.4
        return {name: value for name, value in attributes.items() if value is not None}


# --- The stream ---------------------------------------------------------------------------------------------


@dataclass
class GenerationStats:
    records: int = 0
    people: int = 0
    households: int = 0
    people_in_shared_households: int = 0
    per_source: Counter = field(default_factory=Counter)
    corruptions: Counter = field(default_factory=Counter)
    missing: Counter = field(default_factory=Counter)  # records without a value for each field in FIELDS

    def as_dict(self) -> dict:
        return {
            "records": self.records,
            "people": self.people,
            "households": self.households,
            "people_in_shared_households": self.people_in_shared_households,
            "per_source": dict(self.per_source),
            "corruptions": {kind: self.corruptions[kind] for kind in CORRUPTIONS},
            "missing": {name: self.missing[name] for name in FIELDS},
        }


def _present_fields(attributes: dict, mapping: dict) -> set[str]:
    names = {mapping.get(name, name) for name in attributes}
    if "full_name" in names:
        names |= {"first_name", "last_name"}
    return names


def generate(
    *, records: int, sources: int = 4, seed: int = 0, window: int = 5000, stats: GenerationStats | None = None
) -> Iterator[GeneratedRecord]:
    """``records`` records of people over ``sources`` sources, in sending order, deterministic for a seed.

    People are made household by household; their records go to the sources they are known to, each source
    keeping a shuffle buffer of ``window`` records (so one person's records do not arrive side by side, and
    memory stays bounded whatever the size). Pass ``stats`` to have it filled as records are produced.
    """
    if records < 1:
        raise ValueError("at least one record")
    specs = people_sources(sources)
    mapping = {spec.slug: spec.field_mapping for spec in specs}
    population = Population(seed)
    rng = random.Random(f"records:{seed}")
    maker = RecordMaker(rng, specs)
    buffers: dict[str, list[GeneratedRecord]] = {spec.slug: [] for spec in specs}
    stats = stats if stats is not None else GenerationStats()
    made = 0
    while made < records:
        members = population.household()
        stats.households += 1
        for person in members:
            made_here = maker.records(person)[: records - made]
            if not made_here:
                break
            stats.people += 1
            stats.people_in_shared_households += len(members) > 1
            for record in made_here:
                made += 1
                buffer = buffers[record.source]
                buffer.append(record)
                if len(buffer) > window:
                    position = rng.randrange(len(buffer))
                    buffer[position], buffer[-1] = buffer[-1], buffer[position]
                    yield _counted(buffer.pop(), stats, mapping)
    for slug in list(buffers):
        buffer = buffers.pop(slug)
        rng.shuffle(buffer)
        for record in buffer:
            yield _counted(record, stats, mapping)


def _counted(record: GeneratedRecord, stats: GenerationStats, mapping: dict) -> GeneratedRecord:
    stats.records += 1
    stats.per_source[record.source] += 1
    stats.corruptions.update(record.corruptions)
    present = _present_fields(record.payload["attributes"], mapping[record.source])
    stats.missing.update(name for name in FIELDS if name not in present)
    return record


# --- The data file: what every run reads ---------------------------------------------------------------------


def data_write(
    path: Path, *, records: int, sources: int, seed: int, batch_size: int = 1000, window: int = 5000
) -> dict:
    """Generate the records into ``path`` as JSON lines, one batch of one source per line:
    ``{"source": slug, "records": [payload, ...], "persons": [person id, ...]}``. Returns the facts of the
    data (also written to ``<path>.meta.json``)."""
    stats = GenerationStats()
    pending: dict[str, tuple[list[dict], list[int]]] = {}
    batches = 0
    started = time.perf_counter()
    with open(path, "w", encoding="utf-8") as out:

        def flush(slug: str) -> None:
            nonlocal batches
            payloads, persons = pending.pop(slug)
            line = {"source": slug, "records": payloads, "persons": persons}
            out.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
            batches += 1

        for record in generate(records=records, sources=sources, seed=seed, window=window, stats=stats):
            payloads, persons = pending.setdefault(record.source, ([], []))
            payloads.append(record.payload)
            persons.append(record.person.id)
            if len(payloads) >= batch_size:
                flush(record.source)
        for slug in list(pending):
            flush(slug)
    meta = {
        "records": records,
        "sources": [spec.slug for spec in people_sources(sources)],
        "seed": seed,
        "batch_size": batch_size,
        "batches": batches,
        "generate_seconds": time.perf_counter() - started,
        **stats.as_dict(),
    }
    Path(f"{path}.meta.json").write_text(json.dumps(meta, indent=1))
    return meta


def data_batches(path: Path) -> Iterator[tuple[str, list[dict], list[int]]]:
    """The batches of a data file, in sending order: (source slug, payloads, person ids)."""
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            batch = json.loads(line)
            yield batch["source"], batch["records"], batch["persons"]


class Truth:
    """The person behind every record, by source and external id; a few bytes per record."""

    def __init__(self) -> None:
        self.by_source: dict[str, array] = {}

    @staticmethod
    def _number(external_id: str) -> int:
        return int(external_id.rsplit("-", 1)[1])

    def add(self, slug: str, external_id: str, person: int) -> None:
        persons = self.by_source.setdefault(slug, array("l"))
        number = self._number(external_id)
        if number >= len(persons):
            persons.extend([-1] * (number + 1 - len(persons)))
        persons[number] = person

    def person(self, slug: str, external_id: str) -> int:
        persons = self.by_source.get(slug)
        number = self._number(external_id)
        if persons is None or number >= len(persons) or persons[number] < 0:
            raise KeyError(f"{slug}:{external_id} was not generated")
        return persons[number]
