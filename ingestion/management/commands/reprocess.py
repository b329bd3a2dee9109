import uuid

from django.core.management.base import BaseCommand, CommandError

from cdp.collector import collector_tune
from ingestion.models import InboundRecord, Source
from ingestion.services import quarantine_replay


class Command(BaseCommand):
    help = "Replay quarantined records (after fixing their cause) through the processing pipeline."

    def add_arguments(self, parser):
        parser.add_argument("--source", help="Only this source (slug).")
        parser.add_argument("--batch", help="Only this batch (id).")
        parser.add_argument(
            "--pending",
            action="store_true",
            help="Also records still pending (e.g. a task lost with its broker).",
        )

    def handle(self, *args, source, batch, pending, **options):
        collector_tune()  # a long run over many records, like a worker's (cdp.collector)
        if batch:
            try:
                batch = uuid.UUID(batch)
            except ValueError:
                raise CommandError(f"--batch {batch!r} is not a batch id (a UUID)") from None
        source_obj = None
        if source:
            source_obj = Source.objects.filter(slug=source).first()
            if source_obj is None:
                raise CommandError(f"no source {source!r}")
        result = quarantine_replay(source=source_obj, batch_id=batch, include_pending=pending)
        left = InboundRecord.objects.filter(status=InboundRecord.Status.QUARANTINED).count()
        self.stdout.write(
            f"Processed {result.processed} record(s); {result.quarantined} still failing. "
            f"Quarantine now holds {left} record(s)."
        )
