"""`compute_metrics --campaign SLUG [--recompute]`: label and measure every population of a campaign.

It lives beside the campaigns (annotation), not in metrics: it starts from a campaign, and metrics
sits below annotation and knows no campaigns.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from annotation.measuring import backfill_campaign_metrics, campaign_population_ids
from annotation.selectors import get_campaign
from core.errors import ApplicationError
from generation.pipelines import PipelineError, resolve_device
from metrics.classifiers import BackendError


class Command(BaseCommand):
    help = (
        "Compute population metrics (per-image labels, per-population measures) for a campaign's ready "
        "populations, with the attributes its metrics_attributes configure. Already measured populations "
        "are skipped, so a second run changes nothing; --recompute measures them again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--campaign", required=True, help="slug of the campaign")
        parser.add_argument("--recompute", action="store_true", help="measure again what is already measured")
        parser.add_argument("--device", default="cpu", help="where the backends run: cpu, cuda, cuda:N, mps")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            campaign = get_campaign(slug=options["campaign"])
        except ApplicationError as exc:
            raise CommandError(str(exc)) from None
        try:
            specs = campaign.attribute_specs()
        except ValidationError as exc:
            raise CommandError(f"campaign {campaign.slug!r}: {'; '.join(exc.messages)}") from None
        if not specs:
            raise CommandError(
                f"campaign {campaign.slug!r} measures nothing: set its metrics_attributes "
                '(e.g. {"colour": {"backend": "shapes", "classes": [...]}}) first'
            )
        try:
            device = resolve_device(options["device"])
        except PipelineError as exc:
            raise CommandError(str(exc)) from None
        total = len(campaign_population_ids(campaign))
        disable = True if options["no_progress"] else None
        with tqdm(total=total, unit="population", file=sys.stderr, disable=disable, mininterval=0.5) as bar:

            def progress(done: int) -> None:
                bar.update(done - bar.n)

            try:
                report = backfill_campaign_metrics(
                    campaign=campaign, recompute=options["recompute"], device=device, progress=progress
                )
            except BackendError as exc:
                raise CommandError(str(exc)) from None
        names = ", ".join(f"{s.name} ({s.backend})" for s in specs)
        self.stdout.write(
            self.style.SUCCESS(
                f"{campaign.slug}: {report.measured} populations measured ({report.images} images), "
                f"{report.skipped} already measured, {len(report.failed)} failed; attributes: {names}."
            )
        )
        for population_id, reason in report.failed:
            self.stderr.write(f"population {population_id}: {reason}")
