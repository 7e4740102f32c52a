"""Benchmark: the demo shapes model's sampler: images/s against legibility, per scheduler and step count.

Target (issue 16): fewer sampling steps for the demo, with the classifier's faithfulness to named
attributes and the measured skew on open prompts within a few points of today's (20 Euler steps).
Run: nice -n 10 .venv/bin/python bench/demo_sampler.py [--seeds 12] [--batch 8] [--threads 2]
     [--configs euler:20,dpmpp:8,...]
Every configuration makes the same images (the demo's prompts x the same seeds, the base
generator's template) and reads them with generation.shapes.classify. Prints one JSON line per
configuration; the results go into BENCHMARKS.md by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SCHEDULERS = {
    "euler": "EulerDiscreteScheduler",
    "dpmpp": "DPMSolverMultistepScheduler",  # diffusers' default algorithm here is DPM-Solver++
    "unipc": "UniPCMultistepScheduler",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=12, help="images per prompt")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--configs", default="euler:20,euler:10,dpmpp:10,dpmpp:8,dpmpp:6,unipc:8,unipc:6")
    args = parser.parse_args()

    import torch

    from annotation.demo import DEMO_PROMPTS
    from generation.pipelines import PipelineSpec, generate, load_pipeline
    from generation.shapes import classify, parse_caption

    if args.threads:
        torch.set_num_threads(args.threads)
    jobs = [(row.caption, seed) for row in DEMO_PROMPTS for seed in range(args.seeds)]
    with tempfile.TemporaryDirectory() as cache:
        for config in args.configs.split(","):
            name, steps = config.split(":")
            settings = {"steps": int(steps), "guidance_scale": 4.0, "width": 32, "height": 32}
            if name != "euler":
                settings["scheduler"] = SCHEDULERS[name]
            spec = PipelineSpec.from_settings("builtin:shapes", settings)
            pipe = load_pipeline(spec, device="cpu", cache_dir=Path(cache))
            generate(pipe, spec, ["a circle"] * args.batch, list(range(args.batch)))  # warm-up
            images = []
            started = time.perf_counter()
            for start in range(0, len(jobs), args.batch):
                chunk = jobs[start : start + args.batch]
                images += generate(pipe, spec, [c for c, _ in chunk], [s for _, s in chunk])
            seconds = time.perf_counter() - started
            named = matched = open_colour = red = 0
            for (caption, _), generated in zip(jobs, images, strict=True):
                wanted, seen = parse_caption(caption), classify(generated.image)
                for attribute in ("shape", "colour", "background"):
                    if getattr(wanted, attribute) is not None:
                        named += 1
                        matched += getattr(seen, attribute) == getattr(wanted, attribute)
                if wanted.colour is None:
                    open_colour += 1
                    red += seen.colour == "red"
            colours = Counter(classify(g.image).colour for (c, _), g in zip(jobs, images, strict=True))
            print(
                json.dumps(
                    {
                        "config": config,
                        "images": len(images),
                        "images_per_s": round(len(images) / seconds, 2),
                        "faithfulness": round(matched / named, 3),
                        "red_share_open_colour": round(red / open_colour, 3),
                        "no_colour_read": colours[None],
                        "batch": args.batch,
                        "threads": torch.get_num_threads(),
                        "load_average": [round(x, 2) for x in os.getloadavg()],
                        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
