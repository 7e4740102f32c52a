"""The fine-tuning loop: a diffusers pipeline's UNet tuned on preference data against a frozen copy of itself.

No Django here: `training.services` resolves the base generator and registers the result. The loop

- encodes every image once with the frozen VAE and every caption once with the frozen text encoder(s)
  (training.encoding);
- tunes the UNet (all of it, or a LoRA of rank R on the attention projections through peft); the reference
  is the untouched base: a frozen copy for a full fine-tune, the same UNet with its adapters switched off
  for a LoRA (`Denoisers`);
- per step, draws the effective batch (training.batches: the objective family's examples, one noise and
  timestep per pair shared by both sides), and for each of `accumulate` micro-batches applies the objective
  from `training.objectives.OBJECTIVES` and a preservation term, then takes one optimizer step;
- writes a JSONL log of every step, shows a tqdm bar with the loss, and on a stop request (SIGINT) ends
  the step it is in and saves what it has with its optimizer state, so `resume` continues it;
- under torchrun, trains one model on every process (training.distributed): each process trains on its share
  of every micro-batch, gradients are averaged, and only the main process writes the log and the saved state.

Mixed precision (fp16/bf16 on a GPU, bf16 also on the CPU) is torch's autocast, with a gradient scaler for
fp16, and the processes' gradients are averaged by torch's DistributedDataParallel: accelerate's Accelerator
would do the same, but keeps one state per process that refuses a second precision in the same process.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from training import distributed, objectives
from training.batches import FAMILIES, Batch, Draws, draw_step, drawing_from
from training.encoding import EncodedData, unet_kwargs
from training.readers import PreferenceData

LOG_FILE = "training-log.jsonl"
STATE_FILE = "training-state.pt"
# PEFT's usual LoRA targets in a diffusers UNet: the attention projections.
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
MIXED_PRECISION = ("no", "fp16", "bf16")


class TrainingError(ValueError):
    """Training cannot start or go on; the message says what to change."""


@dataclass(frozen=True)
class TrainingConfig:
    """One training run's settings. The defaults are the recipe that held on the demo campaign's own export
    (README, "Training on our own exports"; the runs behind it in BENCHMARKS.md): PopAlign's beta of 100, the
    noisier timesteps only (700 of 1000 up, where a sample's colour and layout are chosen), and the rest held to
    the base at weight 60 (the captions the export leaves out at every timestep, the trained ones below 700).
    The older defaults (beta 500, every timestep, no preservation) let the model learn part of what the crowd
    rewarded by accident: faithfulness 0.98 -> 0.82 on the demo campaign's export.

    `batch` is per process and per micro-batch: a step trains on `effective_batch` examples, batch x accumulate
    x processes (as diffusers' trainers count it)."""

    objective: str = objectives.POPALIGN
    steps: int = 300
    lr: float = 1e-4
    beta: float = 100.0
    batch: int = 16
    # Micro-batches per optimizer step (gradient accumulation): a larger effective batch in the same memory.
    accumulate: int = 1
    seed: int = 0
    device: str = "cpu"
    lora_rank: int = 0  # 0: fine-tune the whole UNet
    mixed_precision: str = "no"
    max_grad_norm: float = 1.0
    threads: int = 0
    # Train on timesteps drawn from [min_timestep, the scheduler's T): the noisier steps, where a sample's
    # colour and layout are chosen. 0 draws all of them, as PopAlign's and Diffusion-DPO's trainers do.
    min_timestep: int = 700
    # Preservation: captions the preference data leaves out (say, those that name the attribute being
    # rebalanced), on which the tuned model's predictions are held to the reference's with this weight; with
    # min_timestep, the data's own captions are held there too at the timesteps below it.
    preserve: tuple[str, ...] = ()
    preserve_weight: float = 60.0
    # Hold the unconditional prediction (the empty caption, which classifier-free guidance subtracts) too.
    preserve_unconditional: bool = False

    @property
    def held_captions(self) -> tuple[str, ...]:
        """Every caption preservation holds: the named ones, and the empty one with preserve_unconditional."""
        return self.preserve + (("",) if self.preserve_unconditional else ())

    def effective_batch(self, processes: int) -> int:
        """Examples per optimizer step: batch x accumulate x processes."""
        return self.batch * self.accumulate * processes

    def __post_init__(self) -> None:
        if self.objective not in objectives.OBJECTIVES:
            raise TrainingError(
                f"--objective must be one of {', '.join(objectives.OBJECTIVES)}, got {self.objective!r}"
            )
        checks = [
            ("steps", self.steps >= 1, "at least 1"),
            ("lr", math.isfinite(self.lr) and self.lr > 0, "a positive number"),
            ("beta", math.isfinite(self.beta) and self.beta > 0, "a positive number"),
            ("batch", self.batch >= 1, "at least 1"),
            ("accumulate", self.accumulate >= 1, "at least 1"),
            ("lora-rank", self.lora_rank >= 0, "0 (full fine-tune) or more"),
            ("threads", self.threads >= 0, "0 (automatic) or more"),
            ("min-timestep", self.min_timestep >= 0, "0 (every timestep) or more"),
            ("preserve-weight", math.isfinite(self.preserve_weight) and self.preserve_weight >= 0, "0 or more"),
        ]
        for name, ok, requirement in checks:
            if not ok:
                raise TrainingError(f"--{name} must be {requirement}, got {getattr(self, name.replace('-', '_'))!r}")
        if any(not caption.strip() for caption in self.preserve):
            raise TrainingError("--preserve needs a caption, got an empty one")
        if self.mixed_precision not in MIXED_PRECISION:
            raise TrainingError(f"--mixed-precision must be one of {', '.join(MIXED_PRECISION)}")


@dataclass
class TrainingOutcome:
    steps_done: int = 0
    final_loss: float = math.nan
    seconds: float = 0.0
    interrupted: bool = False
    history: list[dict[str, float]] = field(default_factory=list)
    # Images and captions each process encoded (EncodedData.encoded).
    encoded: dict[str, list[int]] = field(default_factory=dict)


def check_data_fits(data: PreferenceData, config: TrainingConfig) -> None:
    """Refuse an objective the export cannot feed, before anything is loaded."""
    if config.objective in objectives.PAIRED and not data.is_paired:
        raise TrainingError(
            f"--objective {config.objective} needs winner/loser pairs (a popalign-csv or pickapic-parquet export); "
            f"a {data.format} export has per-image labels only: use --objective kto"
        )
    if objectives.OBJECTIVES[config.objective].family == objectives.LABELLED:
        labelled = data.labelled_images()
        if all(item.desirable for item in labelled) or not any(item.desirable for item in labelled):
            raise TrainingError("--objective kto needs both desirable and undesirable images; the export has one kind")


def add_lora(unet: Any, rank: int) -> None:
    from peft import LoraConfig

    unet.requires_grad_(False)
    unet.add_adapter(
        LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=list(LORA_TARGETS))
    )


class Denoisers:
    """The UNet being tuned and its frozen reference, and the noise predictions the losses read.

    `unet` is the model itself (saved, and switched to the reference for a LoRA); `trained` is what the steps
    call (DistributedDataParallel under torchrun). Predictions run under autocast in mixed precision and are
    compared in float32.
    """

    def __init__(self, pipe: Any, config: TrainingConfig, device: str, draws: Draws) -> None:
        import torch
        from diffusers import DDPMScheduler

        pipe.to(device)
        pipe.vae.requires_grad_(False)
        for name in ("text_encoder", "text_encoder_2"):
            if getattr(pipe, name, None) is not None:
                getattr(pipe, name).requires_grad_(False)
        self.unet = pipe.unet
        self.reference: Any = None
        if config.lora_rank:
            # peft draws the adapters' initial weights from torch's global generator and takes no other.
            with drawing_from(draws.init):
                add_lora(self.unet, config.lora_rank)
        else:
            self.reference = copy.deepcopy(self.unet).requires_grad_(False).eval()
        # The weights being trained in float32 even when the base was loaded in fp16/bf16 (as a GPU generator is):
        # mixed precision computes in half precision but keeps float32 weights, and its gradient scaler refuses
        # fp16 gradients. A LoRA's adapters take the base's dtype when added; diffusers' trainers cast them too.
        for param in self.unet.parameters():
            if param.requires_grad:
                param.data = param.data.float()
        self.trainable = [p for p in self.unet.parameters() if p.requires_grad]
        self.trained: Any = self.unet
        self.scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        self.timesteps = len(self.scheduler.alphas_cumprod)
        self.device = device
        self.mixed = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(config.mixed_precision)
        self.text: dict[str, Any] = {}
        self.size = (0, 0)

    def start(self, encoded: EncodedData, image_size: tuple[int, int]) -> None:
        """Ready for the steps: the captions to condition on, the size trained at, the model in train mode."""
        self.text = encoded.text
        self.size = (image_size[1], image_size[0])
        self.unet.train()
        self.trained = distributed.wrap(self.unet, self.device)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        import torch

        if self.mixed is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.split(":")[0], dtype=self.mixed)

    def predict(self, model: Any, latents: Any, noise: Any, timesteps: Any, captions: Any) -> Any:
        noisy = self.scheduler.add_noise(latents, noise, timesteps)
        with self._autocast():
            return model(noisy, timesteps, **unet_kwargs(self.text, captions, *self.size)).sample

    def errors(self, model: Any, latents: Any, noise: Any, timesteps: Any, captions: Any) -> Any:
        """Per row: the mean squared error of `model`'s prediction against the scheduler's target."""
        if self.scheduler.config.prediction_type == "epsilon":
            target = noise
        else:
            target = self.scheduler.get_velocity(latents, noise, timesteps)
        predicted = self.predict(model, latents, noise, timesteps, captions)
        return (predicted.float() - target.float()).pow(2).mean(dim=(1, 2, 3))

    def by_reference(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(model, *args)` with the frozen reference: its own copy, or the UNet with the LoRA switched off."""
        import torch

        with torch.no_grad():
            if self.reference is not None:
                return fn(self.reference, *args)
            self.unet.disable_adapters()
            try:
                return fn(self.unet, *args)
            finally:
                self.unet.enable_adapters()

    def batch_errors(self, batch: Batch, *, grad: bool = True) -> Any:
        """The tuned model's errors on the batch's rows (`grad` False: without building a graph)."""
        import torch

        args = (batch.latents, batch.noise, batch.timesteps, batch.captions)
        if grad:
            return self.errors(self.trained, *args)
        with torch.no_grad():
            return self.errors(self.unet, *args)

    def reference_errors(self, batch: Batch) -> Any:
        return self.by_reference(self.errors, batch.latents, batch.noise, batch.timesteps, batch.captions)

    def preservation(self, batch: Batch, *, held: bool, below: bool) -> Any:
        """Mean squared gap between the model's and the reference's predictions where the preference should not
        reach: the preserved captions (`held`) at the batch's noisy latents and timesteps (at the noisier
        timesteps the latents are nearly pure noise, so what the caption asks for decides the prediction), and,
        when only the noisier timesteps are trained (`below`), the batch's own captions at the timesteps below,
        where a sample's details are drawn."""
        import torch

        latents, noise, timesteps, captions = batch.anchor()
        parts = []
        if held:
            parts.append((latents, noise, timesteps, batch.held))
        if below:
            parts.append((latents, noise, batch.below, captions))
        joined = [torch.cat(x) for x in zip(*parts, strict=True)]
        tuned = self.predict(self.trained, *joined)
        kept = self.by_reference(self.predict, *joined)
        return (tuned.float() - kept.float()).pow(2).mean()

    def syncing(self, last: bool) -> contextlib.AbstractContextManager[Any]:
        """Gradients are averaged over the processes at the last micro-batch's backward only."""
        if last or self.trained is self.unet:
            return contextlib.nullcontext()
        return self.trained.no_sync()


def fine_tune(
    pipe: Any,
    data: PreferenceData,
    config: TrainingConfig,
    log_dir: Path,
    *,
    progress: bool = True,
    should_stop: Callable[[], bool] = lambda: False,
    resume_state: Path | None = None,
    draws: Draws | None = None,
) -> TrainingOutcome:
    """Tune `pipe.unet` in place on `data`; logs into `log_dir`. Returns what was done (maybe interrupted).

    `draws`: where the run's randomness comes from (default: from `config.seed`, as every process of a run
    draws it)."""
    import torch
    from tqdm.auto import tqdm

    check_data_fits(data, config)
    if pipe.unet.dtype in (torch.float16, torch.bfloat16) and config.mixed_precision == "no":
        raise TrainingError(
            f"the base is loaded in {str(pipe.unet.dtype).removeprefix('torch.')}: train it with --mixed-precision "
            "fp16 or bf16, or load it in float32 (the generator's dtype setting)"
        )
    objective = objectives.OBJECTIVES[config.objective]
    family = FAMILIES[objective.family]
    draws = draws or Draws.from_seed(config.seed)
    device = distributed.device_for(config.device)
    model = Denoisers(pipe, config, device, draws)
    encoded = EncodedData(
        pipe, data, device, torch.float32, labelled=objective.family == objectives.LABELLED,
        preserve=config.held_captions,
    )  # fmt: skip
    outcome = TrainingOutcome(encoded=encoded.encoded)
    optimizer = torch.optim.AdamW(model.trainable, lr=config.lr, weight_decay=0.0)
    scaler = torch.amp.GradScaler(device.split(":")[0]) if config.mixed_precision == "fp16" else None
    if resume_state is not None:
        _load_state(resume_state, model, optimizer, scaler, draws, outcome, device)
    model.start(encoded, data.image_size)
    processes = distributed.world_size()
    effective = config.effective_batch(processes)
    parts = distributed.micro_slices(config.batch, config.accumulate, processes, distributed.rank())
    settings = objectives.LossSettings(
        beta=config.beta, population_size=data.population_size or 1, batch_mean=distributed.global_mean
    )
    hold = bool(encoded.preserved), bool(config.min_timestep)
    preserving = any(hold) and bool(config.preserve_weight)

    main = distributed.is_main()
    if main:
        log_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    bar = tqdm(
        total=config.steps, initial=outcome.steps_done, disable=not (progress and main), unit="step",
        desc=config.objective,
    )  # fmt: skip
    with open(log_dir / LOG_FILE, "a", encoding="utf-8") if main else _Discard() as log:
        while outcome.steps_done < config.steps:
            if distributed.any_process(should_stop()):
                outcome.interrupted = True
                break
            draw = draw_step(
                family.pool(encoded), draws, outcome.steps_done + 1, size=effective,
                latent_shape=tuple(encoded.latents.shape[1:]), min_timestep=config.min_timestep,
                timesteps=model.timesteps, preserved=encoded.preserved,
            )  # fmt: skip
            batches = [family.build(encoded, draw, part, device) for part in parts]
            optimizer.zero_grad(set_to_none=True)
            record = _step(model, objective, batches, settings, config, preserving, hold, scaler)
            if config.max_grad_norm:
                if scaler is not None:
                    scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.trainable, config.max_grad_norm)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            outcome.steps_done += 1
            outcome.final_loss = record["loss"]
            record = {
                "step": outcome.steps_done,
                "loss": round(record["loss"], 6),
                "reward_margin": record["reward_margin"],
                "accuracy": round(record["accuracy"], 4),
                **({"preservation": round(record["preservation"], 6)} if "preservation" in record else {}),
                "effective_batch": effective,
                "seconds": round(time.perf_counter() - started, 3),
            }
            outcome.history.append(record)
            log.write(json.dumps(record) + "\n")
            log.flush()
            bar.update(1)
            bar.set_postfix(loss=f"{outcome.final_loss:.4f}", acc=f"{record['accuracy']:.2f}", refresh=False)
    bar.close()
    outcome.seconds = time.perf_counter() - started
    model.unet.eval()
    if outcome.interrupted:
        if main:
            _save_state(log_dir / STATE_FILE, model, optimizer, scaler, draws, outcome)
        return outcome
    if config.lora_rank:
        # Fold the adapter into the weights, so the result is a plain pipeline that loads like any other.
        model.unet.fuse_lora()
        model.unet.unload_lora()
    return outcome


def _step(
    model: Denoisers,
    objective: objectives.Objective,
    batches: list[Batch],
    settings: objectives.LossSettings,
    config: TrainingConfig,
    preserving: bool,
    hold: tuple[bool, bool],
    scaler: Any,
) -> dict[str, float]:
    """One optimizer step's gradients over its micro-batches; returns the effective batch's loss (the objective
    without preservation), reward margin, accuracy and preservation gap, each averaged over every process."""
    import torch

    accumulate = len(batches)
    references = [model.reference_errors(batch) for batch in batches]
    if accumulate > 1 and objective.reference_point is not None:
        # The reference point is a statistic of the whole effective batch (as it is of one batch of that size):
        # computed from every micro-batch before any gradient is taken, with the weights they all see.
        ahead = [b.loss_inputs(model.batch_errors(b, grad=False), r) for b, r in zip(batches, references, strict=True)]
        joined = tuple(torch.cat(column) for column in zip(*ahead, strict=True))
        settings = objectives.LossSettings(
            beta=settings.beta,
            population_size=settings.population_size,
            reference_point=objective.reference_point(joined, settings.batch_mean),
        )
    seen: list[objectives.LossInputs] = []
    gaps = []
    for index, (batch, reference) in enumerate(zip(batches, references, strict=True)):
        with model.syncing(last=index == accumulate - 1):
            inputs = batch.loss_inputs(model.batch_errors(batch), reference)
            loss = objective.loss(inputs, settings).loss
            if preserving:
                gap = model.preservation(batch, held=hold[0], below=hold[1])
                loss = loss + config.preserve_weight * gap
                gaps.append(float(gap.detach()))
            if accumulate > 1:
                loss = loss / accumulate
            (scaler.scale(loss) if scaler is not None else loss).backward()
        seen.append(tuple(t.detach() for t in inputs))
    # What the log shows is the objective on the whole effective batch (the micro-batches' inputs together; the
    # processes' shares weigh the same), without preservation: one batch of that size would log the same.
    with torch.no_grad():
        terms = objective.loss(tuple(torch.cat(column) for column in zip(*seen, strict=True)), settings)
    shown: dict[str, Any] = {"loss": terms.loss, "reward_margin": terms.reward_margin, "accuracy": terms.accuracy}
    if preserving:
        shown["preservation"] = sum(gaps) / accumulate
    # One collective step for all of them: each is a synchronisation point between the processes.
    averaged = distributed.average(torch.tensor([float(value) for value in shown.values()]))
    return dict(zip(shown, averaged.tolist(), strict=True))


def _save_state(path: Path, model: Denoisers, optimizer: Any, scaler: Any, draws: Draws, outcome: Any) -> None:
    import torch

    state = {
        "trainable": {n: p.detach().cpu() for n, p in model.unet.named_parameters() if p.requires_grad},
        "optimizer": optimizer.state_dict(),
        "steps_done": outcome.steps_done,
        # Where the example draws stopped, so a resumed run draws what an unbroken one would have.
        "batch_rng": torch.tensor(draws.items.getstate()[1]),
    }
    if scaler is not None:
        state["scaler"] = scaler.state_dict()
    torch.save(state, path)


def _load_state(
    path: Path, model: Denoisers, optimizer: Any, scaler: Any, draws: Draws, outcome: Any, device: str
) -> None:
    import torch

    state = torch.load(path, map_location=device, weights_only=True)
    with torch.no_grad():
        for name, param in model.unet.named_parameters():
            if param.requires_grad:
                param.copy_(state["trainable"][name])
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    outcome.steps_done = int(state["steps_done"])
    if "batch_rng" in state:
        draws.items.setstate((3, tuple(state["batch_rng"].tolist()), None))
    else:
        draws.items.seed(f"{draws.seed}-{outcome.steps_done}")


class _Discard:
    """The log of a process that is not the main one: written nowhere."""

    def __enter__(self) -> _Discard:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None


def config_record(config: TrainingConfig) -> dict[str, Any]:
    """The config as it reads back from training.json (lists, not tuples), so a record and a config compare."""
    return json.loads(json.dumps(asdict(config)))
