"""`replicate:` generators through the official client against a local server speaking Replicate's predictions API.

As Replicate's HTTP API reference describes it: `POST /v1/models/{owner}/{name}/predictions` (or
`POST /v1/predictions` with a `version`) with `{"input": {...}}` and a Bearer token answers 201 with a
prediction (`id, model, version, input, status: "starting", output: null, error, logs, metrics, urls`);
`GET /v1/predictions/{id}` polls it through "processing" to "succeeded" (output: file URLs) or "failed"
(`error`); `POST /v1/predictions/{id}/cancel` cancels; errors are problem details (`title, detail, status`).
"""

from __future__ import annotations

import logging
import re
import secrets
import threading

import pytest

from generation.models import Demand, Image, Population
from generation.providers.budgets import get_api_spend, get_refused_prompts
from generation.services import GeneratorRefused, GeneratorSpec, sync_generator
from tests.generation.local_api import Answer, LocalAPI, Request, database_text, png, run_api_worker
from tests.generation.local_api import api_generator as local_api_generator
from tests.generation.local_api import want as want_sets

pytestmark = pytest.mark.django_db

KEY_ENV = "POPARENA_TEST_REPLICATE_TOKEN"
VERSION = "5599ed30703defd1d160a25a63321b4dec97101d98b4674bcc56e41f62f35637"


class Replicate:
    """The predictions API's state: each prediction polls as "processing" once, then ends as `outcome` says."""

    def __init__(self) -> None:
        self.api: LocalAPI | None = None
        self.predictions: dict[str, dict] = {}
        self.outcome: dict = {"status": "succeeded"}
        self.lock = threading.Lock()

    def prediction(self, pid: str) -> dict:
        return self.predictions[pid]

    def __call__(self, request: Request) -> Answer:
        assert self.api is not None
        if request.path.startswith("/files/"):
            width, height = (int(n) for n in re.search(r"-(\d+)-(\d+)\.png", request.path).groups())
            return Answer(200, png(width, height), content_type="image/png")
        created = re.fullmatch(r"/v1/models/([\w.-]+)/([\w.-]+)/predictions", request.path)
        if request.method == "POST" and (created or request.path == "/v1/predictions"):
            pid = secrets.token_hex(8)
            prediction = {
                "id": pid,
                "model": f"{created[1]}/{created[2]}" if created else "acme/painter",
                "version": request.body.get("version", "hidden"),
                "input": request.body["input"],
                "logs": "",
                "output": None,
                "data_removed": False,
                "error": None,
                "status": "starting",
                "created_at": "2026-12-07T12:00:00.000Z",
                "started_at": None,
                "completed_at": None,
                "metrics": {},
                "urls": {
                    "get": f"{self.api.url}/v1/predictions/{pid}",
                    "cancel": f"{self.api.url}/v1/predictions/{pid}/cancel",
                },
            }
            with self.lock:
                self.predictions[pid] = {**prediction, "polls": 0}
            return Answer(201, prediction)
        polled = re.fullmatch(r"/v1/predictions/(\w+)", request.path)
        if request.method == "GET" and polled:
            with self.lock:
                state = self.predictions[polled[1]]
                state["polls"] += 1
                if state["polls"] >= 2 and state["status"] in ("starting", "processing"):
                    state.update(self.outcome)
                    if state["status"] == "succeeded" and state["output"] is None:
                        width, height = state["input"].get("width", 64), state["input"].get("height", 64)
                        state["output"] = [f"{self.api.url}/files/{polled[1]}-{width}-{height}.png?sig=s3cr3t"]
                    state["completed_at"] = "2026-12-07T12:00:03.000Z"
                    state["metrics"] = {"predict_time": 2.5}
                elif state["status"] == "starting":
                    state["status"] = "processing"
                return Answer(200, {k: v for k, v in state.items() if k != "polls"})
        cancel = re.fullmatch(r"/v1/predictions/(\w+)/cancel", request.path)
        if request.method == "POST" and cancel:
            with self.lock:
                state = self.predictions[cancel[1]]
                state["status"] = "canceled"
            return Answer(200, {k: v for k, v in state.items() if k != "polls"})
        return Answer(404, {"title": "Not found", "detail": "Not found", "status": 404})


@pytest.fixture
def replicate(local_api):
    state = Replicate()
    state.api = local_api(state)
    return state


@pytest.fixture
def key(provider_key) -> str:
    return provider_key(KEY_ENV, "r8_")


def api_generator(replicate, *, name="flux", source="replicate:acme/painter", **settings):
    settings = {
        "api_key_env": KEY_ENV,
        "size": "64x48",
        "base_url": replicate.api.url,
        "poll_interval_s": 0.01,
        "input": {"num_inference_steps": 4, "output_format": "png"},
        **settings,
    }
    return local_api_generator(name=name, source=source, settings=settings)


def want(generator, *, caption="a portrait of a CEO", size=2, high=1) -> Demand:
    return want_sets(generator, caption=caption, size=size, high=high)


run_worker = run_api_worker


def test_a_set_is_made_by_creating_polling_and_fetching_predictions_with_the_seed_recorded(replicate, key, waits):
    # Given a replicate:OWNER/MODEL generator wanted for sets of two,
    generator = api_generator(replicate)
    want(generator)
    # when the worker fills the queue,
    run_worker()
    # then the set is ready: each image a prediction created with the documented body and the Bearer token,
    population = Population.objects.get()
    assert population.status == "ready"
    created = replicate.api.of("POST", "/v1/models/acme/painter/predictions")
    assert len(created) == 2
    seeds = sorted(population.seeds)
    for request in created:
        assert request.headers["authorization"] == f"Bearer {key}"
        assert set(request.body) == {"input"}
    inputs = sorted((r.body["input"] for r in created), key=lambda i: i["seed"])
    assert inputs == [
        {
            "prompt": "a portrait of a CEO",
            "width": 64,
            "height": 48,
            "seed": seed,
            "num_inference_steps": 4,
            "output_format": "png",
        }
        for seed in seeds
    ]
    # polled until done, and its output fetched without the token (an output URL may point anywhere).
    assert len(replicate.api.of("GET", "/v1/predictions/")) >= 4
    for fetch in replicate.api.of("GET", "/files/"):
        assert "authorization" not in fetch.headers
    # Each image records the prediction, its input and the seed that reproduces it (the model takes one),
    # and the output URL without its signature.
    for image in Image.objects.all():
        provenance = image.provenance
        assert provenance["provider"] == "replicate"
        assert provenance["model"] == "acme/painter"
        assert provenance["request_id"] in replicate.predictions
        assert provenance["seed"] == image.seed == provenance["asked"]["input"]["seed"]
        assert provenance["answered"]["status"] == "succeeded"
        assert provenance["answered"]["metrics"] == {"predict_time": 2.5}
        assert "sig=" not in provenance["answered"]["output"]
        assert (image.width, image.height) == (64, 48)
    assert waits == []


def test_a_pinned_version_is_created_through_the_versioned_endpoint(replicate, key, waits):
    generator = api_generator(replicate, source=f"replicate:acme/painter:{VERSION}", seed_input=None)
    want(generator, size=1)
    run_worker()
    (request,) = replicate.api.of("POST", "/v1/predictions")
    assert request.body["version"] == VERSION
    assert "seed" not in request.body["input"]
    image = Image.objects.get()
    assert image.provenance["version"] == VERSION
    assert image.provenance["seed"] is None


def test_a_429_on_create_is_waited_out_as_its_retry_after_says(replicate, key, waits):
    generator = api_generator(replicate)
    want(generator, size=1)
    replicate.api.queue(
        Answer(
            429, {"title": "Too Many Requests", "detail": "Request was throttled.", "status": 429}, {"Retry-After": "5"}
        )
    )
    run_worker()
    assert Population.objects.get().status == "ready"
    assert waits == [5.0]


def test_a_5xx_on_create_is_retried_and_one_that_persists_fails_the_attempt(replicate, key, waits):
    generator = api_generator(replicate, max_retries=2)
    want(generator, size=1)
    replicate.api.queue(Answer(500, {"title": "Internal Server Error", "detail": "boom", "status": 500}))
    run_worker()
    assert Population.objects.get().status == "ready"
    assert len(waits) == 1
    # A server that keeps failing: three tries per attempt, three attempts, then failed with its words.
    other = api_generator(replicate, name="other", max_retries=2)
    want(other, caption="another prompt", size=1)
    replicate.api.default = lambda request: Answer(
        502, {"title": "Bad Gateway", "detail": "upstream down", "status": 502}
    )
    run_worker()
    failed = Population.objects.get(generator=other)
    assert failed.status == "failed"
    assert "gave up after 3 tries: 502: upstream down" in failed.error


def test_a_prediction_that_outlives_the_timeout_is_canceled_and_tried_again(replicate, key, waits):
    generator = api_generator(replicate, max_retries=0)
    want(generator, size=1)
    replicate.outcome = {"status": "processing"}  # never finishes
    run_worker(timeout_s=0.3)
    population = Population.objects.get()
    assert population.status == "failed"
    assert "did not finish within 0.3s (canceled)" in population.error
    assert len(replicate.api.of("POST", "/v1/predictions/")) == 3  # one cancel per attempt


def test_a_malformed_answer_fails_the_attempt(replicate, key, waits):
    generator = api_generator(replicate)
    want(generator, size=1)
    replicate.outcome = {"status": "succeeded", "output": ["data:image/png;base64,bm90IGFuIGltYWdl"]}
    run_worker()
    population = Population.objects.get()
    assert population.status == "failed"
    assert "no decodable image" in population.error


def test_a_refused_prompt_is_recorded_with_the_providers_words_and_shown(replicate, key, waits):
    generator = api_generator(replicate)
    want(generator, caption="refused prompt", size=1)
    words = "NSFW content detected. Try running it again, or try a different prompt."
    replicate.outcome = {"status": "failed", "error": words}
    run_worker()
    population = Population.objects.get()
    assert population.status == "failed"
    assert population.error.endswith(f"content policy refusal: {words}")
    # three attempts of two asks each (refusal_retries 1), then never again
    assert len(replicate.api.of("POST", "/v1/models/")) == 6
    (refused,) = get_refused_prompts(generator_ids=[generator.pk])
    assert refused.caption == "refused prompt"


def test_a_missing_key_fails_naming_the_variable(replicate, monkeypatch, waits):
    monkeypatch.delenv(KEY_ENV, raising=False)
    want(api_generator(replicate), size=1)
    run_worker()
    population = Population.objects.get()
    assert population.status == "failed"
    assert f"{KEY_ENV} (setting 'api_key_env') is not set" in population.error
    assert replicate.api.requests == []


def test_a_budget_stops_claims_once_spent(replicate, key, waits):
    generator = api_generator(replicate, price_per_image=0.003, budget=0.006)
    want(generator, size=1, high=4)
    run_worker()
    assert Population.objects.filter(status="ready").count() == 2
    assert len(replicate.api.of("POST", "/v1/models/")) == 2
    (spend,) = get_api_spend(generator_ids=[generator.pk])
    assert spend.budget_reached
    assert spend.spent == pytest.approx(0.006)


@pytest.mark.parametrize(
    ("source", "extra", "named"),
    [
        ("replicate:painter", {}, "replicate:OWNER/MODEL"),
        ("replicate:acme/painter:not-hex", {}, "replicate:OWNER/MODEL"),
        ("replicate:acme/painter", {"input": {"prompt": "x"}}, "'input'"),
        ("replicate:acme/painter", {"size_inputs": "sometimes"}, "'size_inputs'"),
        ("replicate:acme/painter", {"api_key_env": ""}, "'api_key_env'"),
    ],
)
def test_bad_replicate_settings_are_refused_when_saved(source, extra, named):
    given = {"api_key_env": KEY_ENV, "size": "64x48", **extra}
    with pytest.raises(GeneratorRefused) as refused:
        sync_generator(spec=GeneratorSpec(name="r", display_name="", description="", source=source, settings=given))
    assert named in refused.value.message


def test_the_token_is_in_no_table_and_no_log_line(replicate, key, waits, caplog):
    caplog.set_level(logging.DEBUG)
    generator = api_generator(replicate)
    want(generator, size=1)
    replicate.api.queue(Answer(401, {"title": "Unauthenticated", "detail": f"Invalid token {key}", "status": 401}))
    run_worker()
    assert Population.objects.get().status == "ready"
    assert f"the key in {KEY_ENV} was refused (401)" in caplog.text
    assert key not in caplog.text
    assert key not in database_text()
