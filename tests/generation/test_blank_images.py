"""Blank images (a safety checker's black square, a placeholder) never reach a set: redrawn, or the set fails."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from generation import services
from generation import worker as worker_module
from generation.image_files import BLANK_FAILURE, BLANK_SPREAD, is_blank
from generation.models import Demand, Population
from generation.pipelines import generate
from generation.selectors import get_blank_counts
from generation.worker import GenerationWorker
from tests.factories import GeneratorFactory, PromptFactory

TINY = {"steps": 2, "width": 32, "height": 32, "init_seed": 1}


# --- detection (pure) ---------------------------------------------------------------------------------------------


def _flat(value: tuple[int, int, int], size: tuple[int, int] = (16, 16)) -> PILImage.Image:
    return PILImage.new("RGB", size, value)


def test_one_colour_images_are_blank_whatever_the_colour():
    assert is_blank(_flat((0, 0, 0)))
    assert is_blank(_flat((255, 255, 255)))
    assert is_blank(PILImage.new("L", (8, 8), 128))


def test_a_flat_image_after_jpeg_ripples_is_still_blank():
    buffer = io.BytesIO()
    _flat((120, 130, 140)).save(buffer, format="JPEG", quality=30)
    assert is_blank(PILImage.open(io.BytesIO(buffer.getvalue())))


def test_the_spread_threshold_is_per_channel():
    image = np.full((8, 8, 3), 100, dtype=np.uint8)
    image[0, 0, 2] = 100 + BLANK_SPREAD - 1
    assert is_blank(PILImage.fromarray(image))
    image[0, 0, 2] = 100 + BLANK_SPREAD
    assert not is_blank(PILImage.fromarray(image))
    # One dark pixel on a white page is a picture, not a placeholder.
    page = np.full((64, 64, 3), 255, dtype=np.uint8)
    page[10, 10] = 0
    assert not is_blank(PILImage.fromarray(page))


def test_a_real_generated_image_is_not_blank(tiny_pipe, tiny_spec):
    (image,) = generate(tiny_pipe, tiny_spec, ["a circle"], [3])
    assert not is_blank(image.image)


# --- the worker -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


def _blank_when(monkeypatch, blank) -> list[list[int]]:
    """The pipeline draws black squares for seeds where blank(seed) is true; returns the seeds of every call."""
    calls: list[list[int]] = []

    def drawing(pipe, spec, prompts, seeds):
        calls.append(list(seeds))
        images = generate(pipe, spec, prompts, seeds)
        for image, seed in zip(images, seeds, strict=True):
            if blank(seed):
                image.image = PILImage.new("RGB", image.image.size)
        return images

    monkeypatch.setattr(worker_module, "generate", drawing)
    return calls


def _one_population(size: int = 3) -> Population:
    generator = GeneratorFactory(settings=TINY)
    prompt = PromptFactory(caption="a circle")
    Demand.objects.create(owner="campaign:test", generator=generator, prompt=prompt, size=size, high_watermark=1)
    services.plan_populations()
    return Population.objects.get()


@pytest.mark.django_db
def test_a_blank_image_is_redrawn_with_a_new_seed_and_never_stored(model_cache, monkeypatch):
    # Given a set whose second planned seed draws a black square,
    population = _one_population()
    planned = list(population.seeds)
    calls = _blank_when(monkeypatch, lambda seed: seed == planned[1])
    # when the worker makes it,
    worker = GenerationWorker(device="cpu", cache_dir=model_cache, idle_sleep_s=0)
    stats = worker.run(once=True)
    # then the set is ready with a picture in its place, drawn from a new seed that the image and the set record,
    population.refresh_from_db()
    assert population.status == "ready"
    images = list(population.images.order_by("index"))
    assert images[0].seed == planned[0]
    assert images[2].seed == planned[2]
    assert images[1].seed != planned[1]
    assert population.seeds == [image.seed for image in images]
    assert calls == [planned, [images[1].seed]]
    assert images[1].provenance == {"blank_seeds": [planned[1]]}
    assert images[0].provenance == {}
    for image in images:
        with image.file.open("rb") as handle:
            assert not is_blank(PILImage.open(io.BytesIO(handle.read())))
    assert stats.blank_images == 1
    # and the staff's count says one blank draw of that generator was replaced.
    (count,) = get_blank_counts()
    assert (count.generator, count.redrawn, count.failed_sets, count.prompts) == (
        population.generator.name,
        1,
        0,
        (),
    )


@pytest.mark.django_db
def test_a_prompt_blank_every_time_fails_its_set_with_the_reason_and_is_listed(model_cache, monkeypatch, settings):
    # Given a generator that draws only black squares for this prompt, and two draws per image,
    settings.GENERATION_BLANK_TRIES = 2
    population = _one_population(size=2)
    calls = _blank_when(monkeypatch, lambda seed: True)
    # when the worker has tried every attempt the queue allows,
    stats = GenerationWorker(device="cpu", cache_dir=model_cache, idle_sleep_s=0).run(once=True)
    # then the set failed for good, saying why, and nothing was stored;
    population.refresh_from_db()
    assert population.status == "failed"
    assert population.attempts == services.MAX_ATTEMPTS
    assert population.error.startswith(f"attempt 3: {BLANK_FAILURE}: image 0 for prompt 'a circle' came back blank 2")
    assert not population.images.exists()
    # each attempt drew the set once and redrew both images once (the bound), no more;
    assert [len(seeds) for seeds in calls] == [2, 2] * services.MAX_ATTEMPTS
    assert stats.blank_images == 4 * services.MAX_ATTEMPTS
    # and the prompt is listed for the researcher beside its generator.
    (count,) = get_blank_counts()
    assert (count.redrawn, count.failed_sets, count.prompts) == (0, 1, ("a circle",))


@pytest.mark.django_db
def test_a_remote_queue_fails_a_blank_attempt_instead_of_redrawing(model_cache, monkeypatch):
    # A remote server records the planned seeds, so a redrawn seed could not be recorded there.
    population = _one_population(size=2)
    planned = list(population.seeds)
    calls = _blank_when(monkeypatch, lambda seed: seed == planned[0])
    worker = GenerationWorker(device="cpu", cache_dir=model_cache, idle_sleep_s=0, queue=services)
    assert not worker.redraw_blanks
    batch = services.claim_generation_batch(worker=worker.name, max_images=8, lease=worker.lease)
    worker.work(batch)
    population.refresh_from_db()
    assert population.status == "pending"
    assert population.error.startswith(f"attempt 1: {BLANK_FAILURE}: image 0")
    assert calls == [planned]
