"""Derived state of a profile (golden record, identities, name) recomputed from its live source records."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection
from uuid import UUID

from django.db import transaction
from django.db.models import Case, Exists, F, Max, OuterRef, Value, When
from django.utils import timezone

from cdp.db import values_update
from cdp.fields import JSONField
from ingestion.models import InboundRecord, Source
from profiles.golden import Candidate, display_name, golden_record, name_search_text
from profiles.models import Identity, Profile, SourceRecord, SurvivorshipRule

GOLDEN_REFRESH_CHUNK_SIZE = 1000


def survivorship_rules_load() -> dict[str, str]:
    """Attribute -> survivorship rule, as staff set them in the admin (one query)."""
    return dict(SurvivorshipRule.objects.values_list("attribute", "rule"))


def profiles_refresh(*, profile_ids: Collection[UUID], orphans_in: Collection[UUID] | None = None) -> None:
    """Recompute golden values and lineage, and drop identities no live record carries any more.

    Set-based: a fixed number of queries for any number of profiles. Call inside the transaction that
    changed the records, with the profiles locked. ``orphans_in``: the only profiles that may hold such
    identities (a record of theirs lost an identifier, was deleted or moved away), when the caller knows;
    None: any of them. A profile that only gained records, or merged, cannot have one.
    """
    if not profile_ids:
        return
    sources = {pk: (slug, rank) for pk, slug, rank in Source.objects.values_list("id", "slug", "trust_rank")}
    rules = survivorship_rules_load()
    candidates: dict[UUID, list[Candidate]] = defaultdict(list)
    carried: dict[UUID, set[tuple[str, str]]] = defaultdict(set)
    checked = profile_ids if orphans_in is None else set(orphans_in).intersection(profile_ids)
    # A record's version_at is the source's change time when the source stated one: the records API's
    # updated_at, or the timestamp of the tracking message the record was built from. Otherwise it is only
    # when the version reached us, which most_recent ranks below any stated change time. (The message is
    # looked for only when no updated_at was stated.)
    from_event = Case(
        When(source_updated_at__isnull=False, then=Value(False)),
        default=Exists(
            InboundRecord.objects.filter(pk=OuterRef("inbound_seq"), operation=InboundRecord.Operation.EVENT)
        ),
    )
    # A record's identifiers are read only where an identity may have lost its last record.
    if orphans_in is None:
        carried_column = F("identifiers")
    elif checked:
        carried_column = Case(When(profile_id__in=checked, then=F("identifiers")), default=None)
    else:
        carried_column = Value(None, output_field=JSONField())
    rows = (
        SourceRecord.objects.filter(profile_id__in=profile_ids, deleted_at__isnull=True)
        .annotate(from_event=from_event, carried=carried_column)
        .values_list(
            "id",
            "profile_id",
            "source_id",
            "external_id",
            "attributes",
            "carried",
            "version_at",
            "source_updated_at",
            "from_event",
        )
    )
    for (
        record_id,
        profile_id,
        source_id,
        external_id,
        attributes,
        identifiers,
        version_at,
        stated,
        event,
    ) in rows:
        slug, rank = sources[source_id]
        candidates[profile_id].append(
            Candidate(
                record_id=record_id,
                source=slug,
                external_id=external_id,
                trust_rank=rank,
                observed_at=version_at,
                attributes=attributes,
                source_time=stated is not None or event,
            )
        )
        if identifiers:
            carried[profile_id].update((kind, value) for kind, value in identifiers)

    orphaned = []
    if checked:
        identities = Identity.objects.filter(profile_id__in=checked)
        orphaned = [
            identity_id
            for identity_id, profile_id, kind, value in identities.values_list(
                "id", "profile_id", "type", "value"
            )
            if (kind, value) not in carried[profile_id]
        ]
    if orphaned:
        Identity.objects.filter(id__in=orphaned).delete()

    now = timezone.now()
    values_update(
        model=Profile,
        fields=[*DERIVED_FIELDS, "updated_at"],
        rows=[
            (profile_id, *profile_derived(candidates.get(profile_id, ()), rules), now)
            for profile_id in profile_ids
        ],
    )


# The columns of a profile derived from its live records, in the order ``profile_derived`` gives them.
DERIVED_FIELDS = ("golden", "lineage", "display_name", "search_name", "status")


def profile_derived(candidates: Collection[Candidate], rules: dict[str, str]) -> tuple:
    """A profile's golden values, their lineage, its name as shown and as searched, and its status."""
    golden, lineage = golden_record(candidates, rules)
    status = Profile.Status.ACTIVE if candidates else Profile.Status.EMPTY
    return golden, lineage, display_name(golden), name_search_text(golden), status


def golden_records_refresh(
    *,
    all_profiles: bool = False,
    chunk_size: int = GOLDEN_REFRESH_CHUNK_SIZE,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Recompute the golden records of active profiles after a survivorship rule changed; returns how many.

    By default only the profiles last computed before the newest rule change (``Profile.updated_at`` earlier
    than the rule's ``updated_at``); ``all_profiles`` recomputes every one (after a rule was deleted, or a
    source's trust rank changed). Walks the profiles in primary-key order, one transaction per chunk with the
    chunk's profiles locked like resolution locks them, so it runs beside live intake and can be stopped and
    run again at any time.
    """
    from .resolution import profiles_lock  # resolution calls profiles_refresh: imported here, not above

    profiles = Profile.objects.filter(status=Profile.Status.ACTIVE)
    if not all_profiles:
        changed_at = SurvivorshipRule.objects.aggregate(latest=Max("updated_at"))["latest"]
        if changed_at is None:
            return 0
        profiles = profiles.filter(updated_at__lt=changed_at)
    refreshed, after = 0, None
    while True:
        page = profiles.filter(pk__gt=after) if after is not None else profiles
        ids = list(page.order_by("pk").values_list("pk", flat=True)[:chunk_size])
        if not ids:
            return refreshed
        after = ids[-1]
        with transaction.atomic():
            current = profiles_lock(ids)
            # A profile merged meanwhile was refreshed by that merge; only the ones still itself are redone.
            live = [pk for pk in ids if current.get(pk) == pk]
            profiles_refresh(profile_ids=live)
        refreshed += len(live)
        if progress is not None:
            progress(refreshed)
