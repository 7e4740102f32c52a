"""What a generator draws, measured from fresh samples with a campaign's attribute readers, intervals over draws.

No Django: callers hand in the captions, the attributes (metrics.config.AttributeSpec) and a function that reads
an attribute's class off images (a metrics backend's `labels`). Two callers: `train_generator`'s evaluation after
training (base and tuned on the captions the training held out, training.services) and the demo loop's
measurement (training.demo_loop).

A draw samples every caption once, each image from its own seed (`image_seed`): with one seed shared by all the
captions of a draw, the shapes model tends to pick the same colour for every caption, so the captions of a draw
are not independent samples and the interval was twice as wide for the same number of images. Every generator
compared is sampled on the same seeds. Per attribute:

- faithfulness: of the images whose caption names one of the attribute's classes, the share read as that
  class (`named_class`); the pooled faithfulness counts every named attribute of every image;
- shares: of the images whose caption leaves the attribute open (generation.prompting.names_attribute, the
  rule the metrics pages and the simulated crowd's judges use), the share read as each class.

Each figure is the mean over draws of that draw's share, with a 95% percentile bootstrap interval over draws.
A CLIP attribute's classes are phrases ("a woman") that a caption does not name word for word, so on real
models the attributes give shares, and the CLIP score (where a scorer is given) stands for faithfulness.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from generation import shapes
from generation.pipelines import PipelineSpec, generate
from generation.prompting import generation_prompt, names_attribute
from metrics.config import AttributeSpec

if TYPE_CHECKING:
    from PIL import Image

BOOTSTRAP = 2000
# The first draw of an evaluation: its image seeds (image_seed) lie far above those a campaign's sets are likely
# to have used for the same captions.
FIRST_DRAW = 10000
# A fall in faithfulness larger than this (5 points) is reported as a warning.
FAITHFULNESS_WARNING = 0.05

# Reads one attribute's class (or None) off each image.
Labeller = Callable[[AttributeSpec, Sequence["Image.Image"]], list[str | None]]
# The CLIP score of an image for the caption it was made for (None where the scorer cannot tell).
Scorer = Callable[["Image.Image", str], float | None]


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"

    def as_dict(self) -> dict[str, float]:
        return {"value": round(self.value, 4), "low": round(self.low, 4), "high": round(self.high, 4)}


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


def draws(count: int) -> list[int]:
    """The draws of an evaluation of `count` samples per caption."""
    return list(range(FIRST_DRAW, FIRST_DRAW + count))


@dataclass(frozen=True)
class Sample:
    caption: str
    draw: int
    image: Image.Image


def sample_images(
    pipe: Any,
    spec: PipelineSpec,
    captions: Sequence[str],
    draw_numbers: Sequence[int],
    *,
    template: str = "{prompt}",
    augment: Mapping[str, Sequence[str]] | None = None,
    batch: int = 16,
) -> list[Sample]:
    """Every caption once per draw, through the generator's template and augmentation, each from its own seed."""
    jobs = [(c, d, image_seed(d, i, len(captions))) for d in draw_numbers for i, c in enumerate(captions)]
    samples = []
    for start in range(0, len(jobs), batch):
        chunk = jobs[start : start + batch]
        prompts = [generation_prompt(c, template=template, augment=augment, seed=s) for c, _, s in chunk]
        images = generate(pipe, spec, prompts, [s for _, _, s in chunk])
        samples += [Sample(c, d, g.image) for (c, d, _), g in zip(chunk, images, strict=True)]
    return samples


def named_class(caption: str, spec: AttributeSpec) -> str | None:
    """The class of `spec` that `caption` asks for, or None. The shapes reader's captions follow a grammar
    (generation.shapes.parse_caption), which tells "a yellow triangle" (a colour) from "on a yellow background";
    otherwise a class is named when it is the only one `names_attribute` finds in the caption."""
    if spec.backend == "shapes":
        value = getattr(shapes.parse_caption(caption), spec.field or spec.name)
        return value if value in spec.classes else None
    named = [c for c in spec.classes if names_attribute(caption, spec.name, [c])]
    return named[0] if len(named) == 1 else None


@dataclass(frozen=True)
class Evaluation:
    """One generator's figures; see the module's docstring. `counts`: images read as each class where open."""

    images: int
    faithfulness: Estimate | None
    faithfulness_by_attribute: dict[str, Estimate]
    shares: dict[str, dict[str, Estimate]]
    counts: dict[str, dict[str, int]]
    clip_score: Estimate | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "faithfulness": self.faithfulness.as_dict() if self.faithfulness else None,
            "faithfulness_by_attribute": {k: v.as_dict() for k, v in self.faithfulness_by_attribute.items()},
            "shares": {a: {c: e.as_dict() for c, e in shares.items()} for a, shares in self.shares.items()},
            "counts": self.counts,
            "clip_score": self.clip_score.as_dict() if self.clip_score else None,
        }


def evaluate(
    samples: Sequence[Sample],
    attributes: Sequence[AttributeSpec],
    labels: Labeller,
    *,
    clip_score: Scorer | None = None,
) -> Evaluation:
    """Read every sample with every attribute and summarise per draw; see the module's docstring."""
    draw_numbers = sorted({s.draw for s in samples})
    hits: dict[str, dict[int, list[int]]] = {a.name: {d: [] for d in draw_numbers} for a in attributes}
    seen: dict[str, dict[int, list[str | None]]] = {a.name: {d: [] for d in draw_numbers} for a in attributes}
    counts: dict[str, dict[str, int]] = {}
    for spec in attributes:
        read = labels(spec, [s.image for s in samples])
        counts[spec.name] = {}
        for sample, value in zip(samples, read, strict=True):
            wanted = named_class(sample.caption, spec)
            if wanted is not None:
                hits[spec.name][sample.draw].append(int(value == wanted))
            elif not names_attribute(sample.caption, spec.name, spec.classes):
                seen[spec.name][sample.draw].append(value)
                counts[spec.name][str(value)] = counts[spec.name].get(str(value), 0) + 1
    by_attribute = {
        name: mean_interval(per_draw_shares(per_draw)) for name, per_draw in hits.items() if any(per_draw.values())
    }
    pooled = per_draw_shares({d: [h for a in hits.values() for h in a[d]] for d in draw_numbers})
    shares = {
        spec.name: {c: mean_interval(per_draw_shares(_is(seen[spec.name], c))) for c in spec.classes}
        for spec in attributes
        if any(seen[spec.name].values())
    }
    score = None
    if clip_score is not None:
        scores: dict[int, list[float]] = {d: [] for d in draw_numbers}
        for sample in samples:
            scored = clip_score(sample.image, sample.caption)
            if scored is not None:
                scores[sample.draw].append(scored)
        if any(scores.values()):
            score = mean_interval([sum(v) / len(v) for v in scores.values() if v])
    return Evaluation(
        images=len(samples),
        faithfulness=mean_interval(pooled) if pooled else None,
        faithfulness_by_attribute=by_attribute,
        shares=shares,
        counts=counts,
        clip_score=score,
    )


def _is(values: Mapping[int, Sequence[str | None]], wanted: str) -> dict[int, list[int]]:
    return {draw: [int(value == wanted) for value in read] for draw, read in values.items()}


def per_draw_shares(hits: Mapping[int, Sequence[int]]) -> list[float]:
    return [sum(v) / len(v) for v in hits.values() if v]


def faithfulness_drops(
    base: Evaluation, tuned: Evaluation, *, threshold: float = FAITHFULNESS_WARNING
) -> list[tuple[str, float, float]]:
    """(what, base, tuned) for each faithfulness, pooled and per attribute, that fell by more than `threshold`."""
    pairs: list[tuple[str, Estimate | None, Estimate | None]] = [
        ("faithfulness", base.faithfulness, tuned.faithfulness)
    ]
    pairs += [
        (f"{name} faithfulness", estimate, tuned.faithfulness_by_attribute.get(name))
        for name, estimate in base.faithfulness_by_attribute.items()
    ]
    return [
        (what, before.value, after.value)
        for what, before, after in pairs
        if before is not None and after is not None and before.value - after.value > threshold
    ]
