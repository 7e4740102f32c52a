"""The generation worker with real tiny diffusers pipelines on the CPU."""

from __future__ import annotations

import hashlib
import io
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.utils import timezone
from PIL import Image as PILImage

from generation import services
from generation.models import Demand, Image, Population
from generation.pipelines import PipelineSpec, generate, load_pipeline
from generation.worker import GenerationWorker
from tests.factories import GeneratorFactory, PromptFactory

pytestmark = pytest.mark.django_db

TINY = {"steps": 2, "width": 32, "height": 32, "init_seed": 1}


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def make_worker(model_cache: Path, **kwargs) -> GenerationWorker:
    return GenerationWorker(device="cpu", cache_dir=model_cache, idle_sleep_s=0, **kwargs)


def want(generator, prompt, *, size=4, high=2, owner="campaign:test") -> Demand:
    return Demand.objects.create(
        owner=owner, generator=generator, prompt=prompt, size=size, low_watermark=1, high_watermark=high
    )


def pixels(image: Image) -> np.ndarray:
    with image.file.open("rb") as handle:
        return np.asarray(PILImage.open(io.BytesIO(handle.read())).convert("RGB"), dtype=np.int16)


def test_once_fills_every_queue_with_complete_populations_of_distinct_valid_images(model_cache):
    # Given two generators wanted for one prompt,
    prompt = PromptFactory(caption="a circle")
    for settings in (TINY, {**TINY, "width": 48, "height": 40, "init_seed": 2}):
        want(GeneratorFactory(settings=settings), prompt)
    # when the worker fills the queues once,
    stats = make_worker(model_cache).run(once=True)
    # then each queue holds two ready populations of four distinct images of the configured size.
    assert Population.objects.filter(status="ready").count() == 4
    assert not Population.objects.exclude(status="ready").exists()
    assert stats.images == 16
    for population in Population.objects.select_related("generator"):
        images = list(population.images.order_by("index"))
        assert [i.index for i in images] == [0, 1, 2, 3]
        assert [i.seed for i in images] == population.seeds
        width, height = population.generator.settings["width"], population.generator.settings["height"]
        hashes = set()
        for image in images:
            with image.file.open("rb") as handle:
                data = handle.read()
            assert hashlib.sha256(data).hexdigest() == image.sha256
            decoded = PILImage.open(io.BytesIO(data))
            assert decoded.size == (width, height) == (image.width, image.height)
            assert image.generation_prompt == "a circle"
            hashes.add(image.sha256)
        assert len(hashes) == 4, "every seed gives a different image"
    # and a second run finds the queues full and makes nothing.
    assert make_worker(model_cache).run(once=True).images == 0


def test_one_image_regenerated_from_its_recorded_seed_and_prompt_has_the_same_pixels(model_cache):
    generator = GeneratorFactory(settings=TINY, prompt_template="a picture of {prompt}")
    want(generator, PromptFactory(caption="a square"), high=1)
    make_worker(model_cache).run(once=True)
    image = Image.objects.order_by("index").last()
    assert image.generation_prompt == "a picture of a square"
    spec = PipelineSpec.from_settings(generator.source, generator.settings)
    pipe = load_pipeline(spec, device="cpu", cache_dir=model_cache)
    again = generate(pipe, spec, [image.generation_prompt], [image.seed])[0].image
    difference = np.abs(np.asarray(again.convert("RGB"), dtype=np.int16) - pixels(image))
    assert difference.max() <= 1  # batched vs alone: equal up to float rounding (research notes)


def test_augmented_generator_records_the_prompt_each_image_was_made_from(model_cache):
    generator = GeneratorFactory(settings={**TINY, "augment": {"colour": ["red", "blue", "green"]}})
    want(generator, PromptFactory(caption="a circle"), size=8, high=1)
    make_worker(model_cache).run(once=True)
    prompts = set(Image.objects.values_list("generation_prompt", flat=True))
    assert prompts <= {"a red circle", "a blue circle", "a green circle"}
    assert len(prompts) >= 2


def test_bad_generators_fail_their_own_work_with_a_reason_and_the_good_one_is_served(model_cache, tmp_path):
    prompt = PromptFactory()
    good = GeneratorFactory(name="good", settings=TINY)
    broken = {
        "unknown-hub-id": GeneratorFactory(name="unknown-hub-id", source="nobody/no-such-model", settings={}),
        "not-a-pipeline": GeneratorFactory(name="not-a-pipeline", source=str(tmp_path), settings={}),
        "bad-settings": GeneratorFactory(name="bad-settings", settings={**TINY, "steps": 0}),
        "unknown-setting": GeneratorFactory(name="unknown-setting", settings={**TINY, "stepz": 3}),
    }
    for generator in [good, *broken.values()]:
        want(generator, prompt, high=1)
    make_worker(model_cache).run(once=True)
    assert Population.objects.get(generator=good).status == "ready"
    reasons = {p.generator.name: p.error for p in Population.objects.filter(status="failed")}
    assert set(reasons) == set(broken)
    assert "nobody/no-such-model" in reasons["unknown-hub-id"]
    assert "not a diffusers pipeline" in reasons["not-a-pipeline"]
    assert "steps" in reasons["bad-settings"]
    assert "'stepz'" in reasons["unknown-setting"]
    assert all(p.attempts == services.MAX_ATTEMPTS for p in Population.objects.filter(status="failed"))
    assert not Image.objects.filter(population__status="failed").exists()


def test_a_failed_queue_is_not_planned_again_until_the_backoff_has_passed(model_cache):
    generator = GeneratorFactory(settings={**TINY, "steps": 0})
    want(generator, PromptFactory(), high=1)
    make_worker(model_cache).run(once=True)
    assert services.plan_populations() == 0
    later = timezone.now() + services.FAILURE_BACKOFF + timedelta(seconds=1)
    assert services.plan_populations(now=later) == 1


def test_too_long_prompt_is_truncated_as_diffusers_does_and_recorded(model_cache):
    long_caption = "a circle " + "with many more words " * 30
    want(GeneratorFactory(settings=TINY), PromptFactory(caption=long_caption.strip()), size=1, high=1)
    make_worker(model_cache).run(once=True)
    image = Image.objects.get()
    assert image.prompt_truncated
    assert image.generation_prompt == long_caption.strip()


def test_worker_that_loses_its_lease_cannot_store_and_its_work_is_reclaimed(settings, model_cache):
    # Given worker A claimed a population and then stalled past its lease,
    want(GeneratorFactory(settings=TINY), PromptFactory(), size=2, high=1)
    services.plan_populations()
    claimed = services.claim_generation_batch(worker="A", max_images=8, lease=timedelta(seconds=30))
    assert len(claimed) == 1
    assert services.claim_generation_batch(worker="B", max_images=8, lease=timedelta(seconds=30)) == []
    later = timezone.now() + timedelta(seconds=31)
    # when worker B comes along after the lease ran out, it reclaims the work,
    reclaimed = services.claim_generation_batch(worker="B", max_images=8, lease=timedelta(minutes=5), now=later)
    assert [p.pk for p in reclaimed] == [claimed[0].pk]
    # then A's late images are refused and leave no file and no row behind,
    late = [
        services.ImageInput(
            index=i, data=one_pixel_png(), extension="png", seed=1, prompt="x", truncated=False, width=1, height=1
        )
        for i in range(2)
    ]
    assert not services.store_population(worker="A", population_id=claimed[0].pk, images=late, generation_ms=1)
    assert not Image.objects.exists()
    assert not [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]
    # and B finishes the population.
    worker_b = make_worker(model_cache)
    worker_b.name = "B"
    worker_b.work(reclaimed)
    population = Population.objects.get()
    assert (population.status, population.images.count(), population.attempts) == ("ready", 2, 2)


def one_pixel_png() -> bytes:
    """A real image: storing re-encodes every image (generation.image_files.canonical_png), so it must decode."""
    buffer = io.BytesIO()
    PILImage.new("RGB", (1, 1), "red").save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_store_that_fails_halfway_leaves_no_rows_and_no_files(settings, model_cache):
    want(GeneratorFactory(settings=TINY), PromptFactory(), size=2, high=1)
    services.plan_populations()
    (population,) = services.claim_generation_batch(worker="A", max_images=8, lease=timedelta(minutes=1))
    only_one = [
        services.ImageInput(
            index=0, data=one_pixel_png(), extension="png", seed=1, prompt="x", truncated=False, width=1, height=1
        )
    ]
    with pytest.raises(services.ImagesRefused, match="needs images 0..1"):
        services.store_population(worker="A", population_id=population.pk, images=only_one, generation_ms=1)
    population.refresh_from_db()
    assert population.status == "generating"
    assert not Image.objects.exists()
    media = Path(settings.MEDIA_ROOT)
    assert not [p for p in media.rglob("*") if p.is_file()]


def test_stopping_worker_releases_unfinished_work_back_to_the_queue(model_cache):
    generator = GeneratorFactory(settings=TINY)
    for _ in range(3):
        want(generator, PromptFactory(), size=4, high=1)
    services.plan_populations()
    worker = make_worker(model_cache, max_batch=4)
    batch = services.claim_generation_batch(worker=worker.name, max_images=12, lease=timedelta(minutes=1))
    assert len(batch) == 3
    # A stop requested before the second pipeline call: the first population is finished and stored.
    calls = []
    original = worker.cache.get(PipelineSpec.from_settings(generator.source, generator.settings), "cpu")

    class StopAfterFirstCall:
        def __getattr__(self, name):
            return getattr(original, name)

        def __call__(self, *args, **kwargs):
            calls.append(1)
            worker.request_stop()
            return original(*args, **kwargs)

    worker.cache.get = lambda spec, device: StopAfterFirstCall()  # type: ignore[method-assign]
    worker.work(batch)
    statuses = sorted(Population.objects.values_list("status", "claimed_by", "attempts"))
    assert len(calls) == 1
    assert statuses == [("pending", "", 0), ("pending", "", 0), ("ready", "", 1)]
    assert Image.objects.count() == 4


def test_a_ready_population_is_announced_on_the_channel_layer_after_commit(
    model_cache, django_capture_on_commit_callbacks
):
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(services.READY_GROUP, channel)
    generator = GeneratorFactory(settings=TINY)
    want(generator, PromptFactory(), size=2, high=1)
    with django_capture_on_commit_callbacks(execute=True):
        make_worker(model_cache).run(once=True)
    message = async_to_sync(layer.receive)(channel)
    population = Population.objects.get()
    assert message == {
        "type": "population.ready",
        "population": population.pk,
        "generator": generator.pk,
        "prompt": population.prompt_id,
        "size": 2,
    }


def test_retrying_a_failed_population_queues_it_with_fresh_attempts(model_cache, admin_client):
    generator = GeneratorFactory(settings={**TINY, "steps": 0})
    want(generator, PromptFactory(), size=2, high=1)
    make_worker(model_cache).run(once=True)
    population = Population.objects.get()
    assert population.status == "failed"
    changelist = admin_client.get("/admin/generation/population/?status__exact=failed").content.decode()
    assert "steps" in changelist  # the reason is visible in the list
    generator.settings = TINY
    generator.save()
    admin_client.post("/admin/generation/population/", {"action": "retry_failed", "_selected_action": [population.pk]})
    population.refresh_from_db()
    assert (population.status, population.attempts) == ("pending", 0)
    make_worker(model_cache).run(once=True)
    population.refresh_from_db()
    assert population.status == "ready"


@pytest.mark.django_db(transaction=True)
def test_storing_behind_the_next_pipeline_call_fills_every_queue_and_ends_its_thread(model_cache):
    # Given three queues of one generator, and a worker that stores in a second thread (as the command's does),
    generator = GeneratorFactory(settings=TINY)
    for _ in range(3):
        want(generator, PromptFactory(), size=3, high=2)
    worker = make_worker(model_cache, max_batch=4, store_behind=True)
    # when it fills them,
    stats = worker.run(once=True)
    # then every population is ready with all its images, counted once, and the storing thread is gone.
    assert (stats.populations, stats.images, stats.failed_attempts) == (6, 18, 0)
    assert sorted(Population.objects.values_list("status", "claimed_by")) == [("ready", "")] * 6
    assert all(p.images.count() == 3 for p in Population.objects.all())
    assert worker._store_thread is None
    assert stats.load_s > 0


@pytest.mark.django_db(transaction=True)
def test_images_refused_by_a_store_behind_fail_that_population_as_an_inline_store_does(model_cache, monkeypatch):
    want(GeneratorFactory(settings=TINY), PromptFactory(), size=2, high=1)

    def refuse(**kwargs):
        raise services.ImagesRefused("not an image")

    monkeypatch.setattr(services, "store_population", refuse)
    stats = make_worker(model_cache, store_behind=True).run(once=True)
    population = Population.objects.get()
    assert stats.failed_attempts == services.MAX_ATTEMPTS
    assert population.status == "failed"
    assert "the images could not be stored: not an image" in population.error
    assert not Image.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("store_behind", [False, True])
def test_a_stray_value_error_in_a_store_is_a_fault_not_a_refusal_of_the_images(model_cache, monkeypatch, store_behind):
    # Given a store that fails with a ValueError of its own (a bug, or numpy or PIL deep inside it)
    want(GeneratorFactory(settings=TINY), PromptFactory(), size=2, high=1)

    def broken(**kwargs):
        raise ValueError("operands could not be broadcast together")

    monkeypatch.setattr(services, "store_population", broken)
    # When the worker stores what it made, the error stops it instead of being read as refused images
    worker = make_worker(model_cache, store_behind=store_behind)
    with pytest.raises(ValueError, match="could not be broadcast"):
        worker.run(once=True)
    # And the set is not failed in the images' name: its attempt is not spent, its claim runs out and is retried
    population = Population.objects.get()
    assert population.status == "generating"
    assert population.error == ""
    assert population.attempts == 1
    assert worker.stats.failed_attempts == 0


def test_a_worker_with_nothing_to_do_yet_imports_the_pipeline_libraries_then_serves_the_queues_that_appear(
    model_cache, monkeypatch
):
    import generation.worker as worker_module

    # Given a worker started before any queue exists (scripts/demo starts it before seeding the campaign),
    worker = make_worker(model_cache)
    imported = []
    real_import = worker_module.import_pipeline_libraries
    generator, prompt = GeneratorFactory(settings=TINY), PromptFactory()

    def import_then_seed():
        real_import()
        imported.append(True)
        want(generator, prompt, size=2, high=2)  # the campaign is seeded meanwhile

    monkeypatch.setattr(worker_module, "import_pipeline_libraries", import_then_seed)
    steps = []
    real_step = worker.step

    def step():
        steps.append(real_step())
        if not steps[-1] and len(steps) > 2:
            worker.request_stop()
        return steps[-1]

    worker.step = step  # type: ignore[method-assign]
    # when it runs until it has nothing left to do,
    stats = worker.run()
    # then it imported the libraries once, while it waited, and then filled the queue that appeared,
    assert imported == [True]
    assert steps[0] is False
    assert True in steps
    assert sorted(Population.objects.values_list("status", flat=True)) == ["ready", "ready"]
    assert stats.failed_attempts == 0
    # and the time it waited is not counted as time outside pipeline calls.
    assert stats.idle_s > 0
    wall = stats.wall_s
    assert stats.share_outside(wall_s=wall) == pytest.approx(1 - stats.pipeline_s / (wall - stats.idle_s))


def test_share_outside_pipeline_calls_is_of_the_time_the_worker_had_work():
    from generation.worker import WorkerStats

    stats = WorkerStats(pipeline_s=9.0, load_s=4.0, idle_s=30.0)
    # 50 s of wall, 30 of them with nothing to do: 9 of the 20 busy seconds were in pipeline calls;
    assert stats.share_outside(wall_s=50.0) == pytest.approx(11 / 20)
    # leaving out loading too, 9 of 16.
    assert stats.share_outside(wall_s=50.0, counting_load=False) == pytest.approx(7 / 16)
