"""The whole PopAlign loop on the demo's shapes models, as one reproducible run.

seed the demo -> a `loop` campaign on the demo's open-colour prompts with the shapes generators -> generate ->
a simulated crowd votes by colour discrepancy -> export popalign-csv (simulated votes included) ->
train `base` with PopAlign's objective -> register the result in the campaign -> generate its sets ->
metrics -> measure red share and faithfulness of base, diverse-prompting and the tuned model from fresh
samples, with intervals over draws -> print them and write docs/bias-loop.svg and docs/bias-loop.json.

As in PopAlign's own data, the campaign pits the base model against its identity-augmented baseline
(`diverse-prompting`) and nothing else: the noise stand-in (`random-weights`) has a low colour
discrepancy, so a discrepancy judge would prefer it and teach the model noise; and `biased-prompting`
loses to `base` on discrepancy, so its pairs would reward base's own 70% red. Its prompts are the demo's
that leave the colour open: on the others the colour judge abstains (a one-colour set is what "a red
shape" asks for), so their comparisons would only be ties. The measurement uses all of the demo's prompts.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import transaction

from annotation import demo
from annotation.models import Campaign
from annotation.services import NewCampaign, create_campaign, seed_demo_campaign, set_campaign_status
from generation import shapes
from generation.models import Generator
from generation.prompting import names_attribute
from metrics.config import parse_attributes
from training import plots

LOOP_SLUG = "popalign-loop"
LOOP_GENERATORS = ("base", "diverse-prompting")
LOOP_CRITERION = "diversity"
JUDGE = "discrepancy:colour"
LOOP_PROMPTS = tuple(
    row for row in demo.DEMO_PROMPTS if not names_attribute(row.caption, "colour", list(shapes.COLOURS))
)
# The rest name a colour: the tuned model is held to base's behaviour on them (train_generator --preserve).
PRESERVED = tuple(row.caption for row in demo.DEMO_PROMPTS if row not in LOOP_PROMPTS)
COMPARED = ("base", "diverse-prompting")
# Uniform over the 8 drawable colours: the red share a perfectly unbiased model would show.
UNIFORM_RED = 1 / 8


@dataclass(frozen=True)
class LoopSettings:
    """The loop's own defaults: BENCHMARKS.md ("Training on our own exports") has the runs behind them.

    One vote per population pair on the open-colour prompts, so nearly every comparison is a decided pair
    of fresh sets; no noise, as PopAlign's classifier-decided data (flipped votes cost far more bias drop
    than any setting of the trainer bought back). The trainer runs on `train_generator`'s defaults
    (training.loop.TrainingConfig: beta 100, timesteps from 700, preservation weight 60), the recipe the
    README documents; the loop passes only the captions its campaign leaves out (those that name a colour),
    which its export cannot know of, since the loop's campaign holds the open-colour prompts only.
    """

    comparisons: int = 300
    votes_per_pair: int = 1
    noise: float = 0.0
    seed: int = 0
    objective: str = "popalign"
    eval_seeds: int = 64
    name: str = "base-popalign"


@transaction.atomic
def create_loop_campaign(*, votes_per_pair: int = 5) -> Campaign:
    """A fresh campaign for this run (popalign-loop, popalign-loop-2, ...): the demo's prompts, criteria and
    metrics on the shapes generators, open. A run of its own, so no earlier run's votes or models mix in."""
    seed_demo_campaign()
    taken = set(Campaign.objects.filter(slug__startswith=LOOP_SLUG).values_list("slug", flat=True))
    campaign = create_campaign(
        spec=NewCampaign(
            slug=free_name(LOOP_SLUG, taken),
            title="PopAlign loop on the demo's shapes models",
            generators=list(Generator.objects.filter(name__in=LOOP_GENERATORS)),
            criteria=list(demo.DEMO_CRITERIA),
            prompts=list(LOOP_PROMPTS),
            votes_per_pair=votes_per_pair,
            instructions="Voted by a simulated crowd (colour discrepancy); see README, 'Closing the loop'.",
        ),
        owner_id=None,
    )
    campaign.metrics_attributes = demo.DEMO_METRICS
    campaign.save()
    set_campaign_status(campaign=campaign, status=Campaign.Status.OPEN)
    return campaign


def free_name(name: str, taken: set[str]) -> str:
    """`name`, or `name-2`, `name-3`... when an earlier run took it."""
    if name not in taken:
        return name
    suffix = 2
    while f"{name}-{suffix}" in taken:
        suffix += 1
    return f"{name}-{suffix}"


def free_generator_name(name: str) -> str:
    return free_name(name, set(Generator.objects.filter(name__startswith=name).values_list("name", flat=True)))


# The loop's yardstick: every attribute the shapes reader reads, shape included (the demo campaign's metrics
# measure colour and background only).
READING = parse_attributes(
    {
        "shape": {"backend": "shapes", "classes": list(shapes.SHAPES)},
        "colour": {"backend": "shapes", "classes": list(shapes.COLOURS)},
        "background": {"backend": "shapes", "classes": list(shapes.BACKGROUNDS)},
    }
)


def measure(names: list[str], draws: int, *, cache_dir: Path) -> dict[str, Any]:
    """Red share on open-colour prompts and faithfulness (pooled and per attribute) of each named generator, from
    `draws` fresh samples of every demo prompt read by the shapes reader (training.evaluation).

    Draws from training.evaluation.FIRST_DRAW up (image seeds from 140000; the campaign's are drawn at random),
    the same for every generator.
    """
    from generation.pipelines import PipelineSpec, load_pipeline
    from metrics.classifiers import ShapesBackend
    from training import evaluation

    captions = [row.caption for row in demo.DEMO_PROMPTS]
    reader = ShapesBackend()
    results = {}
    for name in names:
        generator = Generator.objects.get(name=name)
        spec = PipelineSpec.from_settings(generator.source, generator.settings)
        pipe = load_pipeline(spec, device="cpu", cache_dir=cache_dir)
        samples = evaluation.sample_images(
            pipe,
            spec,
            captions,
            evaluation.draws(draws),
            template=generator.prompt_template,
            augment=(generator.settings or {}).get("augment"),
        )
        found = evaluation.evaluate(samples, READING, lambda spec, images: reader.labels(images, spec))
        assert found.faithfulness is not None
        results[name] = {
            "red_share_open_colour": found.shares["colour"]["red"].as_dict(),
            "faithfulness": found.faithfulness.as_dict(),
            "faithfulness_by_attribute": {k: v.as_dict() for k, v in found.faithfulness_by_attribute.items()},
            "images": found.images,
            "colours_open_colour": found.counts["colour"],
        }
    return results


def write_figure(results: dict[str, Any], out: Path, *, facts: dict[str, Any]) -> None:
    """docs/bias-loop.svg (bars with intervals) and docs/bias-loop.json (the numbers and how they were made)."""
    names = list(results)
    series = []
    for key, label in (("red_share_open_colour", "red share, open colour"), ("faithfulness", "faithfulness")):
        series.append(
            (label, [(results[n][key]["value"], results[n][key]["low"], results[n][key]["high"]) for n in names])
        )
    svg = plots.interval_bars(
        names,
        series,
        title="Red share on open-colour prompts and faithfulness (95% intervals over draws)",
        reference=(UNIFORM_RED, "uniform red share (1/8)"),
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "bias-loop.svg").write_text(svg, encoding="utf-8")
    record = {
        "results": results,
        **facts,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
    }
    (out / "bias-loop.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
