"""A small, realistic customer population for the matching tests: a CRM and an ERP describing partly the
same people the way real exports do (nicknames, typos, abbreviated streets, a swapped birth day and month,
households sharing a surname and an address), with no email or phone shared between the two systems, so
that only probabilistic matching can join them. Deterministic for a seed."""

import random

FIRST = [
    "James", "Mary", "Robert", "Patricia", "Michael", "Jennifer", "William", "Linda", "David", "Elizabeth",
    "Richard", "Barbara", "Joseph", "Susan", "Thomas", "Jessica", "Charles", "Sarah", "Daniel", "Karen",
    "Matthew", "Nancy", "Anthony", "Lisa", "Mark", "Margaret", "Steven", "Sandra", "Andrew", "Ashley",
    "Priya", "Mei", "Oluwaseun", "Lars", "Ana", "Katarzyna", "Hiroshi", "Fatima", "Giulia", "Mateo",
]  # fmt: skip
LAST = [
    "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez", "Wilson",
    "Anderson", "Taylor", "Thomas", "Moore", "Jackson", "Martin", "Lee", "Thompson", "White", "Harris",
    "Clark", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Nguyen",
    "Okafor", "Lindqvist", "Kowalski", "Haddad", "Sato", "Rossi", "Fernandes", "Novak", "Schneider", "Ali",
]  # fmt: skip
STREETS = [
    ("Church", "Road"), ("Station", "Road"), ("Park", "Avenue"), ("Mill", "Lane"), ("Victoria", "Street"),
    ("Green", "Lane"), ("Manor", "Road"), ("Kings", "Road"), ("Queens", "Road"), ("New", "Street"),
    ("Grange", "Road"), ("School", "Lane"), ("North", "Street"), ("Richmond", "Road"), ("Albert", "Street"),
]  # fmt: skip
TOWNS = [
    ("Leeds", "LS1 4AP"), ("York", "YO1 7HH"), ("Bath", "BA1 1LT"), ("Derby", "DE1 2FS"),
    ("Exeter", "EX1 1JG"), ("Oxford", "OX1 2JD"), ("Durham", "DH1 3NJ"), ("Hull", "HU1 2AA"),
    ("Chester", "CH1 2HU"), ("Norwich", "NR2 1NH"), ("Lincoln", "LN1 3BL"), ("Carlisle", "CA3 8QA"),
]  # fmt: skip
NICKNAMES = {"James": "Jim", "Robert": "Bob", "William": "Bill", "Elizabeth": "Liz", "Richard": "Rick",
             "Michael": "Mike", "Thomas": "Tom", "Joseph": "Joe", "Daniel": "Dan", "Margaret": "Peggy"}  # fmt: skip
ABBREVIATIONS = {"Road": "Rd", "Street": "St", "Avenue": "Ave", "Lane": "Ln"}


def _typo(rng: random.Random, word: str) -> str:
    if len(word) < 4:
        return word
    at = rng.randrange(1, len(word) - 1)
    return word[:at] + word[at + 1] + word[at] + word[at + 2 :]


def population(people: int = 300, seed: int = 7) -> tuple[list[dict], list[dict]]:
    """(crm records, erp records) as the records API takes them. About half the people are in both; one
    person in ten shares a home (surname, address, phone-less) with another person of the CRM."""
    rng = random.Random(seed)
    crm, erp = [], []
    homes: list[tuple[str, str, tuple[str, str]]] = []
    for n in range(people):
        first = rng.choice(FIRST)
        if homes and rng.random() < 0.1:
            last, street, town = rng.choice(homes)  # a household member: another first name and age
        else:
            last = rng.choice(LAST)
            name, kind = rng.choice(STREETS)
            street, town = f"{rng.randint(1, 180)} {name} {kind}", rng.choice(TOWNS)
            homes.append((last, street, town))
        birth = f"{rng.randint(1940, 2002)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        crm.append(
            {
                "external_id": f"C{n:04d}",
                "attributes": {
                    "first_name": first,
                    "last_name": last,
                    "birth_date": birth,
                    "address_line1": street,
                    "city": town[0],
                    "postcode": town[1],
                    "email": f"{first}.{last}.{n}@example.org".lower(),
                },
            }
        )
        if rng.random() < 0.5:
            given = first
            roll = rng.random()
            if roll < 0.15 and first in NICKNAMES:
                given = NICKNAMES[first]
            elif roll < 0.25:
                given = _typo(rng, first)
            family = _typo(rng, last) if rng.random() < 0.08 else last
            words = street.split()
            if rng.random() < 0.5:
                words[-1] = ABBREVIATIONS.get(words[-1], words[-1])
            year, month, day = birth.split("-")
            roll = rng.random()
            if roll < 0.05 and int(day) <= 12:
                birth = f"{year}-{day}-{month}"
            elif roll < 0.10:
                birth = f"{year}-{month}-{int(day) % 28 + 1:02d}"  # a mistyped day
            attributes = {
                "first_name": given,
                "last_name": family,
                "birth_date": birth if rng.random() < 0.92 else None,
                "address_line1": " ".join(words) if rng.random() < 0.95 else None,
                "city": town[0],
                "postcode": town[1] if rng.random() < 0.9 else town[1].replace(" ", ""),
                "phone": f"+44 7700 9{n:05d}",
            }
            erp.append({"external_id": f"E{n:04d}", "attributes": attributes})
    return crm, erp
