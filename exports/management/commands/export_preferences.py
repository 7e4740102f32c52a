"""`export_preferences --campaign SLUG --format FMT --out DIR`: write a campaign's votes as a preference dataset."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from core.errors import ApplicationError
from exports.errors import OptionNaming
from exports.options import ExportOptions
from exports.rows import TIES_DROP, TIES_SOFT
from exports.selectors import get_export_campaign
from exports.services import export_preferences
from exports.writers import FORMATS
from exports.writers.contract import Progress


def generator_names(text: str) -> tuple[str, ...]:
    """`--generators a,b`: the names, each non-empty."""
    names = tuple(name.strip() for name in text.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError(f"an empty generator name in {text!r}: give NAME,NAME,...")
    return names


def flag(option: str, value: str | None) -> str:
    """`--min-votes`, `--ties drop`: a refused option as this command spells it."""
    name = "--" + option.replace("_", "-")
    return name if value is None else f"{name} {value}"


class Command(BaseCommand):
    help = (
        "Export a campaign's votes as a preference dataset that training code reads as it is. Formats: "
        + "; ".join(f"{name}: {spec.description}" for name, spec in FORMATS.items())
        + ". Writes into a staging folder beside --out and renames it into place, with manifest.json and README.md."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--campaign", required=True, help="slug of the campaign")
        parser.add_argument("--format", required=True, choices=list(FORMATS), help="dataset format")
        parser.add_argument("--out", required=True, type=Path, help="folder to create (must be absent or empty)")
        parser.add_argument(
            "--criterion", help="criterion key; required by single-criterion formats when a campaign asks several"
        )
        parser.add_argument(
            "--ties",
            choices=[TIES_DROP, TIES_SOFT],
            help="drop tied pairs, or keep them as 0.5/0.5 (soft); default: the format's own",
        )
        parser.add_argument("--min-votes", type=int, help="leave out pairs with fewer votes (default 1)")
        parser.add_argument(
            "--min-margin", type=int, help="leave out decided pairs won by fewer votes than this (default 0)"
        )
        parser.add_argument(
            "--not-worse-on",
            action="append",
            default=[],
            metavar="CRITERION",
            help="keep a decided pair only where its winner did not lose on CRITERION too (the same two sets' votes "
            "there, counted as the export counts them; a tie or no votes there is no loss); repeatable",
        )
        parser.add_argument(
            "--generators",
            type=generator_names,
            default=(),
            metavar="NAME,...",
            help="keep only pairs whose two sides both come from these generators (at least two of the campaign's)",
        )
        parser.add_argument(
            "--validation-fraction",
            type=float,
            default=0.0,
            help="share of captions held out as a validation split (by caption, so none leaks); default 0",
        )
        parser.add_argument("--skip-missing", action="store_true", help="leave out pairs whose image files are gone")
        parser.add_argument("--overwrite", action="store_true", help="replace an earlier export in --out")
        parser.add_argument(
            "--include-flagged", action="store_true", help="keep votes of participants flagged by quality control"
        )
        parser.add_argument(
            "--include-simulated",
            action="store_true",
            help="keep the votes of a simulated crowd (simulate_votes: a metric's, not people's); not leaderboard-csv",
        )
        parser.add_argument(
            "--no-images", action="store_true", help="population-jsonl only: write image paths but copy no files"
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        # None lets tqdm decide: a bar on a terminal, nothing in a log file.
        disable = True if options["no_progress"] else None

        def progress(total: int | None, unit: str) -> Progress:
            bar: Progress = tqdm(total=total, unit=unit, file=sys.stderr, disable=disable, mininterval=0.5)
            return bar

        export = ExportOptions(
            format=options["format"],
            criterion=options["criterion"],
            ties=options["ties"],
            min_votes=options["min_votes"],
            min_margin=options["min_margin"],
            validation_fraction=options["validation_fraction"],
            skip_missing=options["skip_missing"],
            include_flagged=options["include_flagged"],
            include_simulated=options["include_simulated"],
            copy_images=not options["no_images"],
            not_worse_on=tuple(options["not_worse_on"]),
            generators=options["generators"],
        )
        try:
            campaign = get_export_campaign(slug=options["campaign"])
            result = export_preferences(
                campaign=campaign, options=export, out=options["out"], overwrite=options["overwrite"], progress=progress
            )
        except ApplicationError as exc:
            # The services name options as the web form and the API do; a shell user reads our flags.
            raise CommandError(exc.render(flag) if isinstance(exc, OptionNaming) else exc.message) from None
        for warning in result.warnings:
            self.stderr.write(self.style.WARNING(f"warning: {warning}"))
        manifest = result.manifest
        counts = manifest["counts"]
        rows = ", ".join(f"{n} {split}" for split, n in counts["rows"].items())
        detail = ""
        if "pairs" in counts:
            pairs = counts["pairs"]
            dropped = ", ".join(f"{n} {why}" for why, n in pairs["dropped"].items() if n) or "none"
            detail = f" from {pairs['kept']} of {pairs['judged']} judged pairs (dropped: {dropped})"
        self.stdout.write(
            self.style.SUCCESS(
                f"{manifest['format']} of {campaign.slug}: {rows} rows{detail}, "
                f"{manifest['file_totals']['files']} files, written to {result.path} in {manifest['seconds']:.1f} s."
            )
        )
