"""Benchmark: images/s of the tiny offline pipelines on this CPU, batched vs one image per call.

Target (issue 4): batching at least 2.5x faster than one image per call.
Run: .venv/bin/python bench/generation_throughput.py [--repeats 5] [--batch 8] [--size 64] [--steps 2]
Prints one JSON line per configuration; the results go into BENCHMARKS.md by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from generation.pipelines import PipelineSpec, generate, load_pipeline  # noqa: E402


def measure(pipe, spec: PipelineSpec, batch: int, images: int, repeats: int) -> list[float]:
    """Images per second over `images` images made `batch` at a time, `repeats` times."""
    rates = []
    for repeat in range(repeats):
        seeds = list(range(repeat * images, (repeat + 1) * images))
        started = time.perf_counter()
        for start in range(0, images, batch):
            chunk = seeds[start : start + batch]
            generate(pipe, spec, [f"a shape number {s}" for s in chunk], chunk)
        rates.append(images / (time.perf_counter() - started))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--source", default="builtin:tiny-random")
    args = parser.parse_args()

    import torch

    spec = PipelineSpec.from_settings(args.source, {"steps": args.steps, "width": args.size, "height": args.size})
    with tempfile.TemporaryDirectory() as cache:
        pipe = load_pipeline(spec, device="cpu", cache_dir=Path(cache))
        measure(pipe, spec, args.batch, args.batch * 2, 1)  # warm-up: first calls allocate
        results = {}
        for batch in (1, args.batch):
            rates = measure(pipe, spec, batch, args.images, args.repeats)
            results[batch] = rates
            print(
                json.dumps(
                    {
                        "source": args.source,
                        "size": args.size,
                        "steps": args.steps,
                        "batch": batch,
                        "images_per_s_median": round(statistics.median(rates), 1),
                        "images_per_s_min": round(min(rates), 1),
                        "images_per_s_max": round(max(rates), 1),
                    }
                )
            )
    speedup = statistics.median(results[args.batch]) / statistics.median(results[1])
    print(
        json.dumps(
            {
                "speedup_batched_vs_single": round(speedup, 2),
                "target": 2.5,
                "met": speedup >= 2.5,
                "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                f"torch {torch.__version__}, {torch.get_num_threads()} threads",
            }
        )
    )


if __name__ == "__main__":
    main()
