"""Benchmark: metric throughput in images/s for the `shapes` backend and a tiny random-weight CLIP.

Run: .venv/bin/python bench/metrics_throughput.py [--images 512] [--device cpu|cuda] [--clip FOLDER]
Each backend does what the worker does for a population: one label per attribute (shapes: colour
and background; clip: two classes), the diversity embedding, and the faithfulness or CLIP score
per population of 6. Timed after one warm-up pass; the tiny CLIP is built from config in a temporary
folder and loaded through CLIPModel/CLIPProcessor.from_pretrained, as a real one is, unless --clip
names a real model folder. Every pass (the warm-up included) reads fresh copies of the pictures, as
the worker opens them from storage, so no embedding is reused from an earlier pass; within a pass
each picture is embedded once (ClipBackend's cache), however many measures read it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from generation import shapes  # noqa: E402
from metrics.classifiers import Backend, ClipBackend, ShapesBackend, build_tiny_clip  # noqa: E402
from metrics.config import AttributeSpec, parse_attributes  # noqa: E402
from metrics.measures import vendi_score  # noqa: E402

N = 6


def run(backend: Backend, specs: list[AttributeSpec], images: list, caption: str) -> None:  # type: ignore[type-arg]
    for spec in specs:
        backend.labels(images, spec)
    embeddings = backend.embed(images)
    for start in range(0, len(images), N):
        vendi_score(embeddings[start : start + N])
        backend.faithfulness(images[start : start + N], caption)
        backend.clip_score(images[start : start + N], caption)


def timed(backend: Backend, specs: list[AttributeSpec], images: list, repeats: int = 3) -> float:  # type: ignore[type-arg]
    run(backend, specs, [image.copy() for image in images[: 2 * N]], "a red circle")
    best = float("inf")
    for _ in range(repeats):
        fresh = [image.copy() for image in images]
        started = time.perf_counter()
        run(backend, specs, fresh, "a red circle")
        best = min(best, time.perf_counter() - started)
    return len(images) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--clip", default="", help="a CLIP folder; default: a tiny random-weight one")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1)) if args.device == "cpu" else None
    images = [image for image, _ in shapes.draw_degraded_examples(5, args.images)]
    report: dict[str, object] = {
        "images": args.images,
        "device": args.device,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"
        + (f", {torch.cuda.get_device_name()}" if args.device.startswith("cuda") else ""),
    }
    shapes_specs = parse_attributes(
        {
            "colour": {"backend": "shapes", "classes": list(shapes.COLOURS)},
            "background": {"backend": "shapes", "classes": list(shapes.BACKGROUNDS)},
        }
    )
    report["shapes_images_per_s"] = round(timed(ShapesBackend(), shapes_specs, images), 1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.clip or str(build_tiny_clip(Path(tmp) / "tiny-clip"))
        clip_specs = parse_attributes(
            {
                "gender": {
                    "backend": "clip",
                    "model": folder,
                    "classes": ["a man", "a woman"],
                    "template": "a photo of {}",
                }
            }
        )
        clip = ClipBackend(folder, device=args.device, batch_size=64)
        report["clip_model"] = args.clip or "tiny random-weight CLIP (32x32, hidden 32)"
        report["clip_images_per_s"] = round(timed(clip, clip_specs, images), 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
