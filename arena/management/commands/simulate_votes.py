"""`simulate_votes --campaign SLUG --judge CRITERION=MEASURE[:ATTRIBUTE] ... --comparisons N`: metrics vote.

The one-criterion form `--criterion KEY --judge MEASURE[:ATTRIBUTE]` is the same as `--judge KEY=MEASURE[:ATTRIBUTE]`.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from arena.simulation import DEFAULT_PARTICIPANTS, OTHER_CRITERIA_CHOICE, plan_simulation, simulate_votes
from core.errors import ApplicationError
from metrics.judges import ATTRIBUTE_MEASURES, SET_MEASURES


class Command(BaseCommand):
    help = (
        "A simulated crowd: simulated participants take comparisons through the same issue and vote services as "
        "people (quota, pair sampling, each comparison voted once) and vote, on each criterion a --judge names, for "
        "the side its population metric prefers, flipped with probability --noise; several criteria are judged "
        "in the same comparison, each by its own metric. Where a metric prefers neither side (equal "
        "values, or a value not measured: run compute_metrics first) the vote is a tie, as it is where the prompt "
        "names the judge's attribute (a one-colour set is what 'a red circle' asks for); the criteria no judge "
        f"names are answered {OTHER_CRITERIA_CHOICE!r}. Their votes are marked simulated and stay off "
        "leaderboards, quality reports and exports (export_preferences --include-simulated adds them)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--campaign", required=True, help="slug of an open campaign")
        parser.add_argument(
            "--criterion", help="key of the one criterion a bare --judge MEASURE[:ATTRIBUTE] answers (optional)"
        )
        parser.add_argument(
            "--judge",
            required=True,
            action="append",
            metavar="CRITERION=MEASURE[:ATTRIBUTE]",
            help=(
                "a criterion and the metric that answers it, repeatable (e.g. --judge diversity=discrepancy:colour "
                f"--judge quality=faithfulness); the metric: {', '.join(ATTRIBUTE_MEASURES)} of one of the "
                "campaign's attributes (lower discrepancy and KL win, higher entropy), or "
                f"{', '.join(SET_MEASURES)} (higher wins). With --criterion, one bare MEASURE[:ATTRIBUTE]"
            ),
        )
        parser.add_argument("--comparisons", required=True, type=int, help="comparisons to vote (at least 1)")
        parser.add_argument(
            "--noise", type=float, default=0.0, help="probability of voting against the metric, 0 to 1 (default 0)"
        )
        parser.add_argument(
            "--seed", type=int, help="seed of pair sampling and noise (default: drawn, and printed, to repeat the run)"
        )
        parser.add_argument(
            "--participants",
            type=int,
            default=DEFAULT_PARTICIPANTS,
            help=f"simulated participants taking turns; the campaign's quota applies to each (default "
            f"{DEFAULT_PARTICIPANTS})",
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            plan = plan_simulation(
                campaign_slug=options["campaign"],
                criterion=options["criterion"],
                judge=options["judge"],
                comparisons=options["comparisons"],
                noise=options["noise"],
                seed=options["seed"],
                participants=options["participants"],
            )
            # None lets tqdm decide: a bar on a terminal, nothing in a log file.
            disable = True if options["no_progress"] else None
            with tqdm(total=plan.comparisons, unit="vote", file=sys.stderr, disable=disable, mininterval=0.5) as bar:
                report = simulate_votes(plan=plan, progress=bar.update)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            f"{plan.campaign.slug} judged by {plan.judged_by}, noise {plan.noise:g}, seed {plan.seed}, "
            f"{plan.participants} simulated participants: {report.voted} comparisons voted."
        )
        for key, judge in plan.judges:
            tally = report.criteria[key]
            choices = tally.choices
            self.stdout.write(
                f"  {key} ({judge.name}): left {choices['left']}, right {choices['right']}, tie {choices['tie']}; "
                f"{tally.flipped} flipped by noise; the metric preferred neither side in {tally.undecided}, "
                f"{tally.abstained} of them on prompts naming {judge.attribute or 'its attribute'}."
            )
            if report.voted and tally.undecided == report.voted:
                self.stderr.write(
                    self.style.WARNING(
                        f"warning: {judge.name} told no pair apart on {key}, so every vote on it is a tie: are the "
                        f"populations measured (compute_metrics --campaign {plan.campaign.slug})?"
                    )
                )
        if report.complete:
            self.stdout.write(self.style.SUCCESS(f"Stopped: {report.stop_reason()}."))
        else:
            self.stdout.write(
                self.style.WARNING(
                    f"Stopped after {report.voted} of {plan.comparisons} comparisons: {report.stop_reason()}."
                )
            )
