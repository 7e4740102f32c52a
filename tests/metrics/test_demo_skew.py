"""End to end on the demo's own models: the worker generates, the hook measures, the aggregate shows the skew."""

from __future__ import annotations

from pathlib import Path

import pytest

from generation.models import Demand, Population
from generation.offline import DEMO_GENERATORS
from generation.services import sync_generator
from generation.worker import GenerationWorker
from metrics.selectors import Member, aggregate
from tests.factories import CampaignFactory, PromptFactory

pytestmark = pytest.mark.django_db

OPEN_COLOUR = ("a circle", "a square", "a triangle", "a shape")
N = 12
# What the shipped demo shows: base's red share on open-colour prompts with the demo's own sampler
# (generation.offline.SHAPES_SAMPLER, 8 DPM-Solver++ steps), read by the shapes backend. Measured with
# `bench/demo_sampler.py --seeds 48 --configs dpmpp:8,euler:20` (BENCHMARKS.md, "What the shipped demo
# shows"): 0.690 on 384 images (95% interval 0.64-0.74); the 20-step training sampler reads 0.697 on
# the same seeds, so the sampler is not what moves it. Trained: 0.7 red plus a uniform 1/8 of the rest.
SHIPPED_RED = 0.69


@pytest.fixture(autouse=True)
def _offline(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _fixed_seeds(monkeypatch):  # type: ignore[no-untyped-def]
    # Populations draw their seeds from the OS; fixed here so a run is reproducible. With the OS's seeds
    # the red share of 48 images varied more than a binomial draw would (2 of 5 runs read under 0.55).
    import random

    rng = random.Random(20261202)
    monkeypatch.setattr("generation.services._new_seeds", lambda size: [rng.randrange(2**31) for _ in range(size)])


def test_shapes_backend_measures_base_red_near_its_trained_skew_and_diverse_prompting_near_uniform(
    tmp_path: Path,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    # Given the demo's base and diverse-prompting generators on four prompts that leave the colour open,
    # in a campaign that measures colour with the shapes backend,
    specs = {s.name: s for s in DEMO_GENERATORS}
    generators = [sync_generator(spec=specs[name])[0] for name in ("base", "diverse-prompting")]
    prompts = [PromptFactory(caption=caption, category="open colour") for caption in OPEN_COLOUR]
    from generation.shapes import COLOURS

    campaign = CampaignFactory(
        population_size=N, metrics_attributes={"colour": {"backend": "shapes", "classes": list(COLOURS)}}
    )
    campaign.generators.set(generators)
    campaign.prompts.set(prompts)
    for generator in generators:
        for prompt in prompts:
            Demand.objects.create(
                owner="campaign:skew", generator=generator, prompt=prompt, size=N, low_watermark=1, high_watermark=1
            )
    # when the worker fills the queues (the hook measures each population as it is stored),
    with django_capture_on_commit_callbacks(execute=True):
        GenerationWorker(device="cpu", cache_dir=tmp_path, idle_sleep_s=0, max_batch=24).run(once=True)
    members = [
        Member(p.pk, p.generator.name, p.prompt_id, p.size, p.prompt.caption)
        for p in Population.objects.filter(status="ready").select_related("generator", "prompt")
    ]
    rows = aggregate(members, campaign.attribute_specs())

    # then base reads red near what the shipped demo shows. On 48 images the binomial sd is 0.067, so
    # 0.15 is 2.2 sd: a change of seeds or of numerics that redraws the pictures fails about 3 times in
    # 100, while a reader or model that lost the skew (uniform reads 0.125) always fails. These fixed
    # seeds read 0.60 (29 of 48), 1.3 sd under the 384-image figure; the 0.61 once quoted for the
    # shipped sampler was 12 seeds' worth (96 images), as low by chance.
    base, diverse = rows["base"]["attributes"]["colour"], rows["diverse-prompting"]["attributes"]["colour"]
    assert rows["base"]["populations"] == 4
    assert base["counted"] >= 46
    assert base["shares"]["red"] == pytest.approx(SHIPPED_RED, abs=0.15)
    # and diverse-prompting near uniform: no colour far above 1/8 (sd 0.048 on 48), and a small discrepancy
    # (about 0.13 expected from sampling alone on 8 classes), far below base's.
    assert max(diverse["shares"].values()) <= 0.125 + 0.15
    assert diverse["distinct"] >= 6
    assert diverse["discrepancy"] < 0.3 < 0.45 < base["discrepancy"]
    assert base["discrepancy_ci"][0] < base["discrepancy"] < base["discrepancy_ci"][1] + 1e-9
