"""`openai:` and `openai-compatible:` generators through the official client against a local Images API.

The local server answers as OpenAI's Images API reference describes `POST /v1/images/generations`:
a JSON body of model, prompt, n, size (and quality, response_format...), a Bearer key, and an answer of
`created`, `data: [{b64_json, revised_prompt}]`, `usage`, with the request id in `x-request-id`; errors
as `{"error": {"message", "type", "param", "code"}}` (a 429 with Retry-After, `moderation_blocked`).
"""

from __future__ import annotations

import base64
import io
import logging
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from exports.services import ExportOptions, export_preferences
from generation import services
from generation.models import Demand, Generator, Image, Population
from generation.providers import base as provider_base
from generation.providers.budgets import get_api_spend, get_refused_prompts
from generation.services import GeneratorRefused, GeneratorSpec, sync_generator
from tests.factories import CampaignFactory, CriterionFactory, PromptFactory, VoteFactory
from tests.generation.local_api import Answer, Request, database_text, images_api, run_api_worker
from tests.generation.local_api import api_generator as local_api_generator
from tests.generation.local_api import want as want_sets

pytestmark = pytest.mark.django_db

KEY_ENV = "POPARENA_TEST_OPENAI_KEY"
REFUSED = (
    "Your request was rejected as a result of our safety system. Your prompt may contain text that is not "
    "allowed by our safety system."
)


@pytest.fixture
def key(provider_key) -> str:
    return provider_key(KEY_ENV, "sk-test-")


def error(status: int, message: str, code: str, kind: str = "invalid_request_error", **headers: str) -> Answer:
    return Answer(status, {"error": {"message": message, "type": kind, "param": None, "code": code}}, headers)


@pytest.fixture
def api(local_api):
    return local_api(images_api)


def api_generator(api, *, name="gpt-image", source="openai:gpt-image-1", **settings) -> Generator:
    settings = {"api_key_env": KEY_ENV, "size": "64x64", "base_url": f"{api.url}/v1", "quality": "low", **settings}
    return local_api_generator(name=name, source=source, settings=settings)


def want(generator, *, caption="a photo of a doctor", size=2, high=1) -> Demand:
    return want_sets(generator, caption=caption, size=size, high=high)


run_worker = run_api_worker


def test_a_set_is_made_one_request_per_image_with_the_documented_fields_and_recorded_provenance(api, key, waits):
    # Given an openai:gpt-image-1 generator wanted for one prompt, sets of two,
    generator = api_generator(api)
    assert generator.backend == Generator.Backend.API
    want(generator, size=2)
    # when the worker fills the queue,
    run_worker()
    # then one set is ready, made by two requests that carry exactly the Images API's fields and the key,
    population = Population.objects.get()
    assert population.status == "ready"
    requests = api.of("POST", "/v1/images/generations")
    assert len(requests) == 2
    for request in requests:
        assert request.headers["authorization"] == f"Bearer {key}"
        assert request.headers["content-type"].startswith("application/json")
        # GPT Image models always answer base64 and refuse response_format: none is sent.
        assert request.body == {
            "model": "gpt-image-1",
            "prompt": "a photo of a doctor",
            "n": 1,
            "size": "64x64",
            "quality": "low",
        }
    # and each image records what was asked and answered, with no seed (the API takes none).
    images = list(Image.objects.order_by("index"))
    assert [(i.width, i.height) for i in images] == [(64, 64), (64, 64)]
    ids = {i.provenance["request_id"] for i in images}
    assert len(ids) == 2
    assert all(i.startswith("req_") for i in ids)
    first = images[0].provenance
    assert first["provider"] == "openai"
    assert first["model"] == "gpt-image-1"
    assert first["asked"] == requests[0].body | {"prompt": "a photo of a doctor"}
    assert first["answered"]["revised_prompt"] == "A detailed photo: a photo of a doctor"
    assert first["answered"]["quality"] == "low"
    assert first["answered"]["usage"]["total_tokens"] == 208
    assert first["seed"] is None
    assert waits == []


def test_an_openai_compatible_server_gets_base64_asked_for_and_the_seed_where_it_takes_one(api, key, waits):
    generator = api_generator(
        api, name="local-sdxl", source="openai-compatible:sdxl-turbo", send_seed=True, quality="standard"
    )
    want(generator, size=1)
    run_worker()
    image = Image.objects.get()
    (request,) = api.of("POST", "/v1/images/generations")
    assert request.body == {
        "model": "sdxl-turbo",
        "prompt": "a photo of a doctor",
        "n": 1,
        "size": "64x64",
        "quality": "standard",
        "response_format": "b64_json",
        "seed": image.seed,
    }
    assert image.provenance["seed"] == image.seed
    assert image.provenance["provider"] == "openai-compatible"


def test_a_429_is_waited_out_as_its_retry_after_says_then_the_set_is_made(api, key, waits):
    generator = api_generator(api)
    want(generator, size=1)
    api.queue(
        error(
            429, "Rate limit reached for images per minute.", "rate_limit_exceeded", "requests", **{"Retry-After": "7"}
        )
    )
    run_worker()
    assert Population.objects.get().status == "ready"
    assert waits == [7.0]
    assert len(api.of("POST", "/v1/images/generations")) == 2


def test_transient_5xx_answers_are_retried_with_growing_bounded_backoff(api, key, waits):
    generator = api_generator(api)
    want(generator, size=1)
    api.queue(
        error(500, "The server had an error.", "server_error", "server_error"),
        error(503, "The engine is overloaded.", "server_error", "server_error"),
    )
    run_worker(max_retry_wait_s=0.7)
    assert Population.objects.get().status == "ready"
    # Backoff 0.5s then 1.0s (each +-20% jitter), the second cut to the 0.7s most a worker waits.
    assert len(waits) == 2
    assert 0.4 <= waits[0] <= 0.6
    assert waits[1] == pytest.approx(0.7)


def test_a_provider_that_keeps_failing_fails_the_attempt_after_the_bounded_retries(api, key, waits):
    generator = api_generator(api, max_retries=1)
    want(generator, size=1)
    api.default = lambda request: error(502, "Bad gateway", "server_error", "server_error")
    run_worker()
    population = Population.objects.get()
    # Three attempts (services.MAX_ATTEMPTS), each one try and one retry: six requests, then failed for good.
    assert population.status == "failed"
    assert len(api.of("POST", "/v1/images/generations")) == 6
    assert "gave up after 2 tries" in population.error
    assert "502" in population.error


def test_a_request_that_times_out_is_tried_again(api, key, waits):
    generator = api_generator(api)
    want(generator, size=1)
    api.queue(Answer(delay_s=1.5, body={}))
    run_worker(timeout_s=0.5)
    assert Population.objects.get().status == "ready"
    assert len(api.of("POST", "/v1/images/generations")) == 2


def test_a_provider_that_never_answers_in_time_fails_with_the_timeout_named(api, key, waits):
    generator = api_generator(api, max_retries=0)
    want(generator, size=1)
    api.default = lambda request: Answer(delay_s=1.0, body={})
    run_worker(timeout_s=0.3)
    population = Population.objects.get()
    assert population.status == "failed"
    assert "no answer within 0.3s" in population.error


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ({"created": 1, "data": [{"b64_json": "not base64 at all!"}]}, "not base64"),
        (
            {"created": 1, "data": [{"b64_json": base64.b64encode(b"GIF89a but not really").decode()}]},
            "no decodable image",
        ),
        ({"created": 1, "data": []}, "held 0 images"),
        ({"created": 1, "data": [{}]}, "no image URL"),
    ],
)
def test_a_malformed_answer_fails_the_attempt_with_what_was_wrong(api, key, waits, answer, reason):
    generator = api_generator(api)
    want(generator, size=1)
    api.default = lambda request: Answer(200, answer)
    run_worker()
    population = Population.objects.get()
    assert population.status == "failed"
    assert reason in population.error
    assert not Image.objects.exists()


def test_a_prompt_refused_every_time_is_failed_recorded_with_the_providers_words_and_never_asked_again(api, key, waits):
    # Given a prompt the API refuses under its content policy every time,
    generator = api_generator(api)
    demand = want(generator, caption="something refused", size=1)
    api.default = lambda request: error(400, REFUSED, "moderation_blocked", "image_generation_user_error")
    # when the worker fills the queue,
    run_worker()
    # then the set failed for good with the provider's words, after a bounded number of asks:
    # three attempts, each asking once more after a refusal (refusal_retries 1), and nothing retried on a timer.
    population = Population.objects.get()
    assert population.status == "failed"
    assert population.error.endswith(f"content policy refusal: {REFUSED}")
    assert len(api.of("POST", "/v1/images/generations")) == 6
    assert waits == []
    # and the researcher is shown the prompt,
    (refused,) = get_refused_prompts(generator_ids=[generator.pk])
    assert (refused.generator, refused.caption) == ("gpt-image", "something refused")
    assert REFUSED in refused.error
    # and the planner never makes another set for it, however long after.
    assert services.plan_populations(now=timezone.now() + timedelta(days=1)) == 0
    # Until staff retry it (after, say, rewording the template): then it is asked for again.
    services.retry_failed_populations(population_ids=[population.pk])
    api.default = images_api
    run_worker()
    assert Population.objects.get(pk=population.pk).status == "ready"
    assert demand.prompt.populations.count() == 1


def test_a_refusal_followed_by_an_image_keeps_the_providers_words_in_the_images_provenance(api, key, waits):
    generator = api_generator(api)
    want(generator, size=1)
    api.queue(error(400, REFUSED, "content_policy_violation"))
    run_worker()
    image = Image.objects.get()
    assert image.provenance["refused_before"] == [REFUSED]


def test_a_missing_key_fails_the_work_naming_the_variable_and_asks_nothing(api, monkeypatch, waits):
    monkeypatch.delenv(KEY_ENV, raising=False)
    generator = api_generator(api)
    want(generator, size=1)
    run_worker()
    population = Population.objects.get()
    assert population.status == "failed"
    assert KEY_ENV in population.error
    assert "api_key_env" in population.error
    assert api.requests == []


def test_a_budget_stops_claims_once_spent_and_says_why(api, key, waits):
    # Given 0.04 a image and a budget of 0.20: five images, so two sets of two and not a third,
    generator = api_generator(api, price_per_image=0.04, budget=0.2)
    want(generator, size=2, high=3)
    # when the worker fills the queue,
    run_worker()
    # then two sets were made, the third waits unclaimed, and the spend and the reason are there to show.
    assert Population.objects.filter(status="ready").count() == 2
    assert Population.objects.filter(status="pending").count() == 1
    assert len(api.requests) == 4
    (spend,) = get_api_spend(generator_ids=[generator.pk])
    assert spend.images == 4
    assert spend.spent == pytest.approx(0.16)
    assert spend.affordable_images == 1
    assert spend.budget_reached
    assert "budget reached: 0.16 of 0.20 spent" in spend.reason
    # Another worker finds nothing to claim either.
    assert run_worker().stats.images == 0


@pytest.mark.parametrize(
    ("source", "given", "named"),
    [
        ("openai:", {"api_key_env": KEY_ENV, "size": "64x64"}, "source"),
        ("openai:gpt-image-1", {"api_key_env": KEY_ENV, "size": "64 by 64"}, "'size'"),
        ("openai:gpt-image-1", {"size": "64x64"}, "'api_key_env'"),
        ("openai:gpt-image-1", {"api_key_env": "sk-not-a-variable-name", "size": "64x64"}, "'api_key_env'"),
        ("openai-compatible:m", {"api_key_env": KEY_ENV, "size": "64x64"}, "'base_url'"),
        (
            "openai-compatible:m",
            {"api_key_env": KEY_ENV, "size": "64x64", "base_url": "https://user:secret@gateway.example/v1"},
            "'base_url'",
        ),
        ("openai:gpt-image-1", {"api_key_env": KEY_ENV, "size": "64x64", "steps": 4}, "'steps'"),
        ("openai:gpt-image-1", {"api_key_env": KEY_ENV, "size": "64x64", "budget": 5}, "'budget'"),
        ("openai:gpt-image-1", {"api_key_env": KEY_ENV, "size": "64x64", "price_per_image": -1}, "'price_per_image'"),
    ],
)
def test_a_generator_that_could_never_run_is_refused_when_saved_naming_the_field(source, given, named):
    spec = GeneratorSpec(name="refused", display_name="", description="", source=source, settings=given)
    with pytest.raises(GeneratorRefused) as refused:
        sync_generator(spec=spec)
    assert named in refused.value.message
    assert not Generator.objects.filter(name="refused").exists()


def test_the_admin_form_refuses_a_bad_api_generator_on_its_field(admin_client):
    response = admin_client.post(
        "/admin/generation/generator/add/",
        {
            "name": "bad-api",
            "backend": "api",
            "source": "openai:gpt-image-1",
            "settings": '{"api_key_env": "OPENAI_API_KEY", "size": "huge"}',
            "prompt_template": "{prompt}",
            "gold_source": "on",
            "is_active": "on",
        },
    )
    assert response.status_code == 200
    assert "setting &#x27;size&#x27; must be" in response.content.decode()
    assert not Generator.objects.filter(name="bad-api").exists()


def test_no_key_reaches_the_database_a_log_line_or_an_export(api, key, waits, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    # Given an API that, besides making images, refuses the key once quoting it back (some servers do),
    # and then rate-limits with a message that quotes it too,
    generator = api_generator(api, name="api-a")
    other = api_generator(api, name="api-b")
    prompt = PromptFactory(caption="a nurse")
    for g in (generator, other):
        Demand.objects.create(
            owner="campaign:test", generator=g, prompt=prompt, size=1, low_watermark=1, high_watermark=1
        )
    api.queue(
        error(401, f"Incorrect API key provided: {key}.", "invalid_api_key"),
        error(429, f"Slow down, {key}", "rate_limit_exceeded", **{"Retry-After": "1"}),
    )
    run_worker()
    assert Population.objects.filter(status="ready").count() == 2
    # and a campaign whose vote on the two sets is exported,
    campaign = CampaignFactory()
    campaign.generators.set([generator, other])
    campaign.prompts.set([prompt])
    left, right = Population.objects.order_by("pk")
    VoteFactory(
        comparison__campaign=campaign,
        comparison__prompt=prompt,
        comparison__left_population=left,
        comparison__right_population=right,
        criterion=CriterionFactory(campaign=campaign, key="quality"),
    )
    out = tmp_path / "export"
    export_preferences(campaign=campaign, options=ExportOptions(format="population-jsonl"), out=out, overwrite=False)
    export_preferences(
        campaign=campaign, options=ExportOptions(format="votes-csv"), out=tmp_path / "votes", overwrite=False
    )
    # then the key is nowhere: not in any table, any log line, or any exported file.
    assert key not in database_text()
    assert key not in caplog.text
    exported = "".join(path.read_text(errors="replace") for path in tmp_path.rglob("*") if path.is_file())
    assert exported
    assert key not in exported
    # The refusal of the key was said, without the key: in the log of the failed attempt.
    assert f"the key in {KEY_ENV} was refused (401" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_run_generation_worker_once_fills_an_api_generators_queue_on_a_cpu_worker(api, key, monkeypatch):
    # Given an API generator wanted for two sets of two, and a worker with no GPU (the default device),
    monkeypatch.setattr(provider_base, "_sleep", lambda seconds: None)
    generator = api_generator(api)
    want(generator, size=2, high=2)
    out = io.StringIO()
    # when `run_generation_worker --once` runs (storing behind the next call, as in production),
    call_command("run_generation_worker", "--once", stdout=out)
    # then both sets are ready, four requests made, every image with its request id.
    assert Population.objects.filter(status="ready").count() == 2
    assert len(api.of("POST", "/v1/images/generations")) == 4
    assert "4 images, 2 populations ready, 0 failed attempts" in out.getvalue()
    assert all(image.provenance["request_id"].startswith("req_") for image in Image.objects.all())


def test_the_staff_campaign_page_shows_spend_the_budget_reached_and_the_refused_prompt(api, key, waits, admin_client):
    # Given a campaign with an API generator at 0.04 an image and a budget of 0.16, two prompts, one refused,
    generator = api_generator(api, price_per_image=0.04, budget=0.16)
    fine, refused = PromptFactory(caption="a teacher"), PromptFactory(caption="a refused caption")
    for prompt in (fine, refused):
        Demand.objects.create(
            owner="campaign:test", generator=generator, prompt=prompt, size=2, low_watermark=1, high_watermark=2
        )
    campaign = CampaignFactory()
    campaign.generators.set([generator])
    campaign.prompts.set([fine, refused])

    def answer(request: Request) -> Answer:
        if "refused" in request.body["prompt"]:
            return error(400, REFUSED, "moderation_blocked", "image_generation_user_error")
        return images_api(request)

    api.default = answer
    # when the worker has filled what the budget allows,
    run_worker()
    # then the page shows the 4 images made here (0.16 spent), that the budget stopped the work, and the prompt refused.
    page = admin_client.get(reverse("staff-campaign", args=[campaign.slug])).content.decode()
    assert 'id="api-spent">0.16<' in page
    assert "budget reached: 0.16 of 0.16 spent at 0.04 per image" in page
    assert "a refused caption" in page
    assert "Your request was rejected as a result of our safety system." in page
