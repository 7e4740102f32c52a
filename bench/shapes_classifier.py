"""Benchmark: how right `generation.shapes.classify` is on pictures like the trained model's, per attribute.

Target (issue 14): at least 98% on colour on drawn examples degraded as the model's outputs are
(known labels); shape and background stated beside it. Also reported: how often the reading agrees
with what a fully specified prompt names on the committed `builtin:shapes` model's own outputs (that
figure mixes the model's mistakes with the classifier's), the red share it reads on open-colour
prompts, and its speed.
Run: .venv/bin/python bench/shapes_classifier.py [--examples 2000] [--seed 1] [--generated 96]
The thresholds were set on seed 0, so the default seed 1 is held out.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generation import shapes  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--generated", type=int, default=96, help="generated images per check (0 skips the model)")
    args = parser.parse_args()

    examples = shapes.draw_degraded_examples(args.seed, args.examples)
    started = time.perf_counter()
    readings = [shapes.classify(image) for image, _ in examples]
    elapsed = time.perf_counter() - started
    right: Counter[str] = Counter()
    confusions: Counter[str] = Counter()
    for (_, truth), read in zip(examples, readings, strict=True):
        for field in shapes.Attributes._fields:
            if getattr(read, field) == getattr(truth, field):
                right[field] += 1
            else:
                confusions[f"{field}: {getattr(truth, field)} read as {getattr(read, field)}"] += 1
    report: dict[str, object] = {
        "degraded_examples": args.examples,
        "seed": args.seed,
        "accuracy": {field: round(right[field] / args.examples, 4) for field in shapes.Attributes._fields},
        "colour_target": 0.98,
        "met": right["colour"] / args.examples >= 0.98,
        "commonest_errors": dict(confusions.most_common(6)),
        "images_per_s": round(args.examples / elapsed, 1),
    }
    if args.generated:
        report.update(_on_generated(args.generated))
    print(json.dumps(report, indent=2))


def _on_generated(n: int) -> dict[str, object]:
    import huggingface_hub.constants
    import torch
    from diffusers import DiffusionPipeline

    from generation.shapes_model import DEFAULT_OUT, generate

    os.environ["HF_HUB_OFFLINE"] = "1"
    huggingface_hub.constants.HF_HUB_OFFLINE = True
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    pipe = DiffusionPipeline.from_pretrained(str(DEFAULT_OUT))
    pipe.set_progress_bar_config(disable=True)
    rng = random.Random(12)
    named = [shapes.make_caption(shapes.draw_attributes(rng)[0]) for _ in range(n)]
    images = [im for i in range(0, n, 32) for im in generate(pipe, named[i : i + 32], range(i, min(n, i + 32)))]
    agree: Counter[str] = Counter()
    for caption, image in zip(named, images, strict=True):
        said, read = shapes.parse_caption(caption), shapes.classify(image)
        for field in shapes.Attributes._fields:
            agree[field] += getattr(said, field) == getattr(read, field)
    open_colour = ["a circle", "a square on a blue background", "a triangle", "a shape on a green background"]
    prompts = [open_colour[i % len(open_colour)] for i in range(n)]
    images = [
        im
        for i in range(0, n, 32)
        for im in generate(pipe, prompts[i : i + 32], range(1000 + i, 1000 + min(n, i + 32)))
    ]
    colours = Counter(shapes.classify(image).colour for image in images)
    return {
        "generated_fully_specified": n,
        "agrees_with_prompt": {field: round(agree[field] / n, 3) for field in shapes.Attributes._fields},
        "generated_open_colour": n,
        "open_colour_red_share": round(colours["red"] / n, 3),
        "open_colour_read": dict(colours.most_common()),
    }


if __name__ == "__main__":
    main()
