from django.core.management.base import BaseCommand, CommandError

from cdp.collector import collector_tune
from profiles.services.refresh import GOLDEN_REFRESH_CHUNK_SIZE, golden_records_refresh


class Command(BaseCommand):
    help = (
        "Recompute golden records after survivorship rules changed: by default the profiles computed before the "
        "latest rule change; with --all every active profile (after deleting a rule or changing trust ranks)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", dest="all_profiles", help="Every active profile.")
        parser.add_argument(
            "--chunk-size",
            type=int,
            default=GOLDEN_REFRESH_CHUNK_SIZE,
            help=f"Profiles per transaction (default {GOLDEN_REFRESH_CHUNK_SIZE}).",
        )

    def handle(self, *args, all_profiles, chunk_size, **options):
        collector_tune()  # a long run over many records, like a worker's (cdp.collector)
        if chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1")
        verbose = options["verbosity"] > 1

        def progress(done: int) -> None:
            if verbose:
                self.stdout.write(f"  {done} profile(s) recomputed")

        count = golden_records_refresh(all_profiles=all_profiles, chunk_size=chunk_size, progress=progress)
        self.stdout.write(f"Recomputed the golden records of {count} profile(s).")
