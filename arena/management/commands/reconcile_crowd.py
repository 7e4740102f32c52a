"""`reconcile_crowd --campaign SLUG FILE`: mark a campaign's crowd participants with what the platform's record says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.selectors import get_campaign
from arena.participation import import_platform_record
from core.errors import ApplicationError


class Command(BaseCommand):
    help = (
        "Import the crowd platform's own record of a study (Prolific's submissions export or MTurk's batch results, "
        "both CSV) and mark each of the campaign's participants approved, awaiting review, returned, rejected or "
        "unknown (voted here, but the platform holds no submission of theirs). A bad file changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--campaign", required=True, help="the campaign's slug")
        parser.add_argument("file", type=Path, help="the platform's CSV file")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            campaign = get_campaign(slug=options["campaign"])
            result = import_platform_record(campaign=campaign, data=data)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        for line in result.lines():
            self.stdout.write(line)
        if campaign.count_only_reconciled:
            self.stdout.write("the campaign counts only participants approved or awaiting review; tallies recounted")
