"""Benchmark on a GPU: full-size SD 1.5 and SDXL architectures, built from their configs with random weights.

Random weights cost what real ones do (the same layers, shapes and kernels), so these are the real models'
speeds. Each pipeline is saved in diffusers layout and loaded back through `generation.pipelines.load_pipeline`,
as the worker loads a generator's folder, and sampled through `generation.pipelines.generate`.

- Issue 16, item 5: images/s at batch 1 and 8 (SD 1.5 also 16), fp16, without and with `compile`; each
  batch's first call (warm-up, and compilation where on) apart from the timed ones; and, beside each call,
  what the worker does per set outside it on that machine (PNG encoding, which the worker's storing thread
  overlaps with the next call).
- Issue 16, item 5: the worker's share of its loop outside pipeline calls, from `run_generation_worker --once`
  on a fresh SQLite database whose queues hold the saved SD 1.5 (Django and its apps' packages must be
  importable; `bench/gpu_settings.py` leaves out the web server's daphne).
- Issue 15: steps/s of `train_generator`'s loop (`training.loop.fine_tune`) as a LoRA on SD 1.5 at 512 px
  with fp16 mixed precision, on an export written and read as `train_generator` reads it; the tuned pipeline
  then generates once.

Run on a machine with a CUDA GPU: python bench/gpu_full_size.py --out results.jsonl [--budget-s 420]
Parts run in order of importance and each is skipped (and says so) when the budget left is below its
estimate; one JSON line per measurement is written as soon as it is taken. `--tiny --device cpu` runs the
same code on small configs on the CPU, to check the script without a GPU.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import platform
import random
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

PROMPTS = ["a doctor", "a photo of a nurse", "a red circle on a white background", "a portrait of a teacher"]

# The released configs' shapes (SD 1.5: runwayml's; SDXL: stabilityai's base 1.0), and small stand-ins for --tiny.
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "sd15": {
        "size": 512,
        "steps": 25,
        "guidance": 7.5,
        "unet": {
            "sample_size": 64,
            "block_out_channels": (320, 640, 1280, 1280),
            "layers_per_block": 2,
            "cross_attention_dim": 768,
            "attention_head_dim": 8,
            "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        },
        "vae": {"block_out_channels": (128, 256, 512, 512), "layers_per_block": 2, "sample_size": 512},
        "text": [{"hidden_size": 768, "intermediate_size": 3072, "layers": 12, "heads": 12, "act": "quick_gelu"}],
    },
    "sdxl": {
        "size": 1024,
        "steps": 25,
        "guidance": 5.0,
        "unet": {
            "sample_size": 128,
            "block_out_channels": (320, 640, 1280),
            "layers_per_block": 2,
            "cross_attention_dim": 2048,
            "attention_head_dim": (5, 10, 20),
            "transformer_layers_per_block": (1, 2, 10),
            "use_linear_projection": True,
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": 256,
            "projection_class_embeddings_input_dim": 2816,
            "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        },
        "vae": {
            "block_out_channels": (128, 256, 512, 512),
            "layers_per_block": 2,
            "sample_size": 1024,
            "scaling_factor": 0.13025,
            "force_upcast": True,
        },
        "text": [
            {"hidden_size": 768, "intermediate_size": 3072, "layers": 12, "heads": 12, "act": "quick_gelu"},
            {"hidden_size": 1280, "intermediate_size": 5120, "layers": 32, "heads": 20, "act": "gelu"},
        ],
    },
}
TINY: dict[str, dict[str, Any]] = {
    "sd15": {
        "size": 64,
        "steps": 2,
        "guidance": 7.5,
        "unet": {
            "sample_size": 16,
            "block_out_channels": (32, 64),
            "layers_per_block": 1,
            "cross_attention_dim": 32,
            "attention_head_dim": 8,
            "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
            "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
        },
        "vae": {"block_out_channels": (32, 64), "layers_per_block": 1, "sample_size": 64},
        "text": [{"hidden_size": 32, "intermediate_size": 64, "layers": 2, "heads": 4, "act": "quick_gelu"}],
    },
    "sdxl": {
        "size": 64,
        "steps": 2,
        "guidance": 5.0,
        "unet": {
            "sample_size": 16,
            "block_out_channels": (32, 64),
            "layers_per_block": 1,
            "cross_attention_dim": 64,
            "attention_head_dim": (2, 4),
            "transformer_layers_per_block": (1, 2),
            "use_linear_projection": True,
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": 8,
            "projection_class_embeddings_input_dim": 80,
            "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
            "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
        },
        "vae": {"block_out_channels": (32, 64), "layers_per_block": 1, "sample_size": 64},
        "text": [
            {"hidden_size": 32, "intermediate_size": 64, "layers": 2, "heads": 4, "act": "quick_gelu"},
            {"hidden_size": 32, "intermediate_size": 64, "layers": 2, "heads": 4, "act": "gelu"},
        ],
    },
}


class Recorder:
    """Appends one JSON line per result and keeps the time budget."""

    def __init__(self, out: Path, budget_s: float, only: set[str] | None = None) -> None:
        self.out = out
        self.only = only
        self.deadline = time.perf_counter() + budget_s

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def write(self, **row: Any) -> None:
        row["at_s_left"] = round(self.left(), 1)
        line = json.dumps(row)
        print(line, flush=True)
        with open(self.out, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def part(self, name: str, estimate_s: float, run: Callable[[], None]) -> None:
        if self.only and name not in self.only:
            return
        if self.left() < estimate_s:
            self.write(
                part=name, skipped=f"{self.left():.0f} s of the budget left, the part needs about {estimate_s:.0f}"
            )
            return
        try:
            run()
        except Exception as exc:  # a broken part is a result to report; the next part still runs
            self.write(part=name, error=f"{type(exc).__name__}: {exc}"[:2000], trace=traceback.format_exc()[-3000:])


def save_pipeline(kind: str, arch: dict[str, Any], folder: Path, device: str, dtype: Any) -> float:
    """Build the architecture with random weights (on `device`, which is fast) and save it in diffusers layout."""
    import torch
    from diffusers import (
        AutoencoderKL,
        DPMSolverMultistepScheduler,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from generation.tiny_models import MAX_TOKENS, write_byte_tokenizer

    started = time.perf_counter()
    tokenizer = write_byte_tokenizer(folder.parent / f"{kind}-tokenizer")
    vae_blocks = len(arch["vae"]["block_out_channels"])
    with torch.device(device):
        torch.manual_seed(0)
        unet = UNet2DConditionModel(**arch["unet"])
        vae = AutoencoderKL(
            **arch["vae"],
            latent_channels=4,
            down_block_types=["DownEncoderBlock2D"] * vae_blocks,
            up_block_types=["UpDecoderBlock2D"] * vae_blocks,
        )
        encoders = []
        for i, text in enumerate(arch["text"]):
            config = CLIPTextConfig(
                vocab_size=49408,  # the real vocabulary's size (the byte tokenizer uses its first 514 ids)
                hidden_size=text["hidden_size"],
                intermediate_size=text["intermediate_size"],
                num_hidden_layers=text["layers"],
                num_attention_heads=text["heads"],
                hidden_act=text["act"],
                projection_dim=text["hidden_size"],
                max_position_embeddings=MAX_TOKENS,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
            # SDXL's second encoder is the one with a projection (its pooled embedding conditions the UNet).
            model = CLIPTextModelWithProjection(config) if i == 1 else CLIPTextModel(config)
            encoders.append(model)
    scheduler = DPMSolverMultistepScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1
    )
    parts = {"vae": vae, "unet": unet, "scheduler": scheduler, "tokenizer": tokenizer, "text_encoder": encoders[0]}
    if kind == "sdxl":
        pipe: Any = StableDiffusionXLPipeline(**parts, text_encoder_2=encoders[1], tokenizer_2=tokenizer)
    else:
        pipe = StableDiffusionPipeline(
            **parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False
        )
    pipe.to(dtype=dtype)
    pipe.save_pretrained(folder)
    del pipe, unet, vae, encoders
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return time.perf_counter() - started


def timed_batches(
    pipe: Any, spec: Any, batches: list[int], *, repeats: int, device: str
) -> Iterator[tuple[int, float, list[float], list[Any]]]:
    """The worker path's generate at each batch size: (batch, its first call's seconds, `repeats` timed calls'
    seconds, the last call's images); the GPU synchronised around every call."""
    import torch

    from generation.pipelines import generate

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for batch in batches:
        prompts = [PROMPTS[i % len(PROMPTS)] for i in range(batch)]
        sync()
        first = time.perf_counter()
        generate(pipe, spec, prompts, list(range(batch)))
        sync()
        first_s = time.perf_counter() - first
        calls = []
        images: list[Any] = []
        for r in range(repeats):
            t = time.perf_counter()
            images = generate(pipe, spec, prompts, [1000 * (r + 1) + i for i in range(batch)])
            sync()
            calls.append(time.perf_counter() - t)
        yield batch, first_s, calls, images


def png_seconds(images: list[Any]) -> float:
    """The worker's PNG encoding of one set (`generation.pipelines.encode_png`, as the storing thread calls it)."""
    from generation.pipelines import encode_png

    started = time.perf_counter()
    for image in images:
        encode_png(image)
    return time.perf_counter() - started


def measure_generation(
    rec: Recorder, kind: str, arch: dict[str, Any], folder: Path, *, device: str, dtype: str, compile: bool,
    batches: list[int], repeats: int, cache: Path,
) -> None:  # fmt: skip
    import torch

    from generation.pipelines import PipelineSpec, load_pipeline

    spec = PipelineSpec(
        source=str(folder),
        steps=arch["steps"],
        guidance_scale=arch["guidance"],
        width=arch["size"],
        height=arch["size"],
        dtype=dtype,  # type: ignore[arg-type]
        compile=compile,
    )
    started = time.perf_counter()
    pipe = load_pipeline(spec, device=device, cache_dir=cache)
    load_s = time.perf_counter() - started
    for batch, first_s, calls, images in timed_batches(pipe, spec, batches, repeats=repeats, device=device):
        call_s = sorted(calls)[len(calls) // 2]
        encode_s = png_seconds(images)
        rec.write(
            part="generate",
            model=kind,
            compile=compile,
            dtype=dtype,
            size=arch["size"],
            steps=arch["steps"],
            guidance=arch["guidance"],
            batch=batch,
            load_s=round(load_s, 2),
            first_call_s=round(first_s, 2),
            call_s=[round(c, 3) for c in calls],
            images_per_s=round(batch / call_s, 3),
            unet_steps_per_s=round(arch["steps"] / call_s, 2),
            png_encode_s_per_set=round(encode_s, 3),
            png_share_if_inline=round(encode_s / (call_s + encode_s), 4),
            peak_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.startswith("cuda") else None,
        )
        if rec.left() < 20:
            break
    del pipe
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def write_export(folder: Path, *, size: int, pairs: int, n: int) -> Path:
    """A popalign-csv export of `pairs` population pairs of `n` images a side, as the exporter writes one."""
    from PIL import Image

    (folder / "images").mkdir(parents=True)
    rng = random.Random(0)
    rows = []
    for pair in range(pairs):
        sides = []
        for _side in range(2):
            names = []
            for _ in range(n):
                colour = tuple(rng.randrange(256) for _ in range(3))
                image = Image.new("RGB", (size, size), colour)
                out = io.BytesIO()
                image.save(out, "PNG")
                data = out.getvalue()
                name = f"images/{hashlib.sha256(data).hexdigest()}.png"
                (folder / name).write_bytes(data)
                names.append(name)
            sides.append(names)
        for w, lo in zip(*sides, strict=True):
            rows.append((w, lo, PROMPTS[pair % len(PROMPTS)], 0, f"c{pair}", f"{pair}w", f"{pair}l"))
    with open(folder / "train.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["jpg_0", "jpg_1", "caption", "label", "comparison_id", "population_w_id", "population_l_id"])
        writer.writerows(rows)
    (folder / "manifest.json").write_text(json.dumps({"format": "popalign-csv"}))
    return folder


def measure_training(
    rec: Recorder, arch: dict[str, Any], folder: Path, work: Path, *, device: str, dtype: str, precision: str,
    steps: int, batch: int, rank: int, cache: Path,
) -> None:  # fmt: skip
    import torch

    from generation.pipelines import PipelineSpec, generate, load_pipeline
    from training.loop import TrainingConfig, fine_tune
    from training.readers import read_export

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    size = arch["size"]
    export = write_export(Path(tempfile.mkdtemp(dir=work)) / "export", size=size, pairs=8, n=4)
    data = read_export(export)
    spec = PipelineSpec(
        source=str(folder), steps=arch["steps"], guidance_scale=arch["guidance"], width=size, height=size,
        dtype=dtype,  # type: ignore[arg-type]
    )  # fmt: skip
    pipe = load_pipeline(spec, device=device, cache_dir=cache)
    config = TrainingConfig(
        objective="popalign",
        steps=steps,
        batch=batch,
        lr=1e-4,
        device=device.split(":")[0],
        lora_rank=rank,
        mixed_precision=precision,
    )
    started = time.perf_counter()
    outcome = fine_tune(pipe, data, config, export.parent / "log", progress=False)
    wall = time.perf_counter() - started
    history = outcome.history
    skip = min(3, len(history) - 1)  # the first steps carry cuDNN's and the allocator's warm-up
    timed = (history[-1]["seconds"] - history[skip - 1]["seconds"]) / (len(history) - skip) if skip else float("nan")
    rec.write(
        part="train",
        model="sd15",
        objective="popalign",
        lora_rank=rank,
        mixed_precision=precision,
        base_dtype=dtype,
        size=size,
        batch_pairs=batch,
        unet_passes_per_step="4 x batch (winners and losers, tuned and reference)",
        steps=outcome.steps_done,
        final_loss=round(outcome.final_loss, 5),
        wall_s=round(wall, 2),
        steps_per_s=round(1 / timed, 3),
        pairs_per_s=round(batch / timed, 2),
        peak_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.startswith("cuda") else None,
    )
    # The tuned pipeline as fine_tune hands it back (adapters folded in) still generates.
    (image,) = generate(pipe, spec, [PROMPTS[0]], [7])
    rec.write(part="train, then generate", mixed_precision=precision, image_size=list(image.image.size))
    del pipe
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


WORKER_SETUP = """
from generation.prompt_files import PromptRow
from generation.services import DemandSpec, GeneratorSpec, import_prompts, sync_demand, sync_generator
settings = {settings!r}
generator, _ = sync_generator(spec=GeneratorSpec(
    name="sd15", display_name="SD 1.5 (random weights)", description="", source={source!r}, settings=settings))
prompts, _ = import_prompts(rows=[PromptRow(caption, "") for caption in {prompts!r}])
sync_demand(owner="bench", demands=[
    DemandSpec(generator=generator, prompt=p, size={size}, low_watermark={sets}, high_watermark={sets})
    for p in prompts])
"""


def measure_worker(
    rec: Recorder, arch: dict[str, Any], folder: Path, work: Path, *, device: str, dtype: str, prompts: int,
    sets: int, size: int, max_batch: int,
) -> None:  # fmt: skip
    """`run_generation_worker --once` on a fresh SQLite database whose only queues are `prompts` x `sets`
    populations of `size` images from the saved SD 1.5 folder; its summary line gives the share of its loop
    outside pipeline calls, with and without loading the pipeline."""
    import os
    import subprocess

    from worker_fill import PER_GENERATOR, SUMMARY

    var = Path(tempfile.mkdtemp(dir=work))
    env = {
        **os.environ,
        "POPARENA_VAR_DIR": str(var),
        "DJANGO_SETTINGS_MODULE": "bench.gpu_settings",
        "METRICS_AFTER_GENERATION": "0",
        "HF_HUB_OFFLINE": "1",
    }
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)

    def manage(*command: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *command], cwd=ROOT, env=env, capture_output=True, text=True
        )
        if result.returncode:
            raise RuntimeError(f"manage.py {command[0]} failed: {(result.stdout + result.stderr)[-1500:]}")
        return result.stdout + result.stderr

    started = time.perf_counter()
    manage("migrate", "--noinput")
    settings = {
        "steps": arch["steps"], "guidance_scale": arch["guidance"], "width": arch["size"], "height": arch["size"],
        "dtype": dtype,
    }  # fmt: skip
    captions = [f"{PROMPTS[i % len(PROMPTS)]}, variant {i}" for i in range(prompts)]
    setup = WORKER_SETUP.format(settings=settings, source=str(folder), prompts=captions, size=size, sets=sets)
    manage("shell", "-c", setup)
    seeded = time.perf_counter()
    log = manage("run_generation_worker", "--once", "--device", device, "--max-batch", str(max_batch))
    finished = time.perf_counter()
    summary = SUMMARY.search(log)
    if summary is None:
        raise RuntimeError(f"no summary line in the worker's output: {log[-1500:]}")
    images, populations, failed, wall, outside, load_s, outside_besides_load = summary.group(
        "images", "populations", "failed", "wall", "outside", "load", "outside_besides_load"
    )
    rec.write(
        part="worker",
        model="sd15",
        device=device,
        max_batch=max_batch,
        populations=int(populations),
        images=int(images),
        failed_attempts=int(failed),
        migrate_and_seed_s=round(seeded - started, 1),
        worker_process_s=round(finished - seeded, 1),
        worker_loop_wall_s=float(wall),
        share_outside_pipeline_calls=int(outside) / 100,
        load_s=float(load_s),
        share_outside_pipeline_calls_and_loading=int(outside_besides_load) / 100,
        per_generator=PER_GENERATOR.findall(log),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget-s", type=float, default=420)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="small configs: check the script on the CPU")
    parser.add_argument("--parts", help="comma-separated part names to run (default: all)")
    args = parser.parse_args()

    import torch

    rec = Recorder(args.out, args.budget_s, set(args.parts.split(",")) if args.parts else None)
    archs = TINY if args.tiny else ARCHITECTURES
    cuda = args.device.startswith("cuda")
    dtype = "float16" if cuda else "float32"
    torch_dtype = torch.float16 if cuda else torch.float32
    import diffusers
    import transformers

    rec.write(
        part="machine",
        device=torch.cuda.get_device_name() if cuda else platform.processor() or platform.machine(),
        torch=torch.__version__,
        diffusers=diffusers.__version__,
        transformers=transformers.__version__,
        python=platform.python_version(),
        tiny=args.tiny,
    )
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    repeats = 3 if cuda else 1
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cache = root / "cache"
        folders = {kind: root / kind for kind in archs}

        def build(kind: str) -> None:
            seconds = save_pipeline(kind, archs[kind], folders[kind], args.device, torch_dtype)
            size = sum(f.stat().st_size for f in folders[kind].rglob("*") if f.is_file())
            rec.write(part="build", model=kind, seconds=round(seconds, 1), gib_on_disk=round(size / 2**30, 2))

        def gen(kind: str, compile: bool, batches: list[int]) -> Callable[[], None]:
            return lambda: measure_generation(
                rec, kind, archs[kind], folders[kind], device=args.device, dtype=dtype, compile=compile,
                batches=batches, repeats=repeats, cache=cache,
            )  # fmt: skip

        def train(precision: str) -> Callable[[], None]:
            return lambda: measure_training(
                rec, archs["sd15"], folders["sd15"], root, device=args.device, dtype=dtype, precision=precision,
                steps=30 if cuda else 3, batch=8 if cuda else 2, rank=16, cache=cache,
            )  # fmt: skip

        def worker() -> None:
            measure_worker(
                rec, archs["sd15"], folders["sd15"], root, device=args.device, dtype=dtype, prompts=8,
                sets=4 if cuda else 1, size=6, max_batch=12,
            )  # fmt: skip

        # In order of importance; estimates are the seconds each needs on an H200 (generous).
        rec.part("build sd15", 30, lambda: build("sd15"))
        rec.part("generate sd15 eager", 40, gen("sd15", False, [1, 8, 16]))
        rec.part("train sd15 lora fp16", 60, train("fp16" if cuda else "no"))
        rec.part("worker sd15", 90, worker)
        rec.part("build sdxl", 60, lambda: build("sdxl"))
        rec.part("generate sdxl eager", 70, gen("sdxl", False, [1, 8]))
        rec.part("generate sd15 compiled", 120, gen("sd15", True, [1, 8]))
        rec.part("train sd15 lora bf16", 45, train("bf16"))
        # Compiling SDXL takes minutes per batch size (253 s at batch 1 on an H200), so each is a part of its own.
        rec.part("generate sdxl compiled", 300, gen("sdxl", True, [1]))
        rec.part("generate sdxl compiled batch 8", 330, gen("sdxl", True, [8]))
    rec.write(part="done")


if __name__ == "__main__":
    main()
