"""`simulate_votes --campaign SLUG --criterion KEY --judge MEASURE[:ATTRIBUTE] --comparisons N`: a metric votes."""

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
        "people (quota, pair sampling, each comparison voted once) and vote for the side a population metric "
        "prefers on --criterion, flipped with probability --noise. Where the metric prefers neither side (equal "
        "values, or a value not measured: run compute_metrics first) the vote is a tie, as it is where the prompt "
        "names the judge's attribute (a one-colour set is what 'a red circle' asks for); the campaign's other "
        f"criteria are answered {OTHER_CRITERIA_CHOICE!r}. Their votes are marked simulated and stay off "
        "leaderboards, quality reports and exports (export_preferences --include-simulated adds them)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--campaign", required=True, help="slug of an open campaign")
        parser.add_argument("--criterion", required=True, help="key of the criterion the metric answers")
        parser.add_argument(
            "--judge",
            required=True,
            metavar="MEASURE[:ATTRIBUTE]",
            help=(
                f"the metric: {', '.join(ATTRIBUTE_MEASURES)} of one of the campaign's attributes (e.g. "
                f"discrepancy:colour; lower discrepancy and KL win, higher entropy), or {', '.join(SET_MEASURES)} "
                "(higher wins)"
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
        choices = report.choices
        self.stdout.write(
            f"{plan.campaign.slug}/{plan.criterion} judged by {plan.judge.name}, noise {plan.noise:g}, "
            f"seed {plan.seed}, {plan.participants} simulated participants: {report.voted} comparisons voted "
            f"(left {choices['left']}, right {choices['right']}, tie {choices['tie']}; "
            f"{report.flipped} flipped by noise; the metric preferred neither side in {report.undecided}, "
            f"{report.abstained} of them on prompts naming {plan.judge.attribute or 'its attribute'})."
        )
        if report.voted and report.undecided == report.voted:
            self.stderr.write(
                self.style.WARNING(
                    f"warning: {plan.judge.name} told no pair apart, so every vote is a tie: are the populations "
                    f"measured (compute_metrics --campaign {plan.campaign.slug})?"
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
