"""Benchmark on a GPU: SD3-medium and FLUX.1-schnell built from their released configs with random weights.

Issue 32, item 5: images/s on the worker path (each pipeline saved in diffusers layout, loaded back through
`generation.pipelines.load_pipeline` as the worker loads a generator's folder, sampled through
`generation.pipelines.generate`), SD3 in float16 and FLUX in bfloat16 (each family's `dtype: auto` on a GPU), at
batch 1 and 8, eager and compiled. Random weights cost what real ones do (the same layers, shapes and kernels).
Tokenizers are the offline ones of generation.tiny_models (CLIP bytes, T5 characters): the text encoders still
read the full padded sequence (77 CLIP tokens, `max_sequence_length` T5 tokens), so their cost is the real one.

Whether `compile` should be the worker's default with a fixed batch shape: the compiled parts make a batch of 8
and then a short batch of 3 (a claim's last call). The short batch's first call (`first_call_s`) is the cost of
compiling another shape; padding the short batch to 8 would cost one more batch-8 call (`call_s` at batch 8)
instead. Compare the two, and eager against compiled `images_per_s`.

Run on a machine with a CUDA GPU: python bench/gpu_transformer_families.py --out results.jsonl [--budget-s 540]
Parts run in order and each is skipped (and says so) when the budget left is below its estimate; one JSON line
per measurement is written as soon as it is taken. `--tiny --device cpu` runs the same code on small configs on
the CPU, to check the script without a GPU.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from gpu_full_size import Recorder, png_seconds, timed_batches  # noqa: E402

CLIP_L = {"hidden_size": 768, "intermediate_size": 3072, "layers": 12, "heads": 12, "act": "quick_gelu"}
CLIP_G = {"hidden_size": 1280, "intermediate_size": 5120, "layers": 32, "heads": 20, "act": "gelu"}
T5_XXL = {"d_model": 4096, "d_kv": 64, "d_ff": 10240, "num_layers": 24, "num_heads": 64, "vocab_size": 32128}
VAE_16 = {"block_out_channels": (128, 256, 512, 512), "layers_per_block": 2, "latent_channels": 16}

# The released configs' shapes: stabilityai/stable-diffusion-3-medium-diffusers, black-forest-labs/FLUX.1-schnell.
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "sd3-medium": {
        "settings": {"steps": 28, "guidance_scale": 7.0, "width": 1024, "height": 1024, "dtype": "float16"},
        "transformer": {
            "sample_size": 128,
            "patch_size": 2,
            "in_channels": 16,
            "num_layers": 24,
            "attention_head_dim": 64,
            "num_attention_heads": 24,
            "joint_attention_dim": 4096,
            "caption_projection_dim": 1536,
            "pooled_projection_dim": 2048,
            "out_channels": 16,
            "pos_embed_max_size": 192,
        },
        "vae": {**VAE_16, "scaling_factor": 1.5305, "shift_factor": 0.0609},
        "clip": [CLIP_L, CLIP_G],
        "t5": T5_XXL,
        "shift": 3.0,
    },
    "flux-schnell": {
        "settings": {
            "steps": 4,
            "guidance_scale": 0.0,
            "width": 1024,
            "height": 1024,
            "dtype": "bfloat16",
            "max_sequence_length": 256,
        },
        "transformer": {
            "patch_size": 1,
            "in_channels": 64,
            "num_layers": 19,
            "num_single_layers": 38,
            "attention_head_dim": 128,
            "num_attention_heads": 24,
            "joint_attention_dim": 4096,
            "pooled_projection_dim": 768,
            "guidance_embeds": False,
            "axes_dims_rope": (16, 56, 56),
        },
        "vae": {**VAE_16, "scaling_factor": 0.3611, "shift_factor": 0.1159},
        "clip": [CLIP_L],
        "t5": T5_XXL,
        "shift": 1.0,
    },
}
TINY_CLIP = {"hidden_size": 32, "intermediate_size": 64, "layers": 1, "heads": 4, "act": "gelu"}
TINY_T5 = {"d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 1, "num_heads": 4, "vocab_size": 200}
TINY_VAE = {
    "block_out_channels": (8, 8, 8, 8),
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 4,
    "scaling_factor": 1.5,
    "shift_factor": 0.06,
}
TINY: dict[str, dict[str, Any]] = {
    "sd3-medium": {
        **ARCHITECTURES["sd3-medium"],
        "settings": {"steps": 2, "guidance_scale": 7.0, "width": 32, "height": 32, "dtype": "float32"},
        "transformer": {
            "sample_size": 4,
            "patch_size": 2,
            "in_channels": 4,
            "num_layers": 1,
            "attention_head_dim": 8,
            "num_attention_heads": 4,
            "joint_attention_dim": 32,
            "caption_projection_dim": 32,
            "pooled_projection_dim": 64,
            "out_channels": 4,
        },
        "vae": TINY_VAE,
        "clip": [TINY_CLIP, TINY_CLIP],
        "t5": TINY_T5,
    },
    "flux-schnell": {
        **ARCHITECTURES["flux-schnell"],
        "settings": {**ARCHITECTURES["flux-schnell"]["settings"], "width": 32, "height": 32, "dtype": "float32"},
        "transformer": {
            "patch_size": 1,
            "in_channels": 16,
            "num_layers": 1,
            "num_single_layers": 1,
            "attention_head_dim": 16,
            "num_attention_heads": 2,
            "joint_attention_dim": 32,
            "pooled_projection_dim": 32,
            "axes_dims_rope": (4, 4, 8),
        },
        "vae": TINY_VAE,
        "clip": [TINY_CLIP],
        "t5": TINY_T5,
    },
}


def save_family(kind: str, arch: dict[str, Any], folder: Path, device: str) -> float:
    """Build the architecture with random weights on `device`, in its precision (a 12B FLUX in float32 would not
    fit an 80 GB GPU), and save it in diffusers layout."""
    import torch
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        FluxPipeline,
        FluxTransformer2DModel,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    from generation.tiny_models import MAX_TOKENS, char_t5_tokenizer, write_byte_tokenizer

    started = time.perf_counter()
    clip_tokenizer = write_byte_tokenizer(folder.parent / f"{kind}-clip-tokenizer")
    t5_tokenizer = char_t5_tokenizer()
    dtype = getattr(torch, arch["settings"]["dtype"])
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            torch.manual_seed(0)
            vae_config = dict(arch["vae"])
            blocks = len(vae_config["block_out_channels"])
            vae = AutoencoderKL(
                **vae_config,
                down_block_types=["DownEncoderBlock2D"] * blocks,
                up_block_types=["UpDecoderBlock2D"] * blocks,
                use_quant_conv=False,
                use_post_quant_conv=False,
            )
            encoders = []
            for clip in arch["clip"]:
                config = CLIPTextConfig(
                    vocab_size=49408 if clip["hidden_size"] > 32 else 600,
                    hidden_size=clip["hidden_size"],
                    intermediate_size=clip["intermediate_size"],
                    num_hidden_layers=clip["layers"],
                    num_attention_heads=clip["heads"],
                    hidden_act=clip["act"],
                    projection_dim=clip["hidden_size"],
                    max_position_embeddings=MAX_TOKENS,
                    bos_token_id=clip_tokenizer.bos_token_id,
                    eos_token_id=clip_tokenizer.eos_token_id,
                    pad_token_id=clip_tokenizer.pad_token_id,
                )
                # SD3's two CLIPs both have projections (their pooled embeddings condition it); FLUX's one does not.
                encoders.append((CLIPTextModelWithProjection if kind.startswith("sd3") else CLIPTextModel)(config))
            t5 = T5EncoderModel(
                T5Config(
                    **arch["t5"],
                    feed_forward_proj="gated-gelu",
                    relative_attention_num_buckets=32,
                    is_encoder_decoder=False,
                    use_cache=False,
                )
            )
            scheduler = FlowMatchEulerDiscreteScheduler(shift=arch["shift"])
            pipe: Any
            if kind.startswith("sd3"):
                pipe = StableDiffusion3Pipeline(
                    transformer=SD3Transformer2DModel(**arch["transformer"]),
                    scheduler=scheduler,
                    vae=vae,
                    text_encoder=encoders[0],
                    tokenizer=clip_tokenizer,
                    text_encoder_2=encoders[1],
                    tokenizer_2=clip_tokenizer,
                    text_encoder_3=t5,
                    tokenizer_3=t5_tokenizer,
                )
            else:
                pipe = FluxPipeline(
                    transformer=FluxTransformer2DModel(**arch["transformer"]),
                    scheduler=scheduler,
                    vae=vae,
                    text_encoder=encoders[0],
                    tokenizer=clip_tokenizer,
                    text_encoder_2=t5,
                    tokenizer_2=t5_tokenizer,
                )
    finally:
        torch.set_default_dtype(previous)
    pipe.save_pretrained(folder)
    del pipe, vae, encoders, t5
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return time.perf_counter() - started


def measure(
    rec: Recorder, kind: str, arch: dict[str, Any], folder: Path, *, device: str, compile: bool, batches: list[int],
    repeats: int, cache: Path,
) -> None:  # fmt: skip
    """The worker path: load_pipeline, then generate at each batch size (its first call apart from the timed ones)."""
    import torch

    from generation.pipelines import PipelineSpec, load_pipeline

    spec = PipelineSpec.from_settings(str(folder), {**arch["settings"], "compile": compile})
    started = time.perf_counter()
    pipe = load_pipeline(spec, device=device, cache_dir=cache)
    load_s = time.perf_counter() - started
    for batch, first_s, calls, images in timed_batches(pipe, spec, batches, repeats=repeats, device=device):
        call_s = sorted(calls)[len(calls) // 2]
        rec.write(
            part="generate",
            model=kind,
            compile=compile,
            **{k: v for k, v in arch["settings"].items() if k != "height"},
            batch=batch,
            load_s=round(load_s, 2),
            first_call_s=round(first_s, 2),
            call_s=[round(c, 3) for c in calls],
            images_per_s=round(batch / call_s, 3),
            png_encode_s_per_set=round(png_seconds(images), 3),
            peak_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.startswith("cuda") else None,
        )
        if rec.left() < 20:
            break
    del pipe
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget-s", type=float, default=540)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="small configs: check the script on the CPU")
    parser.add_argument("--parts", help="comma-separated part names to run (default: all)")
    parser.add_argument("--workdir", type=Path, help="where the saved pipelines go (default: a temporary folder)")
    args = parser.parse_args()

    import diffusers
    import torch
    import transformers

    rec = Recorder(args.out, args.budget_s, set(args.parts.split(",")) if args.parts else None)
    archs = TINY if args.tiny else ARCHITECTURES
    cuda = args.device.startswith("cuda")
    rec.write(
        part="machine",
        device=torch.cuda.get_device_name() if cuda else platform.processor() or platform.machine(),
        torch=torch.__version__,
        diffusers=diffusers.__version__,
        transformers=transformers.__version__,
        tiny=args.tiny,
    )
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
    repeats = 3 if cuda else 1
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        root = Path(tmp)
        folders = {kind: root / kind for kind in archs}

        def build(kind: str) -> Callable[[], None]:
            def run() -> None:
                seconds = save_family(kind, archs[kind], folders[kind], args.device)
                size = sum(f.stat().st_size for f in folders[kind].rglob("*") if f.is_file())
                rec.write(part="build", model=kind, seconds=round(seconds, 1), gib_on_disk=round(size / 2**30, 2))

            return run

        def gen(kind: str, compile: bool, batches: list[int]) -> Callable[[], None]:
            return lambda: measure(
                rec, kind, archs[kind], folders[kind], device=args.device, compile=compile, batches=batches,
                repeats=repeats, cache=root / "cache",
            )  # fmt: skip

        # In order of importance; estimates are generous seconds on an H100 (building writes 15 and 34 GB).
        rec.part("build sd3-medium", 90, build("sd3-medium"))
        rec.part("generate sd3-medium eager", 120, gen("sd3-medium", False, [1, 8]))
        rec.part("build flux-schnell", 180, build("flux-schnell"))
        rec.part("generate flux-schnell eager", 120, gen("flux-schnell", False, [1, 8]))
        rec.part("generate flux-schnell compiled", 300, gen("flux-schnell", True, [8, 3]))
        rec.part("generate sd3-medium compiled", 300, gen("sd3-medium", True, [8, 3]))
    rec.write(part="done")


if __name__ == "__main__":
    main()
