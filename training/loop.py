"""The fine-tuning loop: a diffusers pipeline's UNet tuned on preference data against a frozen copy of itself.

No Django here: `training.services` resolves the base generator and registers the result. The loop

- loads the base through `from_pretrained` (the folder the generator's source resolves to), encodes every
  image once with the frozen VAE (the latent distribution's mean) and every caption once with the frozen
  text encoder(s);
- tunes the UNet (all of it, or a LoRA of rank R on the attention projections through peft); the reference
  is the untouched base: a frozen copy for a full fine-tune, the same UNet with its adapters switched off
  for a LoRA;
- draws, per step, a batch of winner/loser pairs (or labelled images for KTO), one noise and timestep per
  pair shared by both sides, and applies `training.objectives`;
- writes a JSONL log of every step, shows a tqdm bar with the loss, and on a stop request (SIGINT) ends
  the step it is in and saves what it has with its optimizer state, so `resume` continues it;
- under torchrun, trains one model on every process (training.distributed): each step's global batch, its
  noise and timesteps are drawn alike on every process from the seed and the step, each process trains on
  its share, gradients are averaged, and only the main process writes the log and the saved state.

fp16/bf16 on a GPU go through accelerate's mixed precision; the CPU runs float32.
"""

from __future__ import annotations

import copy
import io
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generation.training import pixels_to_tensor
from training import distributed, objectives
from training.readers import PreferenceData

if TYPE_CHECKING:
    import torch

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
    rewarded by accident: faithfulness 0.98 -> 0.82 on the demo campaign's export."""

    objective: str = objectives.POPALIGN
    steps: int = 300
    lr: float = 1e-4
    beta: float = 100.0
    batch: int = 16
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


def check_data_fits(data: PreferenceData, config: TrainingConfig) -> None:
    """Refuse an objective the export cannot feed, before anything is loaded."""
    if config.objective in objectives.PAIRED and not data.is_paired:
        raise TrainingError(
            f"--objective {config.objective} needs winner/loser pairs (a popalign-csv or pickapic-parquet export); "
            f"a {data.format} export has per-image labels only: use --objective kto"
        )
    if config.objective == objectives.KTO:
        labelled = data.labelled_images()
        if all(item.desirable for item in labelled) or not any(item.desirable for item in labelled):
            raise TrainingError("--objective kto needs both desirable and undesirable images; the export has one kind")


class _Encoded:
    """Latents of every distinct image and embeddings of every distinct caption, computed once.

    `labelled`: index per-image labels (KTO) instead of winner/loser pairs.
    """

    def __init__(
        self,
        pipe: Any,
        data: PreferenceData,
        device: str,
        dtype: torch.dtype,
        *,
        labelled: bool,
        preserve: tuple[str, ...] = (),
    ) -> None:
        import torch
        from PIL import Image

        blobs: dict[bytes, int] = {}
        captions: dict[str, int] = {}

        def index(blob: bytes, caption: str) -> tuple[int, int]:
            return blobs.setdefault(blob, len(blobs)), captions.setdefault(caption, len(captions))

        self.pairs: list[tuple[int, int, int]] = []
        self.images: list[tuple[int, int, bool]] = []
        if labelled:
            self.images = [(*index(i.image, i.caption), i.desirable) for i in data.labelled_images()]
        else:
            for pair in data.pairs:
                winner, caption = index(pair.winner, pair.caption)
                self.pairs.append((winner, index(pair.loser, pair.caption)[0], caption))
        # Captions held to the reference (TrainingConfig.preserve): embedded with the rest, indexed apart.
        self.preserved = [captions.setdefault(caption, len(captions)) for caption in preserve]
        vae = pipe.vae
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        ordered = list(blobs)
        latents = []
        with torch.no_grad():
            for start in range(0, len(ordered), 32):
                pictures = [Image.open(io.BytesIO(b)).convert("RGB") for b in ordered[start : start + 32]]
                batch = pixels_to_tensor(pictures).to(device, vae.dtype)
                latents.append(((vae.encode(batch).latent_dist.mean - shift) * vae.config.scaling_factor).to(dtype))
        self.latents = torch.cat(latents)
        self.text = _encode_captions(pipe, list(captions), device, dtype)


def _encode_captions(pipe: Any, captions: list[str], device: str, dtype: torch.dtype) -> dict[str, Any]:
    """Per caption: the UNet's encoder_hidden_states (and SDXL's pooled embeddings), no guidance."""
    import torch

    with torch.no_grad():
        encoded = pipe.encode_prompt(captions, device, 1, False)
    if hasattr(pipe, "text_encoder_2"):
        # SDXL: encode_prompt gives (embeds, negative, pooled, negative pooled).
        embeds, _, pooled, _ = encoded
        return {"embeds": embeds.to(dtype), "pooled": pooled.to(dtype)}
    embeds, _ = encoded
    return {"embeds": embeds.to(dtype)}


def _unet_kwargs(pipe: Any, text: dict[str, Any], index: torch.Tensor, height: int, width: int) -> dict[str, Any]:
    import torch

    kwargs: dict[str, Any] = {"encoder_hidden_states": text["embeds"][index]}
    if "pooled" in text:
        # SDXL's micro-conditioning: original size, crop (0, 0) and target size, all the training size.
        time_ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=text["pooled"].dtype)
        kwargs["added_cond_kwargs"] = {
            "text_embeds": text["pooled"][index],
            "time_ids": time_ids.to(text["pooled"].device).repeat(len(index), 1),
        }
    return kwargs


def add_lora(unet: Any, rank: int) -> None:
    from peft import LoraConfig

    unet.requires_grad_(False)
    unet.add_adapter(
        LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=list(LORA_TARGETS))
    )


def fine_tune(
    pipe: Any,
    data: PreferenceData,
    config: TrainingConfig,
    log_dir: Path,
    *,
    progress: bool = True,
    should_stop: Callable[[], bool] = lambda: False,
    resume_state: Path | None = None,
) -> TrainingOutcome:
    """Tune `pipe.unet` in place on `data`; logs into `log_dir`. Returns what was done (maybe interrupted)."""
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from diffusers import DDPMScheduler
    from tqdm.auto import tqdm

    check_data_fits(data, config)
    processes = distributed.world_size()
    if config.batch % processes:
        raise TrainingError(
            f"--batch {config.batch} does not split evenly over {processes} processes: use a multiple of {processes}"
        )
    main = distributed.is_main()
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    if pipe.unet.dtype in (torch.float16, torch.bfloat16) and config.mixed_precision == "no":
        raise TrainingError(
            f"the base is loaded in {str(pipe.unet.dtype).removeprefix('torch.')}: train it with --mixed-precision "
            "fp16 or bf16, or load it in float32 (the generator's dtype setting)"
        )
    # accelerate keeps one state per process and refuses another precision later in it (a second training in a
    # shell or a test run); each training sets its own.
    AcceleratorState._reset_state(reset_partial_state=True)
    accelerator = Accelerator(mixed_precision=config.mixed_precision, cpu=config.device == "cpu")
    device = str(accelerator.device)
    pipe.to(device)
    pipe.vae.requires_grad_(False)
    for name in ("text_encoder", "text_encoder_2"):
        if getattr(pipe, name, None) is not None:
            getattr(pipe, name).requires_grad_(False)
    unet = pipe.unet
    if config.lora_rank:
        add_lora(unet, config.lora_rank)
        reference = None
    else:
        reference = copy.deepcopy(unet).requires_grad_(False).eval()
    # The weights being trained in float32 even when the base was loaded in fp16/bf16 (as a GPU generator is):
    # mixed precision computes in half precision but keeps float32 weights, and its gradient scaler refuses
    # fp16 gradients. A LoRA's adapters take the base's dtype when added; diffusers' trainers cast them too.
    for param in unet.parameters():
        if param.requires_grad:
            param.data = param.data.float()
    encoded = _Encoded(
        pipe, data, device, torch.float32, labelled=config.objective == objectives.KTO, preserve=config.held_captions
    )
    trainable = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=0.0)
    outcome = TrainingOutcome()
    if resume_state is not None:
        state = torch.load(resume_state, map_location=device, weights_only=True)
        with torch.no_grad():
            for name, param in unet.named_parameters():
                if param.requires_grad:
                    param.copy_(state["trainable"][name])
        optimizer.load_state_dict(state["optimizer"])
        outcome.steps_done = int(state["steps_done"])
    unet.train()
    unet, optimizer = accelerator.prepare(unet, optimizer)
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    alphas = noise_scheduler.alphas_cumprod.to(device)
    prediction_type = noise_scheduler.config.prediction_type
    rng = random.Random(f"{config.seed}-{outcome.steps_done}")
    if resume_state is not None and "batch_rng" in state:
        # The draws go on where the interrupted run stopped, so a resumed run trains as an unbroken one would.
        rng.setstate((3, tuple(state["batch_rng"].tolist()), None))
        torch.set_rng_state(state["torch_rng"])
    height, width = data.image_size[1], data.image_size[0]
    n = data.population_size or 1

    def predict(model: Any, latents: Any, noise: Any, timesteps: Any, text_index: Any) -> Any:
        noisy = noise_scheduler.add_noise(latents, noise, timesteps)
        with accelerator.autocast():
            return model(noisy, timesteps, **_unet_kwargs(pipe, encoded.text, text_index, height, width)).sample

    def errors(model: Any, latents: Any, noise: Any, timesteps: Any, text_index: Any) -> Any:
        target = noise if prediction_type == "epsilon" else noise_scheduler.get_velocity(latents, noise, timesteps)
        predicted = predict(model, latents, noise, timesteps, text_index)
        return (predicted.float() - target.float()).pow(2).mean(dim=(1, 2, 3))

    def preservation(latents: Any, noise: Any, timesteps: Any, trained_index: Any, held: Any, below: Any) -> Any:
        """Mean squared gap between the model's and the reference's predictions where the preference should not
        reach: the preserved captions at this step's noisy latents and timesteps (at the noisier timesteps the
        latents are nearly pure noise, so what the caption asks for decides the prediction), and, when only the
        noisier timesteps are trained (min_timestep), the step's own captions at the timesteps below, where a
        sample's details are drawn."""
        parts = []
        if encoded.preserved:
            parts.append((latents, noise, timesteps, held))
        if config.min_timestep:
            parts.append((latents, noise, below, trained_index))
        latents, noise, timesteps, text_index = (torch.cat(x) for x in zip(*parts, strict=True))
        tuned = predict(unet, latents, noise, timesteps, text_index)
        kept = by_reference(predict, latents, noise, timesteps, text_index)
        return (tuned.float() - kept.float()).pow(2).mean()

    def by_reference(fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(model, *args)` with the frozen reference: its own copy, or the UNet with the LoRA switched off."""
        with torch.no_grad():
            if reference is not None:
                return fn(reference, *args)
            accelerator.unwrap_model(unet).disable_adapters()
            try:
                return fn(unet, *args)
            finally:
                accelerator.unwrap_model(unet).enable_adapters()

    def drawn(step: int, items: list[Any]) -> tuple[list[Any], Any, Any, Any, Any]:
        """This process's share of the step's global batch: its items, noise, timesteps, preserved caption and
        timestep below min_timestep per item. All are drawn for the whole batch, alike on every process (the
        same seed and step), then sliced, so N processes train on what one would."""
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        shape = (len(items), *encoded.latents.shape[1:])
        noise = torch.randn(shape, generator=generator)
        timesteps = torch.randint(config.min_timestep, len(alphas), (len(items),), generator=generator)
        below = torch.randint(0, max(config.min_timestep, 1), (len(items),), generator=generator)
        held = [rng.choice(encoded.preserved) for _ in items] if encoded.preserved else [0] * len(items)
        mine = distributed.share(len(items))
        return (
            items[mine],
            noise[mine].to(device, encoded.latents.dtype),
            timesteps[mine].to(device),
            torch.tensor(held[mine], device=device),
            below[mine].to(device),
        )

    if main:
        log_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    show = progress and main
    bar = tqdm(total=config.steps, initial=outcome.steps_done, disable=not show, unit="step", desc=config.objective)
    with open(log_dir / LOG_FILE, "a", encoding="utf-8") if main else _Discard() as log:
        while outcome.steps_done < config.steps:
            if distributed.any_process(should_stop()):
                outcome.interrupted = True
                break
            step = outcome.steps_done + 1
            if config.objective == objectives.KTO:
                labelled = [encoded.images[rng.randrange(len(encoded.images))] for _ in range(config.batch)]
                chosen, noise, timesteps, held, below = drawn(step, labelled)
                latents = encoded.latents[[c[0] for c in chosen]]
                text_index = torch.tensor([c[1] for c in chosen], device=device)
                desirable = torch.tensor([c[2] for c in chosen], device=device)
                model_e = errors(unet, latents, noise, timesteps, text_index)
                ref_e = by_reference(errors, latents, noise, timesteps, text_index)
                terms = objectives.kto_loss(
                    model_e, ref_e, desirable, beta=config.beta, batch_mean=distributed.global_mean
                )
                step_inputs = (latents, noise, timesteps, text_index, held, below)
            else:
                everything = [encoded.pairs[rng.randrange(len(encoded.pairs))] for _ in range(config.batch)]
                # One noise and one timestep per pair, shared by its winner and its loser.
                chosen_pairs, noise, timesteps, held, below = drawn(step, everything)
                winners = encoded.latents[[p[0] for p in chosen_pairs]]
                losers = encoded.latents[[p[1] for p in chosen_pairs]]
                text_index = torch.tensor([p[2] for p in chosen_pairs], device=device)
                both = (
                    torch.cat((winners, losers)),
                    torch.cat((noise, noise)),
                    torch.cat((timesteps, timesteps)),
                    torch.cat((text_index, text_index)),
                )
                model_e = errors(unet, *both)
                ref_e = by_reference(errors, *both)
                half = len(chosen_pairs)
                args = (model_e[:half], ref_e[:half], model_e[half:], ref_e[half:])
                if config.objective == objectives.POPALIGN:
                    terms = objectives.popalign_loss(*args, beta=config.beta, batch_mean=distributed.global_mean)
                elif config.objective == objectives.POPALIGN_PAIRED:
                    terms = objectives.popalign_paired_loss(*args, beta=config.beta, population_size=n)
                else:
                    terms = objectives.dpo_loss(*args, beta=config.beta)
                step_inputs = (winners, noise, timesteps, text_index, held, below)
            loss = terms.loss
            kept_gap = None
            if (encoded.preserved or config.min_timestep) and config.preserve_weight:
                kept_gap = preservation(*step_inputs)
                loss = loss + config.preserve_weight * kept_gap
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            if config.max_grad_norm:
                accelerator.clip_grad_norm_(trainable, config.max_grad_norm)
            optimizer.step()
            outcome.steps_done += 1
            # The loss of the whole global batch: each process's share weighs the same.
            outcome.final_loss = float(distributed.global_mean(terms.loss))
            record = {
                "step": outcome.steps_done,
                "loss": round(outcome.final_loss, 6),
                "reward_margin": terms.reward_margin,
                "accuracy": round(terms.accuracy, 4),
                "seconds": round(time.perf_counter() - started, 3),
            }
            if kept_gap is not None:
                record["preservation"] = round(float(kept_gap.detach()), 6)
            outcome.history.append(record)
            log.write(json.dumps(record) + "\n")
            log.flush()
            bar.update(1)
            bar.set_postfix(loss=f"{outcome.final_loss:.4f}", acc=f"{terms.accuracy:.2f}", refresh=False)
    bar.close()
    outcome.seconds = time.perf_counter() - started
    # Without its mixed-precision wrapper too: that wrapper returns float32, which a half-precision VAE refuses.
    unet = accelerator.unwrap_model(unet, keep_fp32_wrapper=False)
    unet.eval()
    if outcome.interrupted:
        if main:
            trainable_now = {n: p.detach().cpu() for n, p in unet.named_parameters() if p.requires_grad}
            state = {
                "trainable": trainable_now,
                "optimizer": optimizer.state_dict(),
                "steps_done": outcome.steps_done,
                "batch_rng": torch.tensor(rng.getstate()[1]),
                "torch_rng": torch.get_rng_state(),
            }
            torch.save(state, log_dir / STATE_FILE)
        distributed.barrier()
        return outcome
    if config.lora_rank:
        # Fold the adapter into the weights, so the result is a plain pipeline that loads like any other.
        unet.fuse_lora()
        unet.unload_lora()
    pipe.unet = unet
    return outcome


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
