"""`import_populations DIR --campaign SLUG`: image sets made elsewhere into a campaign, all or nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.importing import import_populations
from annotation.selectors import get_campaign
from core.errors import ApplicationError
from generation.importing import ImportFileError, read_import


class Command(BaseCommand):
    help = (
        "Import image sets made elsewhere into a campaign: a folder of images with a metadata.jsonl or metadata.csv "
        "(file_name, prompt, generator, optional seed and set), a Parquet file, a datasets save_to_disk folder, or "
        "a .zip of one. Every N images (the campaign's population size) of one generator and prompt become one set. "
        "Every row is checked first: a bad row imports nothing, and each is named. Importing again adds nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="import folder, .parquet file or .zip")
        parser.add_argument("--campaign", required=True, help="slug of the campaign the sets are for")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["path"]
        if not path.exists():
            raise CommandError(f"{path} does not exist")
        try:
            campaign = get_campaign(slug=options["campaign"])
            read = read_import(path)
            result = import_populations(campaign=campaign, read=read)
        except (ImportFileError, ApplicationError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"{campaign.slug}: " + "; ".join(result.lines()) + "."))
