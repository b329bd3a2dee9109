"""bench.people --misses: every person left split is accounted for, in one category, by the pair of their
records that came closest to being joined."""

import argparse

from bench.people import MISS_NO_KEY, MISS_ORDER, data_write, miss_report, run_engine
from profiles.matching import MatchRecord, model_estimate


def test_every_split_person_of_an_engine_run_is_in_one_category(tmp_path):
    path = tmp_path / "people.jsonl"
    meta = data_write(path, records=400, sources=4, seed=3)

    result = run_engine(path, meta, argparse.Namespace(misses=True))

    misses = result["misses"]
    assert list(misses) == [category for category in MISS_ORDER if category in misses]
    split = result["stages"]["engine"]["people_split"]
    assert split > 0 and sum(entry["people"] for entry in misses.values()) == split
    assert all(sum(entry["evidence"].values()) == entry["people"] for entry in misses.values())


def test_a_person_whose_records_share_no_key_and_one_whose_pair_is_uncertain():
    def record(n, **attributes):
        return MatchRecord.from_attributes(n, attributes, source="crm" if n % 2 else "web")

    records = [
        # person 0: nothing in common that any blocking key sees
        record(0, first_name="Ruth", last_name="Calloway", postcode="10001"),
        record(1, email="rc1970@example.org"),
        # person 1: the same names and nothing else
        record(2, first_name="Amelia", last_name="Brightwater", phone="+12125550100"),
        record(3, first_name="Amelia", last_name="Brightwater", email="ab@example.org"),
    ]
    strangers = [
        record(10 + n, first_name=f"N{n}", last_name=f"Other{n}", postcode="20002") for n in range(40)
    ]
    everyone = records + strangers
    model = model_estimate(everyone, [(0, 1), (2, 3)])
    persons = [0, 0, 1, 1] + [100 + n for n in range(40)]
    clusters = list(range(len(everyone)))  # nobody joined

    misses = miss_report(everyone, persons, clusters, model)

    assert misses[MISS_NO_KEY]["people"] == 1 and misses[MISS_NO_KEY]["evidence"] == {"nothing": 1}
    # the other pair shares the sounds of its names: it was compared, and what it agrees on is the names
    entry, *rest = [e for c, e in misses.items() if c != MISS_NO_KEY]
    assert not rest and entry == {"people": 1, "evidence": {"names": 1}}
