"""`train_generator`: fine-tune a generator on a PopArena export and register the result as a new generator."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import ApplicationError
from training import distributed, held_out, objectives
from training.loop import MIXED_PRECISION, TrainingConfig, TrainingError
from training.services import TrainRequest, prepare_training, train_generator

# Seconds within which a second SIGINT under torchrun is the launcher passing on the first, not a second Ctrl-C.
LAUNCHER_ECHO_S = 2.0


class Command(BaseCommand):
    help = (
        "Fine-tune a diffusers generator on a PopArena export (popalign-csv, pickapic-parquet or kto-csv) with "
        "PopAlign's objective (or popalign-paired, dpo, kto) against a frozen copy of the base; save it in "
        "diffusers layout and register it as a new generator. Ctrl-C saves the run; --resume continues it. Under "
        "`torchrun --nproc_per_node N manage.py train_generator ...` N processes train one model, each on --batch "
        "examples of every micro-batch (gradients averaged); the main one saves and registers it. A step trains on "
        "--batch x --accumulate x N examples."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        defaults = TrainingConfig()
        parser.add_argument("--export", required=True, type=Path, help="an export folder written by export_preferences")
        parser.add_argument("--objective", required=True, choices=objectives.OBJECTIVES)
        parser.add_argument("--base", required=True, help="name of the generator to start from (the reference)")
        parser.add_argument("--name", required=True, help="name of the new generator (a slug not yet taken)")
        parser.add_argument("--add-to-campaign", metavar="SLUG", help="also add it to this campaign (queues its sets)")
        parser.add_argument("--steps", type=int, default=defaults.steps)
        parser.add_argument("--lr", type=float, default=defaults.lr)
        parser.add_argument(
            "--beta",
            type=float,
            default=defaults.beta,
            help=f"preference strength (the trainers' beta; default {defaults.beta:g}, PopAlign's)",
        )
        parser.add_argument(
            "--batch",
            type=int,
            default=defaults.batch,
            help=f"winner/loser pairs (or images) per process and micro-batch (default {defaults.batch})",
        )
        parser.add_argument(
            "--accumulate",
            type=int,
            default=defaults.accumulate,
            metavar="K",
            help="micro-batches per optimizer step (gradient accumulation): a step trains on --batch x K x processes "
            "examples in the memory of --batch (default 1)",
        )
        parser.add_argument("--seed", type=int, default=defaults.seed)
        parser.add_argument("--device", default=defaults.device, help="cpu, cuda, cuda:N or mps")
        parser.add_argument("--lora-rank", type=int, default=0, help="train a LoRA of this rank (0: the whole UNet)")
        parser.add_argument(
            "--min-timestep",
            type=int,
            default=defaults.min_timestep,
            help="train on timesteps from this one up only (the noisier ones, where colour and layout are chosen); "
            f"0 trains on all, as PopAlign does (default {defaults.min_timestep})",
        )
        parser.add_argument(
            "--preserve",
            action="append",
            default=[],
            metavar="CAPTION",
            help="a caption the export leaves out on which the tuned model should keep the base's behaviour (say, "
            "one that names the attribute being rebalanced); repeat for more. Default: every caption of the "
            "export's campaign that the export leaves out (training.json lists them)",
        )
        parser.add_argument(
            "--preserve-weight",
            type=float,
            default=defaults.preserve_weight,
            help="weight of the gap to the base's predictions on the --preserve captions and, with --min-timestep, "
            "on the export's captions at the timesteps below it "
            f"(0: no preservation; default {defaults.preserve_weight:g})",
        )
        parser.add_argument(
            "--preserve-unconditional",
            action="store_true",
            help="also hold the base's unconditional prediction (the empty caption classifier-free guidance "
            "subtracts), at --preserve-weight",
        )
        parser.add_argument("--mixed-precision", choices=MIXED_PRECISION, default="no", help="fp16/bf16 on a GPU")
        parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: every core but one)")
        parser.add_argument(
            "--eval-samples",
            type=int,
            default=held_out.DEFAULT_SAMPLES,
            metavar="N",
            help="after training, sample base and tuned N times on each held-out caption (those of the export's "
            "campaign the export leaves out) and read them with the campaign's metrics backends: faithfulness per "
            "attribute and attribute shares, printed and in training.json "
            f"(0: none; default {held_out.DEFAULT_SAMPLES})",
        )
        parser.add_argument(
            "--rank-timeout",
            type=float,
            default=distributed.DEFAULT_TIMEOUT_S,
            metavar="SECONDS",
            help="under torchrun: how long a process waits for the others at a step before it stops the run with an "
            "error (one that died is seen at once; this bounds one that hangs; default "
            f"{distributed.DEFAULT_TIMEOUT_S:g})",
        )
        parser.add_argument("--resume", action="store_true", help="continue an interrupted run of --name")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            config = TrainingConfig(
                objective=options["objective"],
                steps=options["steps"],
                lr=options["lr"],
                beta=options["beta"],
                batch=options["batch"],
                accumulate=options["accumulate"],
                seed=options["seed"],
                device=options["device"],
                lora_rank=options["lora_rank"],
                mixed_precision=options["mixed_precision"],
                threads=options["threads"],
                min_timestep=options["min_timestep"],
                preserve=tuple(options["preserve"]),
                preserve_weight=options["preserve_weight"],
                preserve_unconditional=options["preserve_unconditional"],
            )
            request = TrainRequest(
                export=options["export"],
                base=options["base"],
                name=options["name"],
                config=config,
                add_to_campaign=options["add_to_campaign"],
                resume=options["resume"],
                eval_samples=options["eval_samples"],
                rank_timeout_s=options["rank_timeout"],
            )
            prepared = prepare_training(request=request)
        except (ApplicationError, TrainingError) as exc:
            raise CommandError(getattr(exc, "message", str(exc))) from exc
        main = distributed.is_main()
        if main:
            processes = distributed.world_size()
            self.stdout.write(
                f"Training {request.name!r} from {prepared.base.name!r} on {prepared.data.summary()}"
                + (f", {processes} processes" if processes > 1 else "")
                + f"; effective batch {config.effective_batch(processes)} (--batch {config.batch} x --accumulate "
                f"{config.accumulate} x {processes} process{'es' if processes > 1 else ''})."
            )
            if prepared.preserved_from_campaign:
                self.stdout.write(
                    f"Held to the base: {len(prepared.preserved_from_campaign)} caption(s) of the export's campaign "
                    "that the export leaves out (listed in training.json; --preserve names others)."
                )

        stop = {"asked": 0.0}

        def ask_to_stop(signum: int, frame: Any) -> None:
            # Under torchrun one Ctrl-C reaches each process twice: from the terminal, and passed on by the
            # launcher a moment later. Only a second press, after that, aborts.
            if stop["asked"] and (processes == 1 or time.monotonic() - stop["asked"] > LAUNCHER_ECHO_S):
                raise KeyboardInterrupt
            if stop["asked"]:
                return
            stop["asked"] = time.monotonic()
            if main:
                self.stderr.write(
                    "\nStopping after this step and saving the run (Ctrl-C again to abort without saving)."
                )

        processes = distributed.world_size()
        previous = signal.signal(signal.SIGINT, ask_to_stop)
        restore_sigterm = distributed.stop_on_sigterm()
        try:
            result = train_generator(
                prepared=prepared, progress=not options["no_progress"], should_stop=lambda: bool(stop["asked"])
            )
        except (ApplicationError, TrainingError, distributed.GroupStopped) as exc:
            raise CommandError(getattr(exc, "message", str(exc))) from exc
        finally:
            signal.signal(signal.SIGINT, previous)
            restore_sigterm()
        outcome = result.outcome
        if not result.main_process:
            return
        if result.generator is None:
            self.stdout.write(
                self.style.WARNING(
                    f"Interrupted after {outcome.steps_done} of {config.steps} steps; the run is saved in "
                    f"{result.folder}. Resume it with the same options plus --resume."
                )
            )
            return
        if processes > 1:
            self.stdout.write(
                "Encoded once over the processes: "
                + ", ".join(f"{kind} {' + '.join(map(str, n))}" for kind, n in outcome.encoded.items())
                + " (each process its share)."
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Registered generator {result.generator.name!r}: {outcome.steps_done} steps in "
                f"{outcome.seconds:.0f} s, final loss {outcome.final_loss:.4f}; saved in {result.folder} "
                "(training.json, training-log.jsonl, loss.svg beside the weights)."
            )
        )
        if prepared.campaign is not None:
            self.stdout.write(f"Added to campaign {prepared.campaign.slug!r}; {result.queued} queue change(s).")
        if result.evaluation is not None:
            for line in result.evaluation.lines():
                self.stdout.write(line)
            for warning in result.evaluation.warnings():
                self.stderr.write(self.style.WARNING(f"WARNING: {warning}."))
