"""No public surface ties a set the arena can still serve to the generator that made it.

The attack (issue 29): GET /api/v1/campaigns/SLUG/metrics/prompts/ID needed no login and listed, per
generator, its newest ready sets with the very image URLs comparisons serve; a visitor who saved that
map named the sides of their next comparisons before voting. Here an anonymous visitor (and a plain
logged-in user, and a researcher of another campaign) walks every public read surface: the metrics
API and its per-prompt view, the leaderboard API, the pages, the live board socket and the schema,
and looks for any image URL, storage name or population id of a servable set next to a generator.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from annotation.selectors import campaign_populations
from annotation.services import grant_researcher_role
from config.asgi import application
from generation.models import Image
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db


def servable_sets(campaign) -> tuple[set[str], set[int]]:  # type: ignore[no-untyped-def]
    """Every URL and storage name of the images of sets the campaign can still serve, and their population ids."""
    populations = set(campaign_populations(campaign, servable=True).values_list("pk", flat=True))
    assert populations, "the fixture must leave sets to serve"
    marks: set[str] = set()
    for image in Image.objects.filter(population_id__in=populations):
        # The URL without its query: on S3 a presigned URL's signature changes with the second it is made.
        marks |= {image.file.url.split("?", 1)[0], image.file.name, image.file.name.rsplit("/", 1)[-1]}
    return marks, populations


def generator_names(campaign) -> set[str]:  # type: ignore[no-untyped-def]
    return {name for pair in campaign.generators.values_list("name", "display_name") for name in pair if name}


def public_bodies(client: Client, campaign) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Every public read a visitor can make about the campaign, by URL (the comparison flow aside)."""
    slug = campaign.slug
    urls = [
        "/api/v1/campaigns/",
        f"/api/v1/campaigns/{slug}/",
        f"/api/v1/campaigns/{slug}/metrics",
        f"/api/v1/campaigns/{slug}/queue",
        f"/api/v1/campaigns/{slug}/leaderboard",
        f"/api/v1/campaigns/{slug}/leaderboard?intervals=bootstrap",
        f"/api/v1/campaigns/{slug}/leaderboard?intervals=sandwich",
        "/api/schema/",
        "/",
        f"/c/{slug}/leaderboard/",
    ]
    urls += [f"/api/v1/campaigns/{slug}/leaderboard?criterion={key}" for key in ("diversity", "quality")]
    urls += [f"/api/v1/campaigns/{slug}/metrics/prompts/{pk}" for pk in campaign.prompts.values_list("pk", flat=True)]
    return {url: client.get(url).content.decode() for url in urls}


def ties(body: str, marks: set[str], populations: set[int], names: set[str]) -> list[str]:
    """What in one response ties a servable set to a generator: a set's image beside a generator's name, or a
    JSON object that names both a generator and a servable population."""
    found = []
    if any(mark in body for mark in marks) and any(name in body for name in names):
        found.append("an image of a servable set and a generator name in one response")
    try:
        data = json.loads(body)
    except ValueError:
        return found

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("population") in populations and ({node.get("generator"), node.get("display_name")} & names):
                found.append(f"population {node['population']} named as {node.get('generator')}")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(data)
    return found


def test_no_public_read_maps_a_servable_set_to_its_generator(arena_campaign):  # noqa: F811
    # Given a public campaign with sets ready to serve, and three kinds of visitor who do not manage it,
    campaign = arena_campaign(generators=3, prompts=2, per_queue=2)
    marks, populations = servable_sets(campaign)
    names = generator_names(campaign)
    user_model = get_user_model()
    plain = Client()
    plain.force_login(user_model.objects.create_user("visitor", password="x"))
    other = Client()
    outsider = user_model.objects.create_user("other-researcher", password="x", is_staff=True)
    grant_researcher_role(user=outsider)
    other.force_login(outsider)
    for label, client in (("anonymous", Client()), ("logged-in", plain), ("another campaign's researcher", other)):
        # when they read everything public about it,
        for url, body in public_bodies(client, campaign).items():
            # then no response ties a servable set to a generator,
            assert not ties(body, marks, populations, names), (label, url)
            # and no image of a set still to be served appears at all outside the comparisons themselves.
            assert not [mark for mark in marks if mark in body], (label, url)


def test_the_per_prompt_images_are_refused_to_visitors_with_a_reason(arena_campaign):  # noqa: F811
    campaign = arena_campaign(generators=2, prompts=1)
    prompt = campaign.prompts.get()
    response = Client().get(f"/api/v1/campaigns/{campaign.slug}/metrics/prompts/{prompt.pk}")
    assert response.status_code == 403
    error = response.json()["error"]
    assert "manage" in error["message"]


def test_the_campaign_s_managers_still_see_each_generator_s_images_for_a_prompt(arena_campaign):  # noqa: F811
    # Given a campaign owned by a researcher, and a staff member who manages every campaign,
    campaign = arena_campaign(generators=2, prompts=1)
    prompt = campaign.prompts.get()
    user_model = get_user_model()
    owner = user_model.objects.create_user("owner", password="x", is_staff=True)
    grant_researcher_role(user=owner)
    campaign.owner = owner
    campaign.save(update_fields=["owner"])
    staff = user_model.objects.create_user("staff", password="x", is_staff=True)
    marks, _ = servable_sets(campaign)
    for user in (owner, staff):
        client = Client()
        client.force_login(user)
        # when they open the prompt's view,
        body = client.get(f"/api/v1/campaigns/{campaign.slug}/metrics/prompts/{prompt.pk}").json()
        # then each generator's newest set is there, by name, with its images.
        assert {side["generator"] for side in body["generators"]} == {"secret-generator-0", "secret-generator-1"}
        assert all(len(side["images"]) == campaign.population_size for side in body["generators"])
        assert {image["url"].split("?", 1)[0] for side in body["generators"] for image in side["images"]} <= marks
        # and the leaderboard page offers the section only to them.
        page = client.get(f"/c/{campaign.slug}/leaderboard/").content.decode()
        assert 'id="prompt-view"' in page
    assert 'id="prompt-view"' not in Client().get(f"/c/{campaign.slug}/leaderboard/").content.decode()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_live_board_socket_carries_no_set_or_image(arena_campaign):  # noqa: F811
    campaign = await sync_to_async(arena_campaign)(generators=2, prompts=1)
    marks, populations = await sync_to_async(servable_sets)(campaign)
    names = await sync_to_async(generator_names)(campaign)
    communicator = WebsocketCommunicator(
        application,
        f"/ws/campaigns/{campaign.slug}/leaderboard/",
        headers=[(b"host", b"localhost"), (b"origin", b"http://localhost")],
    )
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"criterion": "diversity", "category": ""})
    body = json.dumps(await communicator.receive_json_from(timeout=10))
    await communicator.disconnect()
    assert not ties(body, marks, populations, names)
    assert not [mark for mark in marks if mark in body]


def test_a_campaign_nobody_may_see_answers_as_before(db):  # type: ignore[no-untyped-def]
    from annotation.models import Campaign

    CampaignFactory(slug="draft", status=Campaign.Status.DRAFT)
    assert Client().get("/api/v1/campaigns/draft/metrics/prompts/1").status_code == 404
