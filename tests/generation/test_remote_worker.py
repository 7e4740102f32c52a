"""`run_generation_worker --server URL`: a worker with no database fills the queues over the HTTP API."""

from __future__ import annotations

import hashlib
import io
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from access.services import create_api_token, revoke_api_token
from generation.models import Demand, Image, Population
from generation.prompting import population_prompts
from generation.remote import RemoteQueue
from generation.worker import GenerationWorker
from tests.factories import GeneratorFactory, PromptFactory
from tests.generation.local_api import api_generator, database_text, images_api, run_api_worker, want

pytestmark = pytest.mark.django_db(transaction=True)

TINY = {"steps": 2, "width": 32, "height": 32, "init_seed": 3, "augment": {"colour": ["red", "green"]}}


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("remote-models")


@pytest.fixture
def worker_key(db):  # type: ignore[no-untyped-def]
    staff = get_user_model().objects.create_user("ops", password="x", is_staff=True)
    return create_api_token(user=staff, name="gpu-box", scopes=["worker"])


@pytest.fixture
def wanted(db):  # type: ignore[no-untyped-def]
    generator = GeneratorFactory(settings=TINY, prompt_template="a drawing of {prompt}")
    prompt = PromptFactory(caption="a square")
    Demand.objects.create(
        owner="campaign:remote", generator=generator, prompt=prompt, size=3, low_watermark=1, high_watermark=2
    )
    return generator


def test_the_command_with_server_fills_every_queue_over_http(
    live_server, worker_key, wanted, model_cache, monkeypatch, settings
):
    settings.POPARENA_MODEL_CACHE = model_cache
    monkeypatch.setenv("POPARENA_WORKER_TOKEN", worker_key.key)
    out = StringIO()
    call_command("run_generation_worker", "--server", live_server.url, "--once", "--max-batch", "4", stdout=out)
    assert "6 images, 2 populations ready, 0 failed attempts" in out.getvalue()
    populations = list(Population.objects.all())
    assert [p.status for p in populations] == ["ready", "ready"]
    for population in populations:
        images = list(population.images.order_by("index"))
        assert [image.seed for image in images] == population.seeds
        assert [image.generation_prompt for image in images] == population_prompts(
            "a square", template="a drawing of {prompt}", settings=TINY, seeds=population.seeds
        )
        assert {(image.width, image.height) for image in images} == {(32, 32)}
        for image in images:
            with image.file.open("rb") as handle:
                assert hashlib.sha256(handle.read()).hexdigest() == image.sha256


def test_a_remote_workers_api_images_keep_what_was_asked_and_answered_as_a_local_store_does(
    live_server, worker_key, local_api, provider_key, waits, monkeypatch
):
    # Given an openai-compatible generator served by a local Images API that tags each answer with a request id,
    sent: list[str] = []

    def tagging(request):  # type: ignore[no-untyped-def]
        answer = images_api(request)
        sent.append(answer.headers["x-request-id"])
        return answer

    api = local_api(tagging)
    key = provider_key("POPARENA_TEST_REMOTE_IMAGES_KEY", "sk-test-")
    generator = api_generator(
        name="local-sdxl",
        source="openai-compatible:sdxl-turbo",
        settings={"api_key_env": "POPARENA_TEST_REMOTE_IMAGES_KEY", "size": "32x32", "base_url": f"{api.url}/v1"},
    )
    want(generator, caption="a teacher")
    # when a remote worker (no database, a worker token) fills its queue over HTTP,
    monkeypatch.setenv("POPARENA_WORKER_TOKEN", worker_key.key)
    out = StringIO()
    call_command("run_generation_worker", "--server", live_server.url, "--once", stdout=out)
    assert "2 images, 1 populations ready" in out.getvalue()
    remote = list(Image.objects.order_by("index"))
    # and a worker on the server's database then fills a second queue of the same generator,
    want(generator, caption="a nurse")
    run_api_worker()
    local = list(Image.objects.exclude(pk__in=[image.pk for image in remote]).order_by("index"))
    # then each uploaded image records the request id the API sent for it and what was asked and answered,
    assert sorted(image.provenance["request_id"] for image in remote) == sorted(sent[:2])
    for image in remote:
        assert image.provenance["asked"]["prompt"] == "a teacher"
        assert image.provenance["answered"]["revised_prompt"] == "A detailed photo: a teacher"
    # exactly as the local store records its own (the same fields; only the prompt and request id differ),
    for uploaded, stored in zip(remote, local, strict=True):

        def shape(provenance):  # type: ignore[no-untyped-def]
            return {k: v for k, v in provenance.items() if k not in ("asked", "answered", "request_id")}

        assert shape(uploaded.provenance) == shape(stored.provenance)
        assert set(uploaded.provenance) == set(stored.provenance)
        assert set(uploaded.provenance["answered"]) == set(stored.provenance["answered"])
        assert uploaded.provenance["asked"] == {**stored.provenance["asked"], "prompt": "a teacher"}
    # and the key went nowhere but the API.
    assert key not in database_text()


def test_a_stopping_remote_worker_hands_its_claim_back(live_server, worker_key, wanted, model_cache):
    queue = RemoteQueue(server=live_server.url, key=worker_key.key)
    worker = GenerationWorker(device="cpu", cache_dir=model_cache, max_batch=2, queue=queue, name="box:1:cpu")
    batch = queue.claim_generation_batch(worker=worker.name, max_images=6, lease=timedelta(minutes=1))
    assert len(batch) == 2
    worker.request_stop()  # as SIGTERM would, before the first pipeline call
    worker.work(batch)
    assert set(Population.objects.values_list("status", "claimed_by")) == {("pending", "")}


def test_a_revoked_token_stops_the_command_with_the_servers_reason(
    live_server, worker_key, wanted, model_cache, monkeypatch, settings
):
    settings.POPARENA_MODEL_CACHE = model_cache
    revoke_api_token(token=worker_key.token)
    monkeypatch.setenv("POPARENA_WORKER_TOKEN", worker_key.key)
    with pytest.raises(CommandError, match=r"claims: 401 this API token was revoked"):
        call_command("run_generation_worker", "--server", live_server.url, "--once")
    assert not Population.objects.exists()


def test_the_command_refuses_to_start_without_a_key(live_server, monkeypatch):
    monkeypatch.delenv("POPARENA_WORKER_TOKEN", raising=False)
    with pytest.raises(CommandError, match=r"--server needs the worker's API token in \$POPARENA_WORKER_TOKEN"):
        call_command("run_generation_worker", "--server", live_server.url, "--once")


def test_images_the_server_refuses_fail_the_attempt_with_its_reason(
    live_server, worker_key, wanted, model_cache, monkeypatch
):
    from generation import worker as worker_module

    def bitmap(generated):  # type: ignore[no-untyped-def]
        buffer = io.BytesIO()
        generated.image.save(buffer, format="BMP")
        return buffer.getvalue()

    monkeypatch.setattr(worker_module, "encode_png", bitmap)
    queue = RemoteQueue(server=live_server.url, key=worker_key.key)
    worker = GenerationWorker(device="cpu", cache_dir=model_cache, max_batch=6, queue=queue, name="box:2:cpu")
    assert worker.step()
    assert worker.stats.failed_attempts == 2
    for population in Population.objects.all():
        assert population.status == "pending"
        assert "a BMP file; upload PNG, JPEG or WebP" in population.error
        assert not population.images.exists()
