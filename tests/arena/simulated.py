"""A measured campaign for the simulated crowd: generators of known colour spread, so a judge's choice is known."""

from __future__ import annotations

from annotation.models import Campaign, Criterion
from metrics.services import measure_populations
from tests.factories import CampaignFactory, GeneratorFactory, PromptFactory
from tests.metrics.conftest import PALETTES, STUDY_COLOURS, drawn, store_pictures

# By discrepancy from uniform colour (lower is better): "wide" draws all four colours, "middle" two,
# "narrow" only red. The judge discrepancy:colour therefore prefers wide to middle to narrow.
BEST_FIRST = ["wide", "middle", "narrow"]


def measured_campaign(
    *,
    slug: str = "sim",
    prefix: str = "",
    prompts: int = 2,
    per_queue: int = 2,
    votes_per_pair: int = 3,
    quota: int | None = None,
    caption: str = "a shape",
) -> Campaign:
    """An open campaign with criteria diversity and quality, every population stored and measured."""
    campaign = CampaignFactory(
        slug=slug,
        population_size=4,
        votes_per_pair=votes_per_pair,
        participant_quota=quota,
        metrics_attributes={"colour": {"backend": "shapes", "classes": STUDY_COLOURS}},
    )
    Criterion.objects.create(campaign=campaign, key="diversity", question="Which set is more varied?", position=0)
    Criterion.objects.create(campaign=campaign, key="quality", question="Which set looks better?", position=1)
    generators = {name: GeneratorFactory(name=f"{prefix}{name}") for name in PALETTES}
    prompt_rows = [PromptFactory(caption=f"{prefix}{caption} {i}", category="open") for i in range(prompts)]
    campaign.generators.set(generators.values())
    campaign.prompts.set(prompt_rows)
    populations = [
        store_pictures(generator, prompt, [drawn(colour) for colour in PALETTES[name]])
        for name, generator in generators.items()
        for prompt in prompt_rows
        for _ in range(per_queue)
    ]
    measure_populations(population_ids=[p.pk for p in populations], attributes=campaign.attribute_specs())
    return campaign


def generator_kind(name: str) -> str:
    """The palette name of a generator made with a prefix."""
    return next(kind for kind in PALETTES if name.endswith(kind))
