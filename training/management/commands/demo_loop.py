"""`demo_loop`: the whole PopAlign loop on the demo, from seeding to the measured bias drop, in one command."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from arena.models import Comparison
from core.errors import ApplicationError
from training import demo_loop, held_out
from training.demo_loop import LoopSettings
from training.loop import TrainingConfig

LOOP_OPTIONS = ("comparisons", "votes_per_pair", "noise", "seed", "objective", "eval_seeds")
# Passed to train_generator only when given: otherwise the loop trains on train_generator's defaults.
TRAINING_OPTIONS = ("steps", "lr", "beta", "batch", "min_timestep", "preserve_weight")


class Command(BaseCommand):
    help = (
        "Run the PopAlign loop on the demo's shapes models: seed, generate, simulated votes by colour discrepancy, "
        "export popalign-csv, train base with PopAlign's objective, put the result in the arena, generate and "
        "measure; prints red share and faithfulness with intervals over draws and writes docs/bias-loop.svg."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        d = LoopSettings()
        parser.add_argument("--comparisons", type=int, default=d.comparisons, help="simulated comparisons to vote")
        parser.add_argument("--noise", type=float, default=d.noise, help="chance the simulated crowd flips a vote")
        parser.add_argument("--seed", type=int, default=d.seed)
        parser.add_argument("--objective", default=d.objective)
        recipe = TrainingConfig()
        given = "default: train_generator's, {}"
        parser.add_argument("--steps", type=int, help=given.format(recipe.steps))
        parser.add_argument("--lr", type=float, help=given.format(recipe.lr))
        parser.add_argument("--beta", type=float, help=given.format(recipe.beta))
        parser.add_argument("--batch", type=int, help=given.format(recipe.batch))
        parser.add_argument(
            "--min-timestep",
            type=int,
            help="train on timesteps from this one up; " + given.format(recipe.min_timestep),
        )
        parser.add_argument(
            "--preserve-weight",
            type=float,
            help="hold the tuned model to base on the prompts that name a colour (0: not at all); "
            + given.format(recipe.preserve_weight),
        )
        parser.add_argument("--votes-per-pair", type=int, default=d.votes_per_pair, help="votes per population pair")
        parser.add_argument(
            "--eval-seeds", type=int, default=d.eval_seeds, help="fresh samples of each prompt measured per generator"
        )
        parser.add_argument("--name", default=d.name, help="the tuned generator's name (-2, -3... if taken)")
        parser.add_argument("--work-dir", type=Path, default=None, help="where the export goes (default: var/loop)")
        parser.add_argument("--docs", type=Path, default=Path(settings.BASE_DIR) / "docs", help="where the figure goes")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["comparisons"] < 1:
            raise CommandError(f"--comparisons must be at least 1, got {options['comparisons']}")
        if options["votes_per_pair"] < 1:
            raise CommandError(f"--votes-per-pair must be at least 1, got {options['votes_per_pair']}")
        if options["eval_seeds"] < 2:
            raise CommandError(f"--eval-seeds must be at least 2 (an interval needs two), got {options['eval_seeds']}")
        # One line per measured population would bury the loop's own report.
        logging.getLogger("poparena.metrics").setLevel(logging.WARNING)
        started = time.perf_counter()
        work = options["work_dir"] or Path(settings.VAR_DIR) / "loop"
        phases: dict[str, float] = {}

        def phase(name: str) -> None:
            phases[name] = round(time.perf_counter() - started - sum(phases.values()), 1)

        self.stdout.write(self.style.MIGRATE_HEADING("1. Seed the demo and the loop's campaign"))
        try:
            campaign = demo_loop.create_loop_campaign(votes_per_pair=options["votes_per_pair"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"  campaign {campaign.slug!r}: {', '.join(demo_loop.LOOP_GENERATORS)}")
        phase("seed")

        self.stdout.write(self.style.MIGRATE_HEADING("2. Generate and let a simulated crowd vote"))
        voted = self._simulate(campaign.slug, options)
        self.stdout.write(f"  {voted} simulated comparisons voted on {demo_loop.LOOP_CRITERION!r} by {demo_loop.JUDGE}")
        phase("generate and vote")

        self.stdout.write(self.style.MIGRATE_HEADING("3. Export popalign-csv (simulated votes included)"))
        export = work / f"export-{campaign.slug}"
        call_command(
            "export_preferences",
            campaign=campaign.slug,
            format="popalign-csv",
            out=str(export),
            criterion=demo_loop.LOOP_CRITERION,
            include_simulated=True,
            overwrite=True,
            stdout=self.stdout,
        )
        phase("export")

        name = demo_loop.free_generator_name(options["name"])
        self.stdout.write(self.style.MIGRATE_HEADING(f"4. Train {name!r} from base with {options['objective']}"))
        call_command(
            "train_generator",
            export=str(export),
            objective=options["objective"],
            base="base",
            name=name,
            add_to_campaign=campaign.slug,
            seed=options["seed"],
            preserve=list(demo_loop.PRESERVED) if options["preserve_weight"] != 0 else [],
            # train_generator's own evaluation on the held-out (colour-naming) captions, at most as many samples
            # as the loop's measurement takes of every prompt.
            eval_samples=min(options["eval_seeds"], held_out.DEFAULT_SAMPLES),
            no_progress=True,
            **{key: options[key] for key in TRAINING_OPTIONS if options[key] is not None},
            stdout=self.stdout,
        )
        phase("train")

        self.stdout.write(self.style.MIGRATE_HEADING("5. Generate the tuned model's sets and measure them"))
        call_command("run_generation_worker", once=True, campaign=campaign.slug, stdout=self.stdout)
        call_command("compute_metrics", campaign=campaign.slug, stdout=self.stdout)
        phase("generate tuned")

        names = [*demo_loop.COMPARED, name]
        self.stdout.write(
            self.style.MIGRATE_HEADING(
                f"6. Red share and faithfulness from {options['eval_seeds']} fresh samples per prompt"
            )
        )
        results = demo_loop.measure(names, options["eval_seeds"], cache_dir=Path(settings.POPARENA_MODEL_CACHE))
        phase("measure")
        for generator, row in results.items():
            red, faithful = row["red_share_open_colour"], row["faithfulness"]
            self.stdout.write(
                f"  {generator:<22} red share {red['value']:.3f} [{red['low']:.3f}, {red['high']:.3f}]   "
                f"faithfulness {faithful['value']:.3f} [{faithful['low']:.3f}, {faithful['high']:.3f}]"
            )
        total = round(time.perf_counter() - started, 1)
        facts = {
            "command": "python manage.py demo_loop "
            + " ".join(
                f"--{k.replace('_', '-')} {options[k]}"
                for k in (*LOOP_OPTIONS, *TRAINING_OPTIONS)
                if options[k] is not None
            ),
            "training": "train_generator's defaults"
            + (" except as the command says" if any(options[k] is not None for k in TRAINING_OPTIONS) else ""),
            "tuned": name,
            "simulated_comparisons": voted,
            "seconds": {**phases, "total": total},
        }
        demo_loop.write_figure(results, options["docs"], facts=facts)
        self.stdout.write(
            self.style.SUCCESS(f"Loop done in {total:.0f} s; figure in {options['docs'] / 'bias-loop.svg'}.")
        )

    def _simulate(self, slug: str, options: dict[str, Any]) -> int:
        """Generate, vote what is ready, and repeat until the comparisons are voted or nothing new comes."""
        wanted = options["comparisons"]
        voted = self._voted(slug)
        rounds = 0
        while voted < wanted:
            call_command("run_generation_worker", once=True, campaign=slug, stdout=self.stdout)
            call_command(
                "simulate_votes",
                campaign=slug,
                criterion=demo_loop.LOOP_CRITERION,
                judge=demo_loop.JUDGE,
                comparisons=wanted - voted,
                noise=options["noise"],
                seed=options["seed"] + rounds,
                stdout=self.stdout,
            )
            now = self._voted(slug)
            rounds += 1
            if now == voted:
                self.stdout.write(self.style.WARNING(f"  no new comparison could be voted; going on with {now}"))
                break
            voted = now
        return voted

    @staticmethod
    def _voted(slug: str) -> int:
        return Comparison.objects.simulated().filter(campaign__slug=slug, status=Comparison.Status.VOTED).count()
