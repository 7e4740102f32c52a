"""Train a generator on an export and register the result: every check first, then train, then save and register.

Nothing is registered until the tuned pipeline is saved whole: training runs in a working folder beside
the models (`.NAME.training`), which is renamed to `NAME` when done and only then becomes a Generator
(with its TrainingRun, and its campaign's queues when asked). A run stopped by SIGINT keeps its working
folder with the trainable weights, the optimizer and the log, so `resume=True` continues it; a run that
fails removes it.

Under torchrun (training.distributed) every process runs the checks and trains its share; only the main
process writes the working folder, saves and registers, so one generator is registered; the others leave once
training is done. A process that dies stops the others (training.distributed.GroupStopped): the main process then
removes its working folder as for any failure, so nothing half-written is left and nothing is registered.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.text import slugify

from annotation.models import Campaign
from annotation.services import add_generator_to_campaign
from core.errors import ApplicationError, Conflict, NotFound
from generation.families import describe
from generation.models import Generator
from generation.pipelines import PipelineError, PipelineSpec, load_pipeline, use_cpu_threads
from generation.services import GeneratorSpec, sync_generator
from metrics.classifiers import BackendError
from training import distributed, held_out, loop, plots
from training.held_out import HeldOutReport
from training.models import TrainingRun
from training.readers import PreferenceData, ReaderError, read_export

logger = logging.getLogger(__name__)

RECORD_FILE = "training.json"
PLOT_FILE = "loss.svg"
# Settings that shaped the base's weights as they were loaded and are now part of the saved weights,
# or that only built-in stand-ins read.
_BAKED_SETTINGS = ("lora", "lora_scale", "init_seed", "palette")


@dataclass(frozen=True)
class TrainRequest:
    export: Path
    base: str
    name: str
    config: loop.TrainingConfig
    add_to_campaign: str | None = None
    resume: bool = False
    # Samples per held-out caption for the evaluation after training (0: none); training.held_out.
    eval_samples: int = held_out.DEFAULT_SAMPLES
    # Under torchrun: seconds a process waits for the others at a collective step before it stops the run.
    rank_timeout_s: float = distributed.DEFAULT_TIMEOUT_S


@dataclass
class Prepared:
    """What the checks found: the base, the data and where the model goes."""

    request: TrainRequest
    base: Generator
    spec: PipelineSpec
    data: PreferenceData
    campaign: Campaign | None
    folder: Path
    working: Path
    # Captions of the export's campaign that the export leaves out, held to the base (no --preserve given).
    preserved_from_campaign: tuple[str, ...] = ()


@dataclass
class TrainResult:
    generator: Generator | None
    folder: Path
    outcome: loop.TrainingOutcome
    summary: str
    queued: int = 0
    messages: list[str] = field(default_factory=list)
    # False in the processes of a data-parallel run that are not the main one: they trained, it saved.
    main_process: bool = True
    evaluation: HeldOutReport | None = None


def models_root() -> Path:
    return Path(settings.TRAINED_MODELS_DIR)


def prepare_training(*, request: TrainRequest) -> Prepared:
    """Every check that can fail before the first step; ApplicationError names the problem, nothing is written."""
    name = request.name
    if not name or slugify(name) != name:
        raise ApplicationError(f"--name {name!r} must be a slug (lower-case letters, digits, hyphens)")
    if Generator.objects.filter(name=name).exists():
        raise Conflict(f"--name {name!r} is taken: a generator of that name exists", code="name_taken")
    if request.eval_samples < 0 or request.eval_samples == 1:
        raise ApplicationError(
            f"--eval-samples must be 0 (no evaluation) or at least 2 (an interval needs two draws), "
            f"got {request.eval_samples}"
        )
    if not (math.isfinite(request.rank_timeout_s) and request.rank_timeout_s > 0):
        raise ApplicationError(f"--rank-timeout must be a positive number of seconds, got {request.rank_timeout_s}")
    base = Generator.objects.filter(name=request.base).first()
    if base is None:
        raise NotFound(f"--base {request.base!r}: no generator of that name")
    campaign = None
    if request.add_to_campaign:
        campaign = Campaign.objects.filter(slug=request.add_to_campaign).first()
        if campaign is None:
            raise NotFound(f"--add-to-campaign {request.add_to_campaign!r}: no campaign of that slug")
    try:
        spec = PipelineSpec.from_settings(base.source, base.settings)
    except PipelineError as exc:
        raise ApplicationError(f"--base {base.name!r} has settings a pipeline cannot take: {exc}") from exc
    try:
        data = read_export(request.export)
        loop.check_data_fits(data, request.config)
    except (ReaderError, loop.TrainingError) as exc:
        raise ApplicationError(f"--export {str(request.export)!r}: {exc}") from exc
    if data.image_size != (spec.width, spec.height):
        width, height = data.image_size
        raise ApplicationError(
            f"the export's images are {width}x{height} but --base {base.name!r} makes {spec.width}x{spec.height}: "
            "train on an export of that generator's campaign"
        )
    folder = models_root() / name
    working = models_root() / f".{name}.training"
    if folder.exists():
        raise Conflict(f"{folder} already exists; choose another --name or move the folder", code="name_taken")
    if working.exists() and not request.resume and not (working / loop.STATE_FILE).is_file():
        raise Conflict(
            f"{working} holds a run of {name!r} that stopped before it could save its state (killed), or one "
            "training now: delete the folder to start again",
            code="interrupted_run",
        )
    if working.exists() and not request.resume:
        raise Conflict(
            f"an interrupted run of {name!r} is in {working}: add --resume to continue it, or delete the folder",
            code="interrupted_run",
        )
    held: tuple[str, ...] = ()
    if not request.config.preserve and request.config.preserve_weight:
        held = captions_left_out(data)
        if held:
            request = replace(request, config=replace(request.config, preserve=held))
    if request.resume:
        _check_resumable(working, request, data)
    return Prepared(request, base, spec, data, campaign, folder, working, held)


def captions_left_out(data: PreferenceData) -> tuple[str, ...]:
    """The captions of the export's campaign (its manifest's `campaign.slug`, where this database has it) that
    the export holds no row of: those that name the attribute a judge abstains on, those whose pairs the
    filters dropped. Training holds them to the base, so the preference does not reach where it was not asked."""
    campaign = export_campaign(data)
    if campaign is None:
        return ()
    captions = set(campaign.prompts.values_list("caption", flat=True))
    return tuple(sorted(captions - trained_captions(data)))


def export_campaign(data: PreferenceData) -> Campaign | None:
    """The campaign the export was made from (its manifest's `campaign.slug`), where this database has it."""
    slug = (data.manifest.get("campaign") or {}).get("slug")
    return Campaign.objects.filter(slug=slug).first() if slug else None


def trained_captions(data: PreferenceData) -> set[str]:
    return {pair.caption for pair in data.pairs} | {item.caption for item in data.labelled}


def held_out_captions(prepared: Prepared) -> tuple[str, ...]:
    """The captions training held out: the export's campaign's that the export lacks, and any --preserve caption
    it lacks (the empty caption aside)."""
    named = {caption for caption in prepared.request.config.preserve if caption}
    return tuple(sorted((set(captions_left_out(prepared.data)) | named) - trained_captions(prepared.data)))


def evaluate_training(prepared: Prepared, pipe: Any) -> HeldOutReport:
    """training.held_out's report for a tuned pipeline, or one that says why there is none."""
    samples = prepared.request.eval_samples
    if not samples:
        return HeldOutReport(skipped="--eval-samples 0")
    captions = held_out_captions(prepared)
    if not captions:
        return HeldOutReport(skipped="no held-out captions (the export holds every caption of its campaign)")
    campaign = export_campaign(prepared.data)
    if campaign is None:
        return HeldOutReport(
            skipped="the export's campaign is not in this database, so no metrics attributes say how to read images"
        )
    try:
        attributes = campaign.attribute_specs()
    except ValidationError as exc:
        return HeldOutReport(skipped=f"campaign {campaign.slug!r} has metrics attributes that do not parse: {exc}")
    if not attributes:
        return HeldOutReport(skipped=f"campaign {campaign.slug!r} measures no attributes (its metrics settings)")
    try:
        return held_out.evaluate_held_out(
            base_pipe=lambda: load_base(prepared),
            tuned_pipe=pipe,
            spec=prepared.spec,
            template=prepared.base.prompt_template,
            augment=(prepared.base.settings or {}).get("augment"),
            captions=captions,
            attributes=attributes,
            samples=samples,
            device=distributed.device_for(prepared.request.config.device),
        )
    except (BackendError, PipelineError, ApplicationError) as exc:
        return HeldOutReport(skipped=f"the images could not be made or read: {getattr(exc, 'message', exc)}")


# What an interrupted run and its --resume must agree on. The effective batch, not its split: a step draws the
# same examples however they are split over micro-batches and processes, so a run may resume on another number
# of processes with --batch or --accumulate changed to match.
RESUME_MUST_MATCH = (
    "base",
    "export_manifest_sha256",
    "objective",
    "lora_rank",
    "beta",
    "lr",
    "effective_batch",
    "seed",
    "min_timestep",
    "preserve",
    "preserve_weight",
    "preserve_unconditional",
)


def _check_resumable(working: Path, request: TrainRequest, data: PreferenceData) -> None:
    state = working / loop.STATE_FILE
    record = working / RECORD_FILE
    if not state.is_file() or not record.is_file():
        raise ApplicationError(f"--resume: no interrupted run of {request.name!r} to continue in {working}")
    earlier = json.loads(record.read_text(encoding="utf-8"))
    # A record written before batches were split counted --batch over every process: its effective batch.
    earlier.setdefault("effective_batch", earlier.get("batch"))
    now = {"base": request.base, "export_manifest_sha256": data.manifest_sha256, **_batch_record(request.config)}
    now.update(loop.config_record(request.config))
    changed = [key for key in RESUME_MUST_MATCH if earlier.get(key) != now.get(key)]
    if changed == ["effective_batch"]:
        raise ApplicationError(
            f"--resume: the interrupted run trained on an effective batch of {earlier.get('effective_batch')} "
            f"examples a step, this one would on {now['effective_batch']} (--batch {request.config.batch} x "
            f"--accumulate {request.config.accumulate} x {distributed.world_size()} process(es)): change --batch "
            "or --accumulate to match"
        )
    if changed:
        raise ApplicationError(
            f"--resume: the interrupted run used other {', '.join(changed)}; resume it with the same options"
        )


def _batch_record(config: loop.TrainingConfig) -> dict[str, int]:
    """How a step's examples are split: the effective batch is batch x accumulate x processes."""
    processes = distributed.world_size()
    return {"processes": processes, "effective_batch": config.effective_batch(processes)}


def load_base(prepared: Prepared) -> Any:
    """The base pipeline, loaded through from_pretrained as the worker loads it; must be a UNet pipeline."""
    config = prepared.request.config
    if config.device == "cpu":
        # Processes training together share the cores (`threads` 0: every core but one, split between them).
        cores = max(1, ((os.cpu_count() or 1) - 1) // distributed.world_size())
        use_cpu_threads(config.threads or cores)
    try:
        pipe = load_pipeline(prepared.spec, device=config.device, cache_dir=Path(settings.POPARENA_MODEL_CACHE))
    except PipelineError as exc:
        raise ApplicationError(f"--base {prepared.base.name!r}: {exc}") from exc
    if getattr(pipe, "unet", None) is None or not hasattr(pipe, "encode_prompt") or getattr(pipe, "vae", None) is None:
        raise ApplicationError(
            f"--base {prepared.base.name!r} is {describe(pipe)}; training needs a diffusers pipeline with a "
            "UNet, a VAE and a text encoder (Stable Diffusion 1.x/2.x or SDXL)"
        )
    return pipe


def train_generator(
    *,
    prepared: Prepared,
    progress: bool = True,
    should_stop: Callable[[], bool] = lambda: False,
) -> TrainResult:
    """Train, save and register; an interrupted run is saved for --resume and registers nothing. Under torchrun,
    GroupStopped when another process dies or does not answer within the request's rank timeout."""
    timeout = prepared.request.rank_timeout_s
    distributed.start(prepared.request.config.device, timeout)
    try:
        with distributed.watching(timeout):
            # Every process has run its checks before the main one creates the working folder they check for.
            distributed.barrier()
            # The main process loads the base first: a built-in base is built into the model cache on first use.
            pipe = load_base(prepared) if distributed.is_main() else None
            distributed.barrier()
            if pipe is None:
                # The main process saves and registers alone; this one's part ends with the last step.
                outcome = _train_share(load_base(prepared), prepared, should_stop=should_stop)
                return TrainResult(None, prepared.folder, outcome, prepared.data.summary(), main_process=False)
            return _train_main(pipe, prepared, progress=progress, should_stop=should_stop)
    finally:
        distributed.finish()


def _train_share(pipe: Any, prepared: Prepared, *, should_stop: Callable[[], bool]) -> loop.TrainingOutcome:
    """A process other than the main one: trains its share of every batch, writes nothing."""
    request = prepared.request
    state = prepared.working / loop.STATE_FILE
    return loop.fine_tune(
        pipe,
        prepared.data,
        request.config,
        prepared.working,
        progress=False,
        should_stop=should_stop,
        resume_state=state if request.resume else None,
    )


def _train_main(pipe: Any, prepared: Prepared, *, progress: bool, should_stop: Callable[[], bool]) -> TrainResult:
    request, config = prepared.request, prepared.request.config
    timesteps = pipe.scheduler.config.num_train_timesteps
    if config.min_timestep >= timesteps:
        raise ApplicationError(
            f"--min-timestep must be below the scheduler's {timesteps} training timesteps, got {config.min_timestep}"
        )
    prepared.working.mkdir(parents=True, exist_ok=True)
    record = _record(prepared)
    (prepared.working / RECORD_FILE).write_text(json.dumps({**record, "status": "training"}, indent=2) + "\n")
    state = prepared.working / loop.STATE_FILE
    try:
        outcome = loop.fine_tune(
            pipe,
            prepared.data,
            config,
            prepared.working,
            progress=progress,
            should_stop=should_stop,
            resume_state=state if request.resume else None,
        )
    except BaseException:
        if not request.resume:
            with distributed.sigterm_held():
                shutil.rmtree(prepared.working, ignore_errors=True)
        raise
    history = _read_log(prepared.working)
    (prepared.working / PLOT_FILE).write_text(
        plots.loss_curve([h["step"] for h in history], [h["loss"] for h in history], title=f"{config.objective} loss")
    )
    record.update(
        steps=outcome.steps_done,
        final_loss=outcome.final_loss,
        wall_seconds=round(outcome.seconds + float(record.get("wall_seconds") or 0), 1),
        encoded={f"{key}_per_process": counts for key, counts in outcome.encoded.items()},
    )
    if outcome.interrupted:
        record["status"] = "interrupted"
        (prepared.working / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
        return TrainResult(None, prepared.working, outcome, prepared.data.summary())
    # Before the saved state goes: a run whose evaluation fails unexpectedly can still be resumed and saved.
    report = evaluate_training(prepared, pipe)
    record["evaluation"] = report.as_dict()
    state.unlink(missing_ok=True)
    record["status"] = "done"
    try:
        pipe.save_pretrained(str(prepared.working), safe_serialization=True)
        (prepared.working / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
        prepared.working.rename(prepared.folder)
    except BaseException:
        with distributed.sigterm_held():
            shutil.rmtree(prepared.working, ignore_errors=True)
        raise
    try:
        generator, queued = _register(prepared, record, outcome)
    except BaseException:
        with distributed.sigterm_held():
            shutil.rmtree(prepared.folder, ignore_errors=True)
        raise
    return TrainResult(generator, prepared.folder, outcome, prepared.data.summary(), queued, evaluation=report)


def _record(prepared: Prepared) -> dict[str, Any]:
    request = prepared.request
    earlier: dict[str, Any] = {}
    if request.resume and (prepared.working / RECORD_FILE).is_file():
        earlier = json.loads((prepared.working / RECORD_FILE).read_text(encoding="utf-8"))
    return {
        "name": request.name,
        "base": prepared.base.name,
        "base_source": prepared.base.source,
        "export": str(request.export),
        "export_format": prepared.data.format,
        "export_manifest_sha256": prepared.data.manifest_sha256,
        "data": prepared.data.summary(),
        **loop.config_record(request.config),
        **_batch_record(request.config),
        "preserved_from_campaign": list(prepared.preserved_from_campaign),
        "wall_seconds": earlier.get("wall_seconds", 0),
    }


def _read_log(folder: Path) -> list[dict[str, Any]]:
    path = folder / loop.LOG_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@transaction.atomic
def _register(prepared: Prepared, record: dict[str, Any], outcome: loop.TrainingOutcome) -> tuple[Generator, int]:
    base, request = prepared.base, prepared.request
    settings_ = {k: v for k, v in (base.settings or {}).items() if k not in _BAKED_SETTINGS}
    generator, _ = sync_generator(
        spec=GeneratorSpec(
            name=request.name,
            display_name=f"{request.name} ({request.config.objective} on {base.name})",
            description=f"{base.name} fine-tuned with {request.config.objective} on {prepared.data.summary()}.",
            source=str(prepared.folder),
            settings=settings_,
            prompt_template=base.prompt_template,
            is_offline_standin=base.is_offline_standin,
            gold_source=base.gold_source,
        )
    )
    TrainingRun.objects.create(
        generator=generator,
        base=base,
        export_format=prepared.data.format,
        export_manifest_sha256=prepared.data.manifest_sha256 or "",
        objective=request.config.objective,
        hyperparameters=loop.config_record(request.config),
        steps=outcome.steps_done,
        final_loss=outcome.final_loss,
        wall_seconds=float(record["wall_seconds"]),
        folder=str(prepared.folder),
    )
    queued = 0
    if prepared.campaign is not None:
        queued = sum(add_generator_to_campaign(campaign=prepared.campaign, generator=generator).values())
    return generator, queued
