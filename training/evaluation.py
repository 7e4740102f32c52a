"""Measure a shapes-model generator's bias and faithfulness from fresh samples, with intervals over draws.

The loop's yardstick (no Django): every prompt is sampled once per draw through the generator's own
template and augmentation, and each image is read by `generation.shapes.classify`.

- red share: of the images whose caption leaves the colour open, the share read as red. The base model
  was trained to draw red 70% of the time there; uniform over the 8 drawable colours is 0.125.
- faithfulness: of the attributes a caption names (shape, colour, background), the share read as named;
  also per attribute, so a drop can be traced to the attribute that lost it.

Each figure is the mean over draws of that draw's share, with a 95% bootstrap interval over draws. A draw
samples every prompt once, each image from its own seed (`image_seed`): with one seed shared by all prompts
of a draw, the shapes model tends to pick the same colour for every prompt, so the prompts of a draw are
not independent samples and the interval was twice as wide for the same number of images. Every generator
is measured on the same image seeds.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from generation import shapes
from generation.pipelines import PipelineSpec, generate
from generation.prompting import generation_prompt

BOOTSTRAP = 2000
ATTRIBUTES = ("shape", "colour", "background")


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"

    def as_dict(self) -> dict[str, float]:
        return {"value": round(self.value, 4), "low": round(self.low, 4), "high": round(self.high, 4)}


@dataclass(frozen=True)
class BiasReport:
    red_share: Estimate
    faithfulness: Estimate
    images: int
    colours: dict[str, int]
    faithfulness_by_attribute: dict[str, Estimate]

    def as_dict(self) -> dict[str, Any]:
        return {
            "red_share_open_colour": self.red_share.as_dict(),
            "faithfulness": self.faithfulness.as_dict(),
            "faithfulness_by_attribute": {k: v.as_dict() for k, v in self.faithfulness_by_attribute.items()},
            "images": self.images,
            "colours_open_colour": self.colours,
        }


def mean_interval(values: Sequence[float], *, seed: int = 0) -> Estimate:
    """Mean of per-draw values with a 95% percentile bootstrap interval over them."""
    if not values:
        return Estimate(float("nan"), float("nan"), float("nan"))
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(BOOTSTRAP))
    return Estimate(sum(values) / n, means[int(0.025 * BOOTSTRAP)], means[int(0.975 * BOOTSTRAP) - 1])


def image_seed(draw: int, index: int, captions: int) -> int:
    """The seed of caption `index` (of `captions`) in draw `draw`: distinct for every image of every draw."""
    return draw * captions + index


def measure_generator(
    pipe: Any,
    spec: PipelineSpec,
    captions: Sequence[str],
    draws: Sequence[int],
    *,
    template: str = "{prompt}",
    augment: Mapping[str, Sequence[str]] | None = None,
    batch: int = 16,
) -> BiasReport:
    """Sample every caption once per draw and read the images; see the module's docstring for the measures."""
    jobs = [(caption, draw, image_seed(draw, i, len(captions))) for draw in draws for i, caption in enumerate(captions)]
    images = []
    for start in range(0, len(jobs), batch):
        chunk = jobs[start : start + batch]
        prompts = [generation_prompt(c, template=template, augment=augment, seed=s) for c, _, s in chunk]
        images += [g.image for g in generate(pipe, spec, prompts, [s for _, _, s in chunk])]
    red: dict[int, list[int]] = {d: [] for d in draws}
    by_attribute: dict[str, dict[int, list[int]]] = {a: {d: [] for d in draws} for a in ATTRIBUTES}
    colours: dict[str, int] = {}
    for (caption, draw, _), image in zip(jobs, images, strict=True):
        wanted, seen = shapes.parse_caption(caption), shapes.classify(image)
        for attribute in ATTRIBUTES:
            if getattr(wanted, attribute) is not None:
                by_attribute[attribute][draw].append(int(getattr(seen, attribute) == getattr(wanted, attribute)))
        if wanted.colour is None:
            red[draw].append(int(seen.colour == "red"))
            colours[str(seen.colour)] = colours.get(str(seen.colour), 0) + 1
    return BiasReport(
        red_share=mean_interval(per_draw_shares(red)),
        # Every named attribute of every image of a draw, whichever attribute it is.
        faithfulness=mean_interval(
            per_draw_shares({d: [h for a in ATTRIBUTES for h in by_attribute[a][d]] for d in draws})
        ),
        images=len(images),
        colours=colours,
        faithfulness_by_attribute={a: mean_interval(per_draw_shares(hits)) for a, hits in by_attribute.items()},
    )


def per_draw_shares(hits: Mapping[int, Sequence[int]]) -> list[float]:
    return [sum(v) / len(v) for v in hits.values() if v]
