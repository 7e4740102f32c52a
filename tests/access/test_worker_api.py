"""The remote generation worker's endpoints: only a `worker` token claims, and only its own claims it fills."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image as PILImage
from rest_framework.test import APIClient

from generation.models import Demand, Image, Population
from generation.prompting import population_prompts
from tests.factories import GeneratorFactory, PromptFactory

pytestmark = pytest.mark.django_db

CLAIMS = "/api/v1/generation/claims"


def upload_url(population_id: int) -> str:
    return f"/api/v1/generation/populations/{population_id}/images"


def png(width: int = 8, height: int = 6, colour: str = "red") -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def files(*payloads: bytes) -> list[SimpleUploadedFile]:
    return [SimpleUploadedFile(f"{i}.png", data, content_type="image/png") for i, data in enumerate(payloads)]


def media_files(settings) -> list[str]:  # type: ignore[no-untyped-def]
    root = settings.MEDIA_ROOT
    return sorted(str(path) for path in root.rglob("*") if path.is_file()) if root.exists() else []


@pytest.fixture
def wanted():  # type: ignore[no-untyped-def]
    """One generator with attribute augmentation wanted for one prompt: two populations of 3 to make."""
    generator = GeneratorFactory(
        name="painter",
        source="builtin:tiny-random",
        settings={"steps": 2, "augment": {"colour": ["red", "blue"]}},
        prompt_template="a photo of {prompt}",
    )
    prompt = PromptFactory(caption="a circle", category="shapes")
    Demand.objects.create(
        owner="campaign:demo", generator=generator, prompt=prompt, size=3, low_watermark=1, high_watermark=2
    )
    return generator, prompt


def claim(client: APIClient, **body) -> dict:  # type: ignore[no-untyped-def]
    response = client.post(CLAIMS, {"max_images": 3, "worker": "gpu-1", **body}, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def test_only_a_worker_token_claims_work(token_client, staff, wanted):
    session = APIClient()
    session.force_login(staff)
    answers = {}
    for who, client in (
        ("anonymous", APIClient()),
        ("staff session", session),
        *((f"{scope} token", token_client(scope)) for scope in ("read", "vote", "manage", "export")),
    ):
        response = client.post(CLAIMS, {"max_images": 3}, format="json")
        answers[who] = (response.status_code, response.json()["error"]["code"])
        assert "worker" in response.json()["error"]["message"]
    assert answers == {
        "anonymous": (403, "not_authenticated"),
        "staff session": (403, "permission_denied"),
        **{f"{scope} token": (403, "insufficient_scope") for scope in ("read", "vote", "manage", "export")},
    }
    assert not Population.objects.exists()  # nobody planned or claimed anything
    assert claim(token_client("worker"))["populations"]


def test_a_claim_plans_the_queue_and_hands_out_what_reproduces_each_image(token_client, wanted):
    generator, prompt = wanted
    answer = claim(token_client("worker"), max_images=6)
    # Both wanted populations are planned and claimed, under a lease named after the token.
    assert len(answer["populations"]) == 2
    assert answer["worker"].startswith("token-")
    assert answer["worker"].endswith(":gpu-1")
    for row in answer["populations"]:
        population = Population.objects.get(pk=row["id"])
        assert population.status == "generating"
        assert population.claimed_by == answer["worker"]
        assert row["seeds"] == population.seeds
        assert row["size"] == 3
        assert row["prompts"] == population_prompts(
            "a circle", template="a photo of {prompt}", settings=generator.settings, seeds=population.seeds
        )
        assert row["generator"] == {
            "name": "painter",
            "source": "builtin:tiny-random",
            "settings": generator.settings,
            "prompt_template": "a photo of {prompt}",
        }
        assert (row["caption"], row["category"]) == ("a circle", "shapes")
    # Nothing is left to claim now.
    assert claim(token_client("worker"))["populations"] == []


def test_an_upload_makes_the_population_ready_with_the_servers_seeds_and_prompts(token_client, wanted):
    worker = token_client("worker")
    row = claim(worker)["populations"][0]
    response = worker.post(
        upload_url(row["id"]),
        {
            "worker": "gpu-1",
            "generation_ms": 1234,
            "images": files(png(), png(colour="blue"), png(colour="green")),
            "truncated": [1],
        },
        format="multipart",
    )
    assert response.status_code == 200, response.json()
    population = Population.objects.get(pk=row["id"])
    assert (population.status, population.claimed_by, population.generation_ms) == ("ready", "", 1234)
    images = list(population.images.order_by("index"))
    assert [image.seed for image in images] == row["seeds"]
    assert [image.generation_prompt for image in images] == row["prompts"]
    assert [image.prompt_truncated for image in images] == [False, True, False]
    assert {(image.width, image.height) for image in images} == {(8, 6)}
    with images[1].file.open("rb") as handle:
        assert PILImage.open(handle).getpixel((0, 0)) == (0, 0, 255)


def test_an_upload_stores_each_images_provenance_as_a_local_store_does(token_client, wanted):
    # Given a remote worker whose images came from a hosted API, each with what it was asked and answered,
    worker = token_client("worker")
    row = claim(worker)["populations"][0]
    records = [
        {"provider": "openai-compatible", "model": "sdxl-turbo", "request_id": f"req_{index}", "seed": None}
        for index in range(3)
    ]
    # when it uploads the set with those records, in image order,
    response = worker.post(
        upload_url(row["id"]),
        {
            "worker": "gpu-1",
            "generation_ms": 10,
            "images": files(png(), png(colour="blue"), png(colour="green")),
            "provenance": json.dumps(records),
        },
        format="multipart",
    )
    # then each stored image holds its own record, as the image a local worker stores does.
    assert response.status_code == 200, response.json()
    images = Population.objects.get(pk=row["id"]).images.order_by("index")
    assert [image.provenance for image in images] == records


@pytest.mark.parametrize(
    ("provenance", "message"),
    [
        ("{not json", "provenance: not JSON; send an array with one object per image"),
        ('{"request_id": "req_1"}', "provenance: must be a JSON array with one object per image, in image order"),
        ('[{}, {}, "req_3"]', "provenance: must be a JSON array with one object per image, in image order"),
        ("[{}, {}]", "provenance: 2 record(s) for 3 image(s); send one per image"),
        ('[{}, {"blank_seeds": [4]}, {}]', "provenance[1]: 'blank_seeds' is recorded by the server only, not uploaded"),
    ],
)
def test_an_upload_with_unusable_provenance_is_refused_naming_it_and_stores_nothing(
    token_client, wanted, settings, provenance, message
):
    worker = token_client("worker")
    row = claim(worker)["populations"][0]
    response = worker.post(
        upload_url(row["id"]),
        {"worker": "gpu-1", "generation_ms": 5, "images": files(png(), png(), png()), "provenance": provenance},
        format="multipart",
    )
    assert response.status_code == 400
    assert response.json()["error"] == {"code": "invalid_provenance", "message": message}
    assert Population.objects.get(pk=row["id"]).status == "generating"
    assert not Image.objects.exists()
    assert media_files(settings) == []


def test_another_tokens_worker_cannot_upload_renew_or_fail_a_claim(token_client, wanted, settings):
    owner, intruder = token_client("worker"), token_client("worker")
    row = claim(owner)["populations"][0]
    # Same label, different token: still not the lease holder.
    refused = [
        intruder.post(
            upload_url(row["id"]),
            {"worker": "gpu-1", "generation_ms": 1, "images": files(png(), png(), png())},
            format="multipart",
        ),
        intruder.post(f"/api/v1/generation/populations/{row['id']}/failures", {"worker": "gpu-1", "error": "x"}),
    ]
    for response in refused:
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "not_held"
    assert intruder.post(
        "/api/v1/generation/leases", {"worker": "gpu-1", "populations": [row["id"]]}, format="json"
    ).json() == {"held": 0}
    assert intruder.post(
        "/api/v1/generation/releases", {"worker": "gpu-1", "populations": [row["id"]]}, format="json"
    ).json() == {"released": 0}
    population = Population.objects.get(pk=row["id"])
    assert population.status == "generating"
    assert not population.images.exists()
    assert media_files(settings) == []


@pytest.mark.parametrize(
    ("payloads", "message"),
    [
        ((png(), png()), "has 3 images; 2 were uploaded"),
        ((png(), b"not an image at all", png()), "images[1] (1.png): not a readable image"),
        ((png(), png(), b""), "images: 2: The submitted file is empty"),
        ((png(), png(), png()[:40]), "images[2] (2.png): not a readable image"),
    ],
)
def test_a_bad_upload_is_refused_by_name_and_stores_nothing(token_client, wanted, settings, payloads, message):
    worker = token_client("worker")
    row = claim(worker)["populations"][0]
    response = worker.post(
        upload_url(row["id"]), {"worker": "gpu-1", "generation_ms": 5, "images": files(*payloads)}, format="multipart"
    )
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
    population = Population.objects.get(pk=row["id"])
    assert population.status == "generating"
    assert not Image.objects.exists()
    assert media_files(settings) == []


def test_a_gif_and_an_oversized_file_are_refused(token_client, wanted, settings):
    worker = token_client("worker")
    row = claim(worker)["populations"][0]
    gif = io.BytesIO()
    PILImage.new("RGB", (4, 4)).save(gif, format="GIF")
    response = worker.post(
        upload_url(row["id"]),
        {"worker": "gpu-1", "generation_ms": 5, "images": files(png(), gif.getvalue(), png())},
        format="multipart",
    )
    assert response.status_code == 400
    assert "a GIF file; upload PNG, JPEG or WebP" in response.json()["error"]["message"]
    settings.GENERATION_UPLOAD_MAX_BYTES = 50
    response = worker.post(
        upload_url(row["id"]),
        {"worker": "gpu-1", "generation_ms": 5, "images": files(png(), png(), png())},
        format="multipart",
    )
    assert response.status_code == 400
    assert "is more than the limit of 50" in response.json()["error"]["message"]
    assert Population.objects.get(pk=row["id"]).status == "generating"


def test_an_upload_after_the_lease_was_reclaimed_is_refused_and_the_new_holder_finishes(token_client, wanted):
    slow, fast = token_client("worker"), token_client("worker")
    row = claim(slow, lease_seconds=5)["populations"][0]
    Population.objects.filter(pk=row["id"]).update(lease_until=timezone.now() - timedelta(seconds=1))
    taken = claim(fast, max_images=6)["populations"]
    assert row["id"] in [r["id"] for r in taken]
    late = slow.post(
        upload_url(row["id"]),
        {"worker": "gpu-1", "generation_ms": 5, "images": files(png(), png(), png())},
        format="multipart",
    )
    assert late.status_code == 409
    done = fast.post(
        upload_url(row["id"]),
        {"worker": "gpu-1", "generation_ms": 5, "images": files(png(), png(), png())},
        format="multipart",
    )
    assert done.status_code == 200
    assert Population.objects.get(pk=row["id"]).images.count() == 3


def test_a_failure_requeues_the_population_with_the_reason(token_client, wanted):
    worker = token_client("worker")
    row = claim(worker)["populations"][0]
    response = worker.post(
        f"/api/v1/generation/populations/{row['id']}/failures",
        {"worker": "gpu-1", "error": "CUDA out of memory"},
        format="json",
    )
    assert response.json() == {"status": "pending"}
    population = Population.objects.get(pk=row["id"])
    assert population.status == "pending"
    assert "CUDA out of memory" in population.error


def test_renew_and_release_act_on_the_workers_own_claims(token_client, wanted):
    worker = token_client("worker")
    rows = claim(worker, max_images=6)["populations"]
    ids = [row["id"] for row in rows]
    renewed = worker.post(
        "/api/v1/generation/leases", {"worker": "gpu-1", "populations": ids, "lease_seconds": 600}, format="json"
    )
    assert renewed.json() == {"held": 2}
    assert all(p.lease_until > timezone.now() + timedelta(seconds=500) for p in Population.objects.filter(pk__in=ids))
    # Another process of the same token under another label holds nothing.
    other = worker.post("/api/v1/generation/releases", {"worker": "gpu-2", "populations": ids}, format="json")
    assert other.json() == {"released": 0}
    released = worker.post("/api/v1/generation/releases", {"worker": "gpu-1", "populations": ids}, format="json")
    assert released.json() == {"released": 2}
    assert set(Population.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"pending"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"max_images": 0}, "max_images"),
        ({"max_images": 10**12}, "max_images"),
        ({"max_images": 3, "worker": "gpu 1; drop table"}, "worker"),
        ({"max_images": 3, "lease_seconds": -5}, "lease_seconds"),
        ({}, "max_images"),
    ],
)
def test_a_bad_claim_names_the_field_and_claims_nothing(token_client, wanted, body, field):
    response = token_client("worker").post(CLAIMS, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(f"{field}:")
    assert not Population.objects.exists()
