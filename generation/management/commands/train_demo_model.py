"""`train_demo_model`: train the `builtin:shapes` toy model on the CPU and swap it into place."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from generation.shapes_model import DEFAULT_OUT, Recipe, train_into


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


class Command(BaseCommand):
    help = (
        "Train the shapes toy text-to-image model (builtin:shapes) on the CPU, about 10-15 minutes with the "
        "defaults, into a temporary folder that then replaces --out. Prints the output folder."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        defaults = Recipe()
        parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
        parser.add_argument("--seed", type=_seed, default=defaults.seed, help=f"default: {defaults.seed}")
        parser.add_argument(
            "--vae-steps", type=_count, default=defaults.vae_steps, help=f"default: {defaults.vae_steps}"
        )
        parser.add_argument(
            "--unet-steps", type=_count, default=defaults.unet_steps, help=f"default: {defaults.unet_steps}"
        )
        parser.add_argument(
            "--batch-size", type=_count, default=defaults.batch_size, help=f"default: {defaults.batch_size}"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        out = Path(options["out"]).expanduser()
        if out.exists() and not out.is_dir():
            raise CommandError(f"--out: {out} exists and is not a folder")
        recipe = Recipe(
            seed=options["seed"],
            vae_steps=options["vae_steps"],
            unet_steps=options["unet_steps"],
            batch_size=options["batch_size"],
        )
        verbose = options["verbosity"] >= 1
        try:
            report = train_into(out, recipe, progress=verbose, log=self.stderr.write if verbose else None)
        except OSError as exc:
            raise CommandError(f"cannot write {out}: {exc}") from exc
        if verbose:
            self.stderr.write(f"trained in {report.wall_seconds:.0f} s")
        self.stdout.write(str(report.out_dir))
