"""What an erasure must also take out of the derived data that holds no row of the person: the words of their
name in the search dictionary, and their values in the matching model's term frequencies."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from django.db import connection

from profiles.matching.records import MatchRecord
from profiles.models import MatchModelVersion
from profiles.selectors import name_words


def person_traces_forget(*, attributes: Iterable[Mapping[str, object]], search_names: Iterable[str]) -> None:
    """Call after the person's profiles and records are deleted, in the same transaction.

    A rare surname alone can identify someone: the dictionary of name words loses every word of these names
    that no remaining profile uses, and every stored matching model loses the term frequencies of the values
    the person's records had (they are kept for values seen at least twice, which one person's two records
    can be).
    """
    words = sorted({word for name in search_names for word in name_words(name or "") if word})
    if words and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM profiles_name_word w WHERE w.word = ANY(%s) AND NOT EXISTS ("
                " SELECT 1 FROM profiles_profile p"
                " WHERE regexp_split_to_array(p.search_name, '[^a-z0-9]+') @> ARRAY[w.word])",
                [words],
            )
    values: set[str] = set()
    for record_attributes in attributes:
        record = MatchRecord.from_attributes(None, record_attributes)
        for name in record.__slots__:
            value = getattr(record, name)
            if isinstance(value, str) and value:
                values.add(value)
            elif isinstance(value, tuple):
                values.update(item for item in value if isinstance(item, str) and item)
    if not values:
        return
    for version in MatchModelVersion.objects.select_for_update():
        changed = False
        for comparison in version.params.get("comparisons", []):
            frequencies = comparison.get("frequencies") or {}
            for value in values & frequencies.keys():
                del frequencies[value]
                changed = True
        if changed:
            version.save(update_fields=["params"])
