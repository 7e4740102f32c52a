"""Images are served under URLs minted per comparison: a set seen revealed once is not recognised by its address.

Before, each side's images were their storage URLs, the same in every comparison: a participant who
recorded the revealed generator of each URL after voting named the sides of later comparisons (and other
sessions') before voting. These tests are that attack and its neighbours: forged URLs, URLs kept after
the vote or after a lease ran out, headers that name the stored file.
"""

from __future__ import annotations

import io
import json
import re
import struct
from datetime import timedelta

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.utils import timezone
from PIL import Image as PILImage

from arena.models import Comparison
from arena.selectors import _caption_and_image_urls
from generation.image_files import PAD_MIN
from generation.models import Image

pytestmark = pytest.mark.django_db

BOTH = {"votes": [{"criterion": "diversity", "choice": "tie"}, {"criterion": "quality", "choice": "tie"}]}
MINTED = re.compile(r"/i/[A-Za-z0-9_-]+/[lr](0|[1-9][0-9]*)/[0-9a-f]{32}\.png")


def next_comparison(client) -> dict:
    response = client.post("/api/v1/campaigns/study/comparisons/next", {}, content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def vote(client, token: str) -> None:
    response = client.post(
        f"/api/v1/comparisons/{token}/votes", {**BOTH, "dwell_ms": 1500}, content_type="application/json"
    )
    assert response.status_code == 200, response.content


def urls_of(payload: dict) -> list[str]:
    return payload["left"]["images"] + payload["right"]["images"]


def urls_by_population(payload: dict) -> dict[int, list[str]]:
    comparison = Comparison.objects.get(token=payload["token"])
    return {
        comparison.left_population_id: payload["left"]["images"],
        comparison.right_population_id: payload["right"]["images"],
    }


def pixels(data: bytes) -> bytes:
    with PILImage.open(io.BytesIO(data)) as image:
        return image.convert("RGB").tobytes()


def png_chunk_types(data: bytes) -> set[bytes]:
    types, position = set(), 8
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        types.add(data[position + 4 : position + 8])
        position += 12 + length
    return types


def noise_png(seed: int) -> bytes:
    buffer = io.BytesIO()
    noise = np.random.default_rng(seed).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    PILImage.fromarray(noise, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def at(moment, monkeypatch) -> None:
    """Fix the clock the image view reads."""
    monkeypatch.setattr("django.utils.timezone.now", lambda: moment)


def test_the_same_set_has_other_urls_in_every_comparison(arena_campaign):  # noqa: F811
    # Given a campaign with one set per generator (every comparison shows the same two sets),
    arena_campaign(generators=2, prompts=1, per_queue=1, votes_per_pair=5)
    # when one session votes and records what it saw, and a second session (a new cookie) asks,
    # (another address and browser: one client is never shown a set it saw revealed, whatever its session)
    first_client = Client()
    second_client = Client(REMOTE_ADDR="198.51.100.7", HTTP_USER_AGENT="another browser")
    first = next_comparison(first_client)
    vote(first_client, first["token"])
    second = next_comparison(second_client)
    seen, again = urls_by_population(first), urls_by_population(second)
    # then the second comparison shows the same sets under URLs the first never had.
    assert set(seen) == set(again)
    assert all(MINTED.fullmatch(url) for url in urls_of(first) + urls_of(second))
    assert not set(urls_of(first)) & set(urls_of(second))
    # And the URLs of one comparison are all different (no set, side or index shares one).
    assert len(set(urls_of(first))) == 12


def test_no_storage_url_reaches_the_payload_or_the_vote_page(client, arena_campaign):  # noqa: F811
    arena_campaign()
    payload = next_comparison(client)
    page = client.get("/c/study/").content.decode()
    text = json.dumps(payload) + page
    stored = list(Image.objects.values_list("file", flat=True))
    assert stored
    for name in stored:
        assert name not in text
        assert name.rsplit("/", 1)[-1] not in text  # not even the file's own random name
    assert "/media/" not in text
    initial = json.loads(re.search(r'<script id="initial-comparison" type="application/json">(.*?)</script>', page)[1])
    assert all(MINTED.fullmatch(url) for url in urls_of(initial))


def test_forged_and_edited_urls_are_refused_alike(client, arena_campaign, django_assert_num_queries):  # noqa: F811
    arena_campaign()
    payload = next_comparison(client)
    url = payload["left"]["images"][1]
    assert MINTED.fullmatch(url)
    assert client.get(url).status_code == 200
    prefix, token, image, name = url.rsplit("/", 3)
    mac = name.removesuffix(".png")
    other = next_comparison(Client())
    assert other["token"] != token
    edited = [
        f"{prefix}/{token}/{image}/{'0' * 32}.png",  # an invented MAC
        f"{prefix}/{token}/{image}/{mac[:-1]}{'a' if mac[-1] != 'a' else 'b'}.png",  # one digit changed
        f"{prefix}/{token}/r1/{mac}.png",  # the other side with this side's MAC
        f"{prefix}/{token}/l2/{mac}.png",  # another picture with this picture's MAC
        f"{prefix}/{other['token']}/{image}/{mac}.png",  # another comparison's token with this MAC
        f"{prefix}/{token[:-1]}/{image}/{mac}.png",  # an unknown token
        f"{prefix}/{token}/{image}/{mac[:16]}.png",  # a shortened MAC
        f"{prefix}/{token}/{image}/{mac}0.png",  # a lengthened MAC
        f"{prefix}/{token}/l99/{mac}.png",  # past the set's end
    ]
    for forged in edited:
        with django_assert_num_queries(0):  # refused on its MAC, before the database is asked
            response = client.get(forged)
        assert response.status_code == 404, forged
        assert not response["Content-Type"].startswith("image/")
    # Nor does the route take another spelling of the same picture.
    assert client.get(f"{prefix}/{token}/l01/{mac}.png").status_code == 404


def test_a_url_past_the_set_end_with_a_valid_mac_is_refused(client, arena_campaign):  # noqa: F811
    from arena.image_urls import mint_image_url

    arena_campaign(size=3)
    payload = next_comparison(client)
    assert client.get(mint_image_url(token=payload["token"], side="l", index=2)).status_code == 200
    assert client.get(mint_image_url(token=payload["token"], side="l", index=3)).status_code == 404


def test_urls_stop_working_soon_after_the_vote(client, arena_campaign, settings, monkeypatch):  # noqa: F811
    settings.COMPARISON_IMAGE_TTL_S = 120
    arena_campaign()
    payload = next_comparison(client)
    vote(client, payload["token"])
    voted_at = Comparison.objects.get(token=payload["token"]).voted_at
    url = payload["right"]["images"][0]
    # While the reveal shows the sets, they still load,
    at(voted_at + timedelta(seconds=119), monkeypatch)
    assert client.get(url).status_code == 200
    # and after the setting's seconds they are gone for good.
    at(voted_at + timedelta(seconds=121), monkeypatch)
    assert client.get(url).status_code == 404


def test_urls_of_a_lease_that_ran_out_unvoted_are_refused(client, arena_campaign, monkeypatch):  # noqa: F811
    arena_campaign()
    payload = next_comparison(client)
    comparison = Comparison.objects.get(token=payload["token"])
    url = payload["left"]["images"][0]
    at(comparison.lease_until - timedelta(seconds=1), monkeypatch)
    assert client.get(url).status_code == 200
    at(comparison.lease_until + timedelta(seconds=1), monkeypatch)
    assert client.get(url).status_code == 404
    # Also once issuing has marked it expired, whatever the clock says.
    Comparison.objects.filter(pk=comparison.pk).update(status=Comparison.Status.EXPIRED)
    at(comparison.issued_at, monkeypatch)
    assert client.get(url).status_code == 404


def test_the_pixels_served_are_the_stored_ones_under_headers_that_name_nothing(client, arena_campaign):  # noqa: F811
    arena_campaign()
    payload = next_comparison(client)
    comparison = Comparison.objects.get(token=payload["token"])
    stored = {image.index: image for image in Image.objects.filter(population_id=comparison.right_population_id)}
    for index, url in enumerate(payload["right"]["images"]):
        response = client.get(url)
        assert response.status_code == 200
        with stored[index].file.open("rb") as handle:
            assert pixels(response.content) == pixels(handle.read())
        assert png_chunk_types(response.content) == {b"IHDR", b"IDAT", b"IEND"}
        assert response["Content-Type"] == "image/png"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Cache-Control"].startswith("private")
        assert "Last-Modified" not in response
        assert "ETag" not in response
        assert "Content-Disposition" not in response
        headers = json.dumps(dict(response.headers))
        assert stored[index].file.name.rsplit("/", 1)[-1].split(".")[0] not in headers


def test_minting_keeps_the_payload_at_one_query(arena_campaign, django_assert_num_queries):  # noqa: F811
    from tests.factories import ParticipantFactory

    campaign = arena_campaign()
    left, right = campaign.generators.all()[0], campaign.generators.all()[1]
    comparison = Comparison.objects.create(
        campaign=campaign,
        participant=ParticipantFactory(),
        prompt=campaign.prompts.get(),
        left_population=left.populations.first(),
        right_population=right.populations.first(),
        lease_until=timezone.now() + timedelta(minutes=5),
    )
    with django_assert_num_queries(1):
        _, left_urls, right_urls = _caption_and_image_urls(comparison)
    assert len(left_urls) == len(right_urls) == 6
    assert all(MINTED.fullmatch(url) for url in left_urls + right_urls)


@pytest.mark.parametrize("recorded", [True, False], ids=["sizes recorded", "stored before sizes were recorded"])
def test_every_picture_of_a_comparison_is_served_at_one_length_whatever_it_shows(client, arena_campaign, recorded):  # noqa: F811
    # Given a comparison whose left set is noise (its PNGs compress badly) and whose right set is flat colour,
    arena_campaign()
    payload = next_comparison(client)
    comparison = Comparison.objects.get(token=payload["token"])
    for image in Image.objects.filter(population_id=comparison.left_population_id):
        data = noise_png(image.index)
        image.file.save(f"noise-{image.index}.png", ContentFile(data), save=False)
        image.byte_size = len(data) if recorded else None
        image.save()
    if not recorded:
        Image.objects.filter(population_id=comparison.right_population_id).update(byte_size=None)
    both = [comparison.left_population_id, comparison.right_population_id]
    stored = {image.file.name: image.file.size for image in Image.objects.filter(population_id__in=both)}
    assert max(stored.values()) > 2 * min(stored.values())  # the sizes alone would tell the sides apart
    # when a participant fetches every picture before voting,
    lengths = [len(client.get(url).content) for url in urls_of(payload)]
    # then every picture has the same length, so the sizes say nothing about which side is which,
    assert lengths == [max(stored.values()) + PAD_MIN] * len(lengths)
    # and each still shows its own stored pixels.
    for url, image in zip(
        payload["left"]["images"], Image.objects.filter(population_id=comparison.left_population_id), strict=True
    ):
        assert pixels(client.get(url).content) == pixels(noise_png(image.index))
