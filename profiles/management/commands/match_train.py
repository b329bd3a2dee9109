from django.core.management.base import BaseCommand, CommandError

from cdp.collector import collector_tune
from profiles.matching.model import DEFAULT_TRAINING_SESSIONS
from profiles.services.matching import (
    MAX_TRAINING_RECORDS,
    TrainingImpossible,
    match_backlog,
    match_model_train,
)


class Command(BaseCommand):
    help = (
        "Estimate the probabilistic matching model from the live records (EM, term frequencies; on large tables "
        "a random sample of records, with whole blocks drawn from all of them for EM), store it, and activate "
        "it when the data holds enough duplicates to learn from."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--sample",
            type=int,
            default=MAX_TRAINING_RECORDS,
            help=f"At most this many records, drawn at random (default {MAX_TRAINING_RECORDS:,}).",
        )
        parser.add_argument("--seed", type=int, default=0, help="Seed of the sampling.")
        parser.add_argument(
            "--no-activate",
            action="store_true",
            help="Store the estimate without making it the active model.",
        )
        parser.add_argument(
            "--no-backlog",
            action="store_true",
            help="Do not match the records alone on their profile with the new model afterwards.",
        )

    def handle(self, *args, sample, seed, no_activate, no_backlog, **options):
        collector_tune()  # a long run over many records, like a worker's (cdp.collector)
        if sample < 2:
            raise CommandError("--sample must be at least 2")
        try:
            training = match_model_train(max_records=sample, seed=seed, activate=not no_activate)
        except TrainingImpossible as exc:
            raise CommandError(str(exc)) from None
        out = self.stdout.write
        sampled = " (a random sample)" if training.records < training.live_records else ""
        out(
            f"Estimated from {training.records:,} of {training.live_records:,} live records{sampled}, "
            f"sources: {', '.join(f'{s} {n:,}' for s, n in sorted(training.sources.items()))}; "
            f"{training.candidate_pairs:,} candidate pairs ({training.prior_pairs:,} used for the prior); "
            f"{training.seconds:.1f} s."
        )
        blocks = training.version.params["training"].get("session_records")
        if blocks:
            sessions = ", ".join(
                f"{session.rule.name} {count:,}"
                for session, count in zip(DEFAULT_TRAINING_SESSIONS, blocks, strict=True)
            )
            out(f"EM on whole blocks drawn from all the live records: records per session {sessions}.")
        model = training.model
        out(
            f"Share of matches among candidate pairs (prior): {model.match_share:.5f};"
            f" about {training.expected_matches:,.0f} matching pairs."
        )
        out(f"{'comparison':15} {'level':28} {'m':>8} {'u':>10} {'weight':>8}")
        for params in model.params:
            for level, name in enumerate(params.levels):
                out(
                    f"{params.name:15} {name:28} {params.m[level]:8.4f} {params.u[level]:10.6f}"
                    f" {params.weight(level):8.2f}"
                )
            if params.term_frequency:
                out(
                    f"{'':15} (exact agreement adjusted by term frequency over {params.value_count:,} values)"
                )
        state = "active" if training.activated else "stored, not active"
        out(f"Model version {training.version.pk}: {state}. {training.reason}.")
        if training.activated and not no_backlog:
            examined = match_backlog()
            out(f"Matched {examined:,} record(s) alone on their profile with the new model.")
