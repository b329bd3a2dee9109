import json

from django.core.management.base import BaseCommand, CommandError

from cdp.collector import collector_tune
from profiles.services.reevaluation import plan_summary, resolution_plan, resolution_plan_apply

SHOWN = 20


class Command(BaseCommand):
    help = (
        "Re-evaluate every live record with the current identifier rules and matching model; report the "
        "profiles that would merge or split, and apply it unless --dry-run."
    )

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", help="Every live record (required).")
        parser.add_argument("--dry-run", action="store_true", help="Report only; change nothing.")
        parser.add_argument("--json", action="store_true", help="Print the plan's counts as JSON.")
        parser.add_argument("--actor", default="resolve --all", help="Recorded on merges and splits.")

    def handle(self, *args, dry_run, actor, **options):
        collector_tune()  # a long run over many records, like a worker's (cdp.collector)
        every, as_json = options["all"], options["json"]
        if not every:
            raise CommandError("say which records: --all (every live record)")
        plan = resolution_plan()
        summary = plan_summary(plan)
        if as_json:
            self.stdout.write(_json(summary))
        else:
            self._report(plan, summary)
        if dry_run:
            self.stdout.write("Dry run: nothing changed.")
            return
        applied = resolution_plan_apply(plan=plan, actor=actor)
        self.stdout.write(
            f"Applied: {applied.new_profiles} profile(s) split off, {applied.merged_profiles} profile(s) merged"
            f" away, {applied.suggestions} new suggestion(s) for review"
            + (f"; {len(applied.refused)} merge(s) refused: {applied.refused[0]}" if applied.refused else ".")
        )

    def _report(self, plan, summary) -> None:
        model = f"model version {plan.model_version}" if plan.model_version else "no active model"
        self.stdout.write(
            f"{summary['records']} live records on {summary['profiles_now']} profiles; re-evaluated with the"
            f" current identifier rules and {model}: {summary['profiles_after']} profiles."
        )
        self.stdout.write(
            f"Would merge: {summary['profiles_merging']} profiles into {summary['merges']}"
            f" ({', '.join(f'{n} {rule}' for rule, n in sorted(summary['rules'].items())) or 'none'})."
        )
        for merge in plan.merges[:SHOWN]:
            records = ", ".join(f"{r['source']}:{r['external_id']}" for r in merge.records)
            self.stdout.write(
                f"  merge {', '.join(str(p) for p in merge.profile_ids)} ({merge.rule}): {records}"
            )
        self.stdout.write(
            f"Would split: {summary['splits']} profiles, {summary['records_moving']} records moving to new ones."
        )
        for split in plan.splits[:SHOWN]:
            keep = ", ".join(f"{r['source']}:{r['external_id']}" for r in split.keep)
            moving = " | ".join(
                ", ".join(f"{r['source']}:{r['external_id']}" for r in part) for part in split.parts
            )
            self.stdout.write(f"  split {split.profile_id}: keeps {keep}; moves {moving}")
        self.stdout.write(f"Pairs for review: {summary['suggestions']}.")


def _json(data) -> str:
    return json.dumps(data, indent=2, default=str)
