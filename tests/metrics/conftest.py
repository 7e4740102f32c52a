"""Metrics fixtures: populations stored from given pictures, a tiny random-weight CLIP saved to a folder."""

from __future__ import annotations

import hashlib
import io
import os
import secrets
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image as PILImage

from annotation.models import Criterion
from arena.models import Comparison, Vote
from generation import shapes
from generation.models import Generator, Image, Population, Prompt
from metrics.services import measure_populations
from tests.factories import CampaignFactory, GeneratorFactory, ParticipantFactory, PromptFactory

os.environ["HF_HUB_OFFLINE"] = "1"


def store_pictures(generator: Generator, prompt: Prompt, pictures: Sequence[PILImage.Image]) -> Population:
    """A ready population whose images are exactly `pictures`, stored as PNG files like the worker's."""
    population = Population.objects.create(
        generator=generator,
        prompt=prompt,
        size=len(pictures),
        seeds=list(range(len(pictures))),
        status="ready",
        ready_at=timezone.now(),
    )
    for index, picture in enumerate(pictures):
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        data = buffer.getvalue()
        image = Image(
            population=population,
            index=index,
            seed=index,
            generation_prompt=prompt.caption,
            width=picture.width,
            height=picture.height,
            sha256=hashlib.sha256(data).hexdigest(),
        )
        image.file.save(f"{secrets.token_hex(16)}.png", ContentFile(data), save=False)
        image.save()
    return population


def drawn(colour: str, background: str = "grey", shape: str = "circle", half_size: int = 8) -> PILImage.Image:
    return shapes.render(shapes.Attributes(shape, colour, background), centre=(16, 16), half_size=half_size)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    import huggingface_hub.constants

    from metrics.classifiers import build_tiny_clip, forget_backends

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        yield build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))
    forget_backends()


# --- a measured study: three generators of known colour spread on four prompts ----------------------------

STUDY_COLOURS = ["red", "green", "blue", "yellow"]
# Three generators on three prompts: one draws every shape red, one red or green, one all four colours.
PALETTES = {"narrow": ["red"] * 4, "middle": ["red", "red", "green", "green"], "wide": STUDY_COLOURS}


@pytest.fixture
def study(db):  # type: ignore[no-untyped-def]
    campaign = CampaignFactory(
        slug="study",
        population_size=4,
        metrics_attributes={"colour": {"backend": "shapes", "classes": STUDY_COLOURS}},
    )
    Criterion.objects.create(campaign=campaign, key="diversity", question="Which set is more varied?", position=0)
    prompts = [PromptFactory(caption=c, category="open") for c in ("a circle", "a square", "a shape")]
    prompts.append(PromptFactory(caption="a red circle", category="named"))
    generators = {name: GeneratorFactory(name=name) for name in PALETTES}
    campaign.generators.set(generators.values())
    campaign.prompts.set(prompts)
    populations = {
        (name, prompt.pk): store_pictures(generators[name], prompt, [drawn(c) for c in palette])
        for name, palette in PALETTES.items()
        for prompt in prompts
    }
    measure_populations(population_ids=[p.pk for p in populations.values()], attributes=campaign.attribute_specs())
    return campaign, prompts, populations


def vote(campaign, prompt, left, right, choice: str) -> None:  # type: ignore[no-untyped-def]
    comparison = Comparison.objects.create(
        campaign=campaign,
        participant=ParticipantFactory(),
        prompt=prompt,
        left_population=left,
        right_population=right,
        lease_until=timezone.now() + timedelta(minutes=5),
        status="voted",
        voted_at=timezone.now(),
    )
    Vote.objects.create(comparison=comparison, criterion=campaign.criteria.get(), choice=choice, dwell_ms=3000)
