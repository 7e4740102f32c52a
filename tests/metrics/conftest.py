"""Metrics fixtures: populations stored from given pictures, a tiny random-weight CLIP saved to a folder."""

from __future__ import annotations

import hashlib
import io
import os
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image as PILImage

from generation import shapes
from generation.models import Generator, Image, Population, Prompt

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
