"""Guardrail of the deterministic resolver: an identifier shared by clearly different people does not merge
them.

Families share an email address or a landline; a CRM keeps a company switchboard on several contacts. When a
record would join a profile only through such an identifier while its given name *and* its birth date both
disagree with a record already there (the matcher's own test, ``profiles.matching.cluster.records_conflict``:
names beyond typo, nickname, initial and swap tolerance; dates that are not a typo or a day/month swap), the
link is not made: the record keeps its own profile and the refusal is kept as a conflict for a data steward,
who may merge the two anyway from the admin. One disagreement alone is not enough (sources mistype birth
dates and use preferred names), and a missing value contradicts nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from uuid import UUID

from profiles.matching.cluster import records_conflict
from profiles.matching.records import MatchRecord
from profiles.models import SourceRecord

STRONG_DISAGREEMENT = "birth dates and given names disagree"

# Only records that say something about who they are can contradict each other.
_PERSONAL = ("first_name", "full_name")


def _telling(attributes: Mapping[str, object]) -> bool:
    return bool(attributes.get("birth_date")) and any(attributes.get(name) for name in _PERSONAL)


class IdentityGuard:
    """The live records of the profiles a chunk may link to, loaded once, compared lazily."""

    def __init__(self, records: Mapping[UUID, list[tuple[int, Mapping[str, object]]]]):
        self.records = records
        self._matchable: dict[object, MatchRecord] = {}

    @classmethod
    def load(cls, profile_ids: Collection[UUID]) -> IdentityGuard:
        """One query: the records of these profiles that carry a given name and a birth date."""
        records: dict[UUID, list[tuple[int, Mapping[str, object]]]] = defaultdict(list)
        if profile_ids:
            rows = SourceRecord.objects.filter(
                profile_id__in=list(profile_ids),
                deleted_at__isnull=True,
                attributes__has_key="birth_date",
            ).values_list("id", "profile_id", "attributes")
            for record_id, profile_id, attributes in rows:
                if _telling(attributes):
                    records[profile_id].append((record_id, attributes))
        return cls(records)

    def _record(self, key: object, attributes: Mapping[str, object]) -> MatchRecord:
        record = self._matchable.get(key)
        if record is None:
            record = self._matchable[key] = MatchRecord.from_attributes(key, attributes)
        return record

    def clash(
        self,
        attributes: Mapping[str, object],
        *,
        record_id: int | None,
        profile_ids: Iterable[UUID],
        pending: Iterable[tuple[str, Mapping[str, object]]] = (),
    ) -> tuple[str, int | str] | None:
        """(reason, the other record: its id, or the external id of a record of this chunk) when a record of
        these profiles, or one of this chunk already placed with them (``pending``), is clearly somebody
        else; None otherwise. ``record_id``: the stored version of this record, never compared with itself."""
        if not _telling(attributes):
            return None
        others: list[tuple[object, int | str, Mapping[str, object]]] = [
            (record, record, attrs)
            for profile_id in profile_ids
            for record, attrs in self.records.get(profile_id, ())
            if record != record_id
        ]
        others += [
            (("pending", external_id), external_id, attrs)
            for external_id, attrs in pending
            if _telling(attrs)
        ]
        if not others:
            return None
        mine = MatchRecord.from_attributes(None, attributes)
        for cache_key, other, other_attributes in others:
            if records_conflict(mine, self._record(cache_key, other_attributes)) == STRONG_DISAGREEMENT:
                return STRONG_DISAGREEMENT, other
        return None
