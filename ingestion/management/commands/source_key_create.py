from django.core.management.base import BaseCommand, CommandError

from ingestion.models import Source, SourceKey
from ingestion.services import source_key_create


class Command(BaseCommand):
    help = "Issue another API key for a source (printed as the last line of output)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", default="")
        parser.add_argument(
            "--scope",
            action="append",
            choices=SourceKey.Scope.values,
            help="Repeat for several; default: records:write and events:write.",
        )

    def handle(self, *args, slug, name, scope, **options):
        source = Source.objects.filter(slug=slug).first()
        if source is None:
            raise CommandError(f"no source {slug!r}")
        key, secret = source_key_create(source=source, scopes=scope, name=name)
        self.stdout.write(f"New key for {slug} with scopes {', '.join(key.scopes)} (shown once):")
        self.stdout.write(secret)
