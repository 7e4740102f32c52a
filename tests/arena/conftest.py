"""A ready-to-vote campaign: generators, prompts, and ready populations with real PNG files."""

from __future__ import annotations

import hashlib
import io
import secrets

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image as PILImage

from annotation.models import Campaign, Criterion
from generation.models import Image, Population
from tests.factories import CampaignFactory, GeneratorFactory, PromptFactory


def png(colour: tuple[int, int, int], size: int = 32) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def ready_population(generator, prompt, size: int) -> Population:
    population = Population.objects.create(
        generator=generator, prompt=prompt, size=size, seeds=list(range(size)), status="ready", ready_at=timezone.now()
    )
    for index in range(size):
        data = png((generator.pk * 40 % 256, index * 20 % 256, 128))
        image = Image(
            population=population,
            index=index,
            seed=index,
            generation_prompt=prompt.caption,
            width=32,
            height=32,
            sha256=hashlib.sha256(data).hexdigest(),
            byte_size=len(data),
        )
        image.file.save(f"{secrets.token_hex(16)}.png", ContentFile(data), save=False)
        image.save()
    return population


@pytest.fixture
def arena_campaign(db):
    """Build a campaign; call it with keyword arguments to change its shape."""

    def build(
        *,
        generators: int = 2,
        prompts: int = 1,
        size: int = 6,
        per_queue: int = 2,
        votes_per_pair: int = 3,
        caption=None,
    ) -> Campaign:
        campaign = CampaignFactory(population_size=size, votes_per_pair=votes_per_pair, slug="study", title="A study")
        Criterion.objects.create(campaign=campaign, key="diversity", question="Which set is more diverse?", position=0)
        Criterion.objects.create(campaign=campaign, key="quality", question="Which set looks better?", position=1)
        gens = [GeneratorFactory(name=f"secret-generator-{i}", display_name=f"Model {i}") for i in range(generators)]
        prompt_rows = [PromptFactory(caption=caption or f"a circle {i}") for i in range(prompts)]
        campaign.generators.set(gens)
        campaign.prompts.set(prompt_rows)
        for generator in gens:
            for prompt in prompt_rows:
                for _ in range(per_queue):
                    ready_population(generator, prompt, size)
        return campaign

    return build
