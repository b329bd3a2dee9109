from .models import IdentifierType, Source
from .normalise import SourceRules


def identifier_normalisers() -> dict[str, str]:
    return dict(IdentifierType.objects.values_list("name", "normaliser"))


def source_rules(source: Source, normalisers: dict[str, str] | None = None) -> SourceRules:
    return SourceRules(
        slug=source.slug,
        default_region=source.default_region,
        field_mapping=source.field_mapping or {},
        identifier_normalisers=normalisers if normalisers is not None else identifier_normalisers(),
    )


def batch_status(batch) -> dict:
    """Counts and errors of one batch; counts are derived from its records, never stored twice."""
    from django.db.models import Count

    from .models import InboundRecord

    Status, Stage = InboundRecord.Status, InboundRecord.Stage
    counts = {
        (status, stage): n
        for status, stage, n in batch.records.values_list("status", "error_stage")
        .annotate(n=Count("id"))
        .order_by()
    }
    outcomes = dict(
        batch.records.filter(status=Status.PROCESSED)
        .values_list("outcome")
        .annotate(n=Count("id"))
        .order_by()
    )
    errors = [
        {"index": index, "external_id": external_id, "stage": stage, "field": field, "reason": reason}
        for index, external_id, stage, field, reason in batch.records.filter(status=Status.QUARANTINED)
        .order_by("index")
        .values_list("index", "external_id", "error_stage", "error_field", "error")[:1000]
    ]
    pending = sum(n for (status, _), n in counts.items() if status == Status.PENDING)
    return {
        "id": str(batch.pk),
        "source": batch.source.slug,
        "kind": batch.kind,
        "received_at": batch.received_at,
        "complete": pending == 0,
        "counts": {
            "received": batch.received_count,
            "accepted": batch.received_count - counts.get((Status.QUARANTINED, Stage.VALIDATION), 0),
            "rejected": counts.get((Status.QUARANTINED, Stage.VALIDATION), 0),
            "pending": pending,
            "processed": sum(n for (status, _), n in counts.items() if status == Status.PROCESSED),
            "quarantined": counts.get((Status.QUARANTINED, Stage.PROCESSING), 0),
        },
        "outcomes": outcomes,
        "errors": errors,
    }
