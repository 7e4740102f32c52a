"""`import_prompts FILE --campaign SLUG`: add a CSV or JSONL prompt set to a campaign, all or nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.selectors import get_campaign
from annotation.services import add_prompts_to_campaign
from core.errors import ApplicationError
from generation.prompt_files import PromptFileError, parse_prompt_file


class Command(BaseCommand):
    help = (
        "Import prompts (a .csv with columns caption,category or a .jsonl of {caption, category}) "
        "into a campaign, e.g. prompts/occupations.csv. The file is checked whole first: a bad row imports nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="prompt file: .csv or .jsonl")
        parser.add_argument("--campaign", required=True, help="slug of the campaign to add the prompts to")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}") from None
        try:
            rows = parse_prompt_file(data, path.name)
            campaign = get_campaign(slug=options["campaign"])
        except (PromptFileError, ApplicationError) as exc:
            raise CommandError(str(exc)) from None
        counts = add_prompts_to_campaign(campaign=campaign, rows=rows)
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(rows)} prompts read from {path.name}: {counts['created']} new, "
                f"{counts['existing']} already known, {counts['added to campaign']} added to {campaign.slug}."
            )
        )
