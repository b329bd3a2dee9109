from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from ingestion.models import Source
from ingestion.services import SourceConflict, source_create, source_key_create


class Command(BaseCommand):
    help = "Create a source system and print a new API key for it (the key is the last line of output)."

    def add_arguments(self, parser):
        parser.add_argument(
            "slug", help="Short name used in URLs and as the identifier type of its ids, e.g. crm."
        )
        parser.add_argument("--kind", required=True, choices=Source.Kind.values)
        parser.add_argument("--name", default="")
        parser.add_argument("--trust-rank", type=int, default=None, help="Higher wins in survivorship.")
        parser.add_argument("--region", default="US", help="Default country for phone numbers (ISO code).")

    def handle(self, *args, slug, kind, name, trust_rank, region, **options):
        try:
            source = source_create(
                slug=slug, kind=kind, name=name, trust_rank=trust_rank, default_region=region
            )
        except (SourceConflict, ValidationError) as exc:
            raise CommandError(str(exc)) from None
        _, secret = source_key_create(source=source)
        self.stdout.write(
            f"Created source {source.slug} ({source.get_kind_display()}, trust rank {source.trust_rank})."
        )
        self.stdout.write("API key (shown once; also the Segment write key):")
        self.stdout.write(secret)
