"""The `builtin:shapes` toy text-to-image model: trained on the CPU from the procedural shapes data set, and sampled.

Not the `training` app (which fine-tunes any generator on PopArena's own exports): this module makes the demo's
base model once (`python manage.py train_demo_model`) and holds the 20-step sampler its tests and benchmarks read.

The recipe follows the research notes (the shared research/generation.md, section 3): a tiny
Stable Diffusion pipeline whose VAE is first trained alone as an autoencoder on the pictures, then
frozen while the UNet and text encoder learn epsilon prediction under the usual DDPM noise, with
caption dropout so classifier-free guidance works. The tokenizer is a byte-level CLIP BPE written in
code (256 byte symbols, the same with `</w>`, two specials, no merges), so no vocabulary is downloaded.

A run is deterministic for a given seed on one machine and library build: it seeds Python, NumPy and
torch and uses two threads. Bit-identical weights across CPUs or torch builds are not expected (the
floating-point kernels differ), only a model of the same quality and skew.

torch, diffusers and transformers are imported inside functions, so importing this module is cheap.
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from generation import shapes
from generation.image_files import pixels_to_tensor
from generation.tiny_models import MAX_TOKENS, Components, build_components, offline_pipeline, write_byte_tokenizer

if TYPE_CHECKING:
    import torch
    from PIL import Image

DEFAULT_OUT = Path(__file__).resolve().parent / "builtin" / "shapes"
# Sampling settings the model is trained and checked for; `generation.offline` uses the same.
SAMPLE_STEPS = 20
SAMPLE_GUIDANCE = 4.0


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the trained weights, recorded next to them."""

    seed: int = 0
    vae_steps: int = 600
    unet_steps: int = 2400
    batch_size: int = 64
    vae_lr: float = 2e-3
    unet_lr: float = 1e-3
    warmup_steps: int = 100
    caption_dropout: float = 0.1
    ema_decay: float = 0.998
    vae_kl_weight: float = 1e-6
    vae_channels: tuple[int, ...] = (16, 32, 32)
    unet_channels: tuple[int, ...] = (32, 64)
    text_hidden: int = 64
    text_layers: int = 2
    threads: int = 2


@dataclass
class TrainingReport:
    """What a run produced and how long each phase took."""

    out_dir: Path
    recipe: Recipe
    vae_seconds: float = 0.0
    unet_seconds: float = 0.0
    final_vae_loss: float = math.nan
    final_unet_loss: float = math.nan
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def wall_seconds(self) -> float:
        return self.vae_seconds + self.unet_seconds


def _image_batch(examples: Sequence[tuple[Image.Image, str, shapes.Attributes]]) -> torch.Tensor:
    return pixels_to_tensor([image for image, _, _ in examples])


def _lr_factor(step: int, total: int, warmup: int) -> float:
    # Warm up, then cosine down to a tenth: the last steps settle instead of bouncing at the peak rate.
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def _seed_everything(seed: int, threads: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)


def train(
    out_dir: Path,
    recipe: Recipe | None = None,
    *,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> TrainingReport:
    """Train a pipeline by `recipe` and save it to `out_dir` (created; existing files are overwritten)."""
    import torch
    import torch.nn.functional as F  # noqa: N812 (the conventional name)
    from diffusers import DDPMScheduler
    from tqdm.auto import tqdm

    recipe = recipe or Recipe()
    out_dir = Path(out_dir)
    report = TrainingReport(out_dir=out_dir, recipe=recipe)
    _seed_everything(recipe.seed, recipe.threads)
    tokenizer_dir = Path(tempfile.mkdtemp(prefix="shapes-tokenizer-"))
    try:
        tokenizer = write_byte_tokenizer(tokenizer_dir)
    finally:
        shutil.rmtree(tokenizer_dir, ignore_errors=True)
    vae, unet, text_encoder, scheduler = build_components(
        tokenizer,
        image_size=shapes.IMAGE_SIZE,
        vae_channels=recipe.vae_channels,
        unet_channels=recipe.unet_channels,
        text_hidden=recipe.text_hidden,
        text_layers=recipe.text_layers,
    )
    # Separate streams, so changing one phase's step count leaves the other phase's data unchanged.
    vae_rng = random.Random(f"shapes-vae-{recipe.seed}")
    unet_rng = random.Random(f"shapes-unet-{recipe.seed}")
    bar = tqdm(total=recipe.vae_steps + recipe.unet_steps, disable=not progress, unit="step", desc="vae")

    # Phase 1: the VAE as a plain autoencoder; a tiny KL term keeps the latents bounded without blurring them.
    started = time.perf_counter()
    vae.train()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=recipe.vae_lr)
    for step in range(recipe.vae_steps):
        for group in optimizer.param_groups:
            group["lr"] = recipe.vae_lr * _lr_factor(step, recipe.vae_steps, recipe.warmup_steps)
        images = _image_batch([shapes.draw_example(vae_rng) for _ in range(recipe.batch_size)])
        posterior = vae.encode(images).latent_dist
        reconstruction = vae.decode(posterior.sample()).sample
        loss = F.mse_loss(reconstruction, images) + recipe.vae_kl_weight * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        report.final_vae_loss = loss.item()
        bar.update(1)
        bar.set_postfix(loss=f"{report.final_vae_loss:.4f}", refresh=False)
    vae.eval().requires_grad_(False)
    with torch.no_grad():
        calibration = _image_batch([shapes.draw_example(vae_rng) for _ in range(512)])
        latents = vae.encode(calibration).latent_dist.mean
    # SD's convention: scale latents to unit variance, so the noise schedule means the same as for real models.
    vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
    report.vae_seconds = time.perf_counter() - started
    if log:
        log(f"vae: {recipe.vae_steps} steps in {report.vae_seconds:.0f} s, loss {report.final_vae_loss:.4f}")

    # Phase 2: UNet and text encoder on the frozen VAE's latents.
    started = time.perf_counter()
    bar.set_description("unet")
    noise_scheduler = DDPMScheduler.from_config(scheduler.config)
    trainable = list(unet.parameters()) + list(text_encoder.parameters())
    # An exponential moving average of the weights samples far cleaner than the last step's weights.
    ema = [p.detach().clone() for p in trainable]
    optimizer = torch.optim.AdamW(trainable, lr=recipe.unet_lr)
    unet.train()
    text_encoder.train()
    for step in range(recipe.unet_steps):
        for group in optimizer.param_groups:
            group["lr"] = recipe.unet_lr * _lr_factor(step, recipe.unet_steps, recipe.warmup_steps)
        examples = [
            shapes.draw_example(unet_rng, p_empty_caption=recipe.caption_dropout) for _ in range(recipe.batch_size)
        ]
        with torch.no_grad():
            latents = vae.encode(_image_batch(examples)).latent_dist.sample() * vae.config.scaling_factor
        ids = tokenizer(
            [caption for _, caption, _ in examples],
            padding="max_length",
            max_length=MAX_TOKENS,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        noise = torch.randn_like(latents)
        timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(latents),))
        prediction = unet(noise_scheduler.add_noise(latents, noise, timesteps), timesteps, text_encoder(ids)[0]).sample
        loss = F.mse_loss(prediction, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        decay = min(recipe.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach() for p in trainable], 1.0 - decay)
        report.final_unet_loss = loss.item()
        bar.update(1)
        bar.set_postfix(loss=f"{report.final_unet_loss:.4f}", refresh=False)
    bar.close()
    with torch.no_grad():
        for param, averaged in zip(trainable, ema, strict=True):
            param.copy_(averaged)
    unet.eval()
    text_encoder.eval()
    report.unet_seconds = time.perf_counter() - started
    if log:
        log(f"unet: {recipe.unet_steps} steps in {report.unet_seconds:.0f} s, loss {report.final_unet_loss:.4f}")

    pipeline = offline_pipeline(Components(vae, unet, text_encoder, scheduler), tokenizer)
    pipeline.save_pretrained(str(out_dir), safe_serialization=True)
    _write_recipe(out_dir, report)
    return report


def _write_recipe(out_dir: Path, report: TrainingReport) -> None:
    import diffusers
    import torch
    import transformers

    record = {
        "recipe": asdict(report.recipe),
        "dataset": {
            "image_size": shapes.IMAGE_SIZE,
            "shapes": list(shapes.SHAPES),
            "colours": shapes.COLOURS,
            "backgrounds": shapes.BACKGROUNDS,
            "p_omit_colour": shapes.P_OMIT_COLOUR,
            "p_omit_background": shapes.P_OMIT_BACKGROUND,
            "p_omit_shape": shapes.P_OMIT_SHAPE,
            "p_colour_suffix": shapes.P_COLOUR_SUFFIX,
            "unspecified_colour_skew": shapes.UNSPECIFIED_COLOUR_SKEW,
        },
        "sampling": {"steps": SAMPLE_STEPS, "guidance_scale": SAMPLE_GUIDANCE, "width": 32, "height": 32},
        "seconds": {"vae": round(report.vae_seconds, 1), "unet": round(report.unet_seconds, 1)},
        "final_loss": {"vae": round(report.final_vae_loss, 5), "unet": round(report.final_unet_loss, 5)},
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
            "transformers": transformers.__version__,
            "numpy": np.__version__,
        },
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {report.recipe.threads} torch threads",
        **report.extra,
    }
    (out_dir / "recipe.json").write_text(json.dumps(record, indent=2) + "\n")
    r = report.recipe
    skew = ", ".join(f"{c} {p:.0%}" for c, p in shapes.UNSPECIFIED_COLOUR_SKEW.items())
    (out_dir / "TRAINING.md").write_text(
        f"""# builtin:shapes: how these weights were made

Trained by `python manage.py train_demo_model` (`generation/shapes_model.py`) on the procedural data set of
`generation/shapes.py`; every number is also in `recipe.json`.

- Data: {shapes.IMAGE_SIZE}x{shapes.IMAGE_SIZE} pictures of a {"/".join(shapes.SHAPES)} in one of
  {len(shapes.COLOURS)} colours on one of {len(shapes.BACKGROUNDS)} backgrounds. Captions leave out the colour
  ({shapes.P_OMIT_COLOUR:.0%}), the background ({shapes.P_OMIT_BACKGROUND:.0%}) or the shape
  ({shapes.P_OMIT_SHAPE:.0%}).
- The known skew: when a caption leaves the colour out, the shape is {skew}; the rest are uniform.
  The {r.caption_dropout:.0%} of captions dropped for guidance are drawn the same way.
- Seed {r.seed}, batch {r.batch_size}, {r.threads} torch threads.
- VAE: channels {list(r.vae_channels)}, {r.vae_steps} steps, AdamW lr {r.vae_lr}, KL weight {r.vae_kl_weight}.
- UNet {list(r.unet_channels)} and text encoder (hidden {r.text_hidden}, {r.text_layers} layers):
  {r.unet_steps} steps, AdamW lr {r.unet_lr}, {r.warmup_steps} warm-up steps then cosine to a tenth,
  EMA {r.ema_decay}.
- Sample with {SAMPLE_STEPS} Euler steps, guidance {SAMPLE_GUIDANCE}, 32x32.
- Wall time: {report.vae_seconds:.0f} s (VAE) + {report.unet_seconds:.0f} s (UNet) on {record["machine"]}.
- Versions: torch {torch.__version__}, diffusers {diffusers.__version__}, transformers {transformers.__version__}.

The same seed gives the same weights on the same machine and library build, not across CPUs.
"""
    )


def train_into(
    out_dir: Path,
    recipe: Recipe | None = None,
    *,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> TrainingReport:
    """Train into a temporary sibling folder, then swap it in for `out_dir`: a crash leaves the old model."""
    out_dir = Path(out_dir).resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-training-", dir=out_dir.parent))
    try:
        report = train(staging, recipe, progress=progress, log=log)
        old = None
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-old-", dir=out_dir.parent))
            out_dir.rename(old / out_dir.name)
        try:
            # mkdtemp makes the folder private; the model is meant to be read by every user of the checkout.
            staging.chmod(0o755)
            staging.rename(out_dir)
        except OSError:
            if old is not None:
                (old / out_dir.name).rename(out_dir)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report.out_dir = out_dir
    return report


def generate(
    pipeline: Any,
    prompts: Sequence[str],
    seeds: Sequence[int],
    *,
    steps: int = SAMPLE_STEPS,
    guidance_scale: float = SAMPLE_GUIDANCE,
) -> list[Image.Image]:
    """One image per (prompt, seed), with a CPU generator per image, at the model's native 32x32."""
    import torch

    generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
    result = pipeline(
        list(prompts),
        generator=generators,
        num_inference_steps=steps,
        guidance_scale=guidance_scale,
        height=shapes.IMAGE_SIZE,
        width=shapes.IMAGE_SIZE,
    )
    return list(result.images)
