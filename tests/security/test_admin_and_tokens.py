"""Tokens, the admin and prompts stay within a user's role and study (issue 30, items 3, 4 and 5).

Played as the issue's reporter did: two researchers, `alice` and `bob`, each with a campaign, a staff
account given a few admin permissions, the admin and the JSON API through Django's test client.
"""

from __future__ import annotations

import io
from html.parser import HTMLParser
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client
from PIL import Image as PILImage
from rest_framework.test import APIClient

from access.models import ApiToken
from access.services import create_api_token
from annotation.models import Campaign, Criterion
from annotation.selectors import campaign_populations
from annotation.services import grant_researcher_role
from generation.models import Demand, Population, Prompt
from tests.factories import CampaignFactory, GeneratorFactory, PopulationFactory, PromptFactory

pytestmark = pytest.mark.django_db

CLAIMS = "/api/v1/generation/claims"
FALCON = "confidential product codename falcon"


def researcher(name: str):  # type: ignore[no-untyped-def]
    user = get_user_model().objects.create_user(name, password="x")
    grant_researcher_role(user=user)
    return user


def browser(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


def bearer(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def grant(user, *codenames: str) -> None:  # type: ignore[no-untyped-def]
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))


def generator(name: str, size: int = 32):  # type: ignore[no-untyped-def]
    return GeneratorFactory(name=name, settings={"steps": 2, "width": size, "height": size})


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (width, height), "red").save(buffer, format="PNG")
    return buffer.getvalue()


class _FormValues(HTMLParser):
    """What a browser would post back for the admin's change form, untouched."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, list[str]] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("submit", "button", "file"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            self.values.setdefault(name, []).append(a.get("value") or ("on" if a.get("type") == "checkbox" else ""))
        elif tag == "select" and name:
            self._select = name
            self.values.setdefault(name, [])
        elif tag == "option" and self._select and "selected" in a:
            self.values[self._select].append(a.get("value") or "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.values[name] = [""]

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.values[self._textarea][0] += data.removeprefix("\n") if not self.values[self._textarea][0] else data


def change_form(client: Client, url: str) -> dict[str, Any]:
    parser = _FormValues()
    page = client.get(url)
    assert page.status_code == 200
    parser.feed(page.content.decode())
    return {name: values if len(values) != 1 else values[0] for name, values in parser.values.items()}


@pytest.fixture
def root():  # type: ignore[no-untyped-def]
    return get_user_model().objects.create_superuser("root", password="x")


@pytest.fixture
def studies():  # type: ignore[no-untyped-def]
    """Alice's and Bob's campaigns: Bob's draft holds a confidential prompt with image sets made for it."""
    alice, bob = researcher("alice"), researcher("bob")
    small_a, small_b = generator("small-a"), generator("small-b")
    mine = CampaignFactory(slug="alices", owner=alice, status=Campaign.Status.DRAFT, population_size=2)
    mine.generators.add(small_a, small_b)
    mine.prompts.add(PromptFactory(caption="a nurse", category="health", owner=alice))
    Criterion.objects.create(campaign=mine, key="quality", question="Which set looks better?")
    theirs = CampaignFactory(slug="bobs", owner=bob, status=Campaign.Status.DRAFT, population_size=2)
    theirs.generators.add(small_a, small_b)
    falcon = PromptFactory(caption=FALCON, category="", owner=bob)
    theirs.prompts.add(falcon)
    for made_by in (small_a, small_b):
        PopulationFactory(generator=made_by, prompt=falcon, size=2)
    return alice, bob, mine, theirs


# --- item 3: token minting stays with the user and their role -----------------------------------------


def test_a_staff_user_with_token_permissions_cannot_mint_a_superusers_token_in_the_admin(root, studies):
    alice, _, _, _ = studies
    grant(alice, "add_apitoken", "view_apitoken")
    client = browser(alice)
    # The request: a token for the superuser with export, manage and read.
    client.post(
        "/admin/access/apitoken/add/",
        {
            "name": "mine",
            "user": root.pk,
            "scopes": ["export", "manage", "read"],
            "expires_at_0": "",
            "expires_at_1": "",
        },
    )
    assert not ApiToken.objects.filter(user=root).exists()
    token = ApiToken.objects.get()
    assert token.user == alice
    # Whatever she got reaches only what Alice herself may: Bob's prompts answer as if absent.
    issued = create_api_token(user=alice, name="probe", scopes=["read", "manage"])
    assert bearer(issued.key).get("/api/v1/campaigns/bobs/prompts").status_code == 404
    # The admin tells her why: the owner field is gone, and the page says tokens are her own.
    page = client.get("/admin/access/apitoken/add/").content.decode()
    assert 'name="user"' not in page
    assert "only for yourself" in page


def test_a_researcher_gets_no_worker_scope_and_a_participant_no_staff_scope(studies):
    alice, _, _, _ = studies
    grant(alice, "add_apitoken", "view_apitoken")
    response = browser(alice).post(
        "/admin/access/apitoken/add/",
        {"name": "gpu", "scopes": ["worker"], "expires_at_0": "", "expires_at_1": ""},
    )
    assert response.status_code == 200  # the form again, with the error
    assert not ApiToken.objects.exists()
    get_user_model().objects.create_user("member", password="x")
    with pytest.raises(CommandError, match="your role does not allow the export scope"):
        call_command("create_api_token", "--user", "member", "--scope", "export", "--name", "x")
    with pytest.raises(CommandError, match="your role does not allow the worker scope"):
        call_command("create_api_token", "--user", "alice", "--scope", "worker", "--name", "x")
    assert not ApiToken.objects.exists()


def test_a_non_superuser_sees_and_revokes_only_their_own_tokens(root, studies):
    alice, bob, _, _ = studies
    grant(alice, "view_apitoken", "change_apitoken")
    bobs = create_api_token(user=bob, name="bobs-laptop", scopes=["read"])
    client = browser(alice)
    assert "bobs-laptop" not in client.get("/admin/access/apitoken/").content.decode()
    client.post("/admin/access/apitoken/", {"action": "revoke", "_selected_action": [bobs.token.pk]})
    assert ApiToken.objects.get(pk=bobs.token.pk).revoked_at is None


def test_a_superuser_may_give_a_service_account_a_worker_token_and_the_admin_says_so(root):
    ops = get_user_model().objects.create_user("ops", password="x")
    client = browser(root)
    assert (
        "As a superuser you may create a token for any user"
        in client.get("/admin/access/apitoken/add/").content.decode()
    )
    client.post(
        "/admin/access/apitoken/add/",
        {"name": "gpu-box", "user": ops.pk, "scopes": ["worker"], "expires_at_0": "", "expires_at_1": ""},
    )
    assert ApiToken.objects.get().user == ops


# --- item 3: worker tokens limited to generators or campaigns ----------------------------------------


@pytest.fixture
def two_queues(root):  # type: ignore[no-untyped-def]
    """Two generators with pending work, the first in campaign `one`, the second in campaign `two`."""
    first, second = generator("first"), generator("second")
    prompt = PromptFactory(caption="a circle")
    for made_by, slug in ((first, "one"), (second, "two")):
        CampaignFactory(slug=slug).generators.add(made_by)
        Demand.objects.create(owner=f"campaign:{slug}", generator=made_by, prompt=prompt, size=1, high_watermark=2)
    return first, second


def claimed_generators(client: APIClient) -> set[str]:
    response = client.post(CLAIMS, {"max_images": 8, "worker": "gpu"}, format="json")
    assert response.status_code == 200, response.json()
    return {row["generator"]["name"] for row in response.json()["populations"]}


def test_a_worker_token_limited_to_a_campaign_claims_only_its_generators_work(root, two_queues):
    out = StringIO()
    call_command(
        "create_api_token", "--user", "root", "--scope", "worker", "--name", "w", "--campaign", "one", stdout=out
    )
    limited = bearer(out.getvalue().strip())
    assert claimed_generators(limited) == {"first"}
    assert claimed_generators(limited) == set()  # the second generator's work is left for others
    unlimited = bearer(create_api_token(user=root, name="any", scopes=["worker"]).key)
    assert claimed_generators(unlimited) == {"second"}


def test_a_worker_token_limited_to_a_generator_refuses_renew_upload_and_fail_outside_it(root, two_queues):
    first, second = two_queues
    issued = create_api_token(user=root, name="w", scopes=["worker"], worker_limits={"generators": [second.pk]})
    client = bearer(issued.key)
    assert claimed_generators(client) == {"second"}
    held = Population.objects.filter(generator=second, status="generating").first()
    assert held is not None
    # The limit narrows afterwards (as a campaign's generators change): the held work is now outside it.
    ApiToken.objects.filter(pk=issued.token.pk).update(worker_limits={"generators": [first.pk]})
    renew = client.post("/api/v1/generation/leases", {"worker": "gpu", "populations": [held.pk]}, format="json")
    upload = client.post(
        f"/api/v1/generation/populations/{held.pk}/images",
        {"worker": "gpu", "generation_ms": 1, "images": [SimpleUploadedFile("0.png", png(32, 32))]},
        format="multipart",
    )
    fail = client.post(
        f"/api/v1/generation/populations/{held.pk}/failures", {"worker": "gpu", "error": "x"}, format="json"
    )
    for response in (renew, upload, fail):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "outside_token_limits"
    held.refresh_from_db()
    assert (held.status, held.images.count()) == ("generating", 0)


def test_limits_need_the_worker_scope_and_name_what_exists(root, two_queues):
    with pytest.raises(CommandError, match="no generators named 'nope'"):
        call_command("create_api_token", "--user", "root", "--scope", "worker", "--name", "w", "--generator", "nope")
    with pytest.raises(CommandError, match="only a token with the worker scope"):
        call_command("create_api_token", "--user", "root", "--scope", "read", "--name", "w", "--campaign", "one")
    assert not ApiToken.objects.exists()


# --- item 4: the admin goes through the services; uploads keep their generator's size -----------------


def test_the_campaign_change_form_cannot_add_a_generator_of_another_image_size(studies):
    alice, _, mine, _ = studies
    big = generator("big", size=64)
    client = browser(alice)
    url = f"/admin/annotation/campaign/{mine.pk}/change/"
    data = change_form(client, url)
    data["generators"] = [*data["generators"], str(big.pk)]
    response = client.post(url, data)
    assert response.status_code == 200
    page = response.content.decode()
    assert "mixes image sizes" in page
    assert "32x32" in page
    assert "64x64" in page
    assert set(mine.generators.values_list("name", flat=True)) == {"small-a", "small-b"}


def test_the_campaign_change_form_does_not_open_a_campaign_the_actions_do_through_the_service(studies):
    alice, _, mine, _ = studies
    client = browser(alice)
    url = f"/admin/annotation/campaign/{mine.pk}/change/"
    data = change_form(client, url)
    data["status"] = "open"
    client.post(url, data)
    mine.refresh_from_db()
    assert mine.status == "draft"
    assert not Demand.objects.exists()
    # The action opens it through set_campaign_status, which queues its image sets.
    client.post("/admin/annotation/campaign/", {"action": "open_campaigns", "_selected_action": [mine.pk]})
    mine.refresh_from_db()
    assert mine.status == "open"
    assert Demand.objects.count() == 2


def test_an_upload_of_another_size_than_the_generators_is_refused_naming_both(root):
    small = generator("small")
    prompt = PromptFactory(caption="a square")
    Demand.objects.create(owner="campaign:x", generator=small, prompt=prompt, size=2, high_watermark=1)
    client = bearer(create_api_token(user=root, name="w", scopes=["worker"]).key)
    row = client.post(CLAIMS, {"max_images": 2, "worker": "gpu"}, format="json").json()["populations"][0]
    response = client.post(
        f"/api/v1/generation/populations/{row['id']}/images",
        {
            "worker": "gpu",
            "generation_ms": 5,
            "images": [SimpleUploadedFile(f"{i}.png", png(48, 40)) for i in range(2)],
        },
        format="multipart",
    )
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "48x40" in message
    assert "32x32" in message
    population = Population.objects.get(pk=row["id"])
    assert (population.status, population.images.count()) == ("generating", 0)


# --- item 5: prompts stay within their study ----------------------------------------------------------


def test_a_researcher_sees_only_prompts_of_their_campaigns_and_shared_ones_in_the_admin(root, studies):
    alice, _, _, _ = studies
    client = browser(alice)
    listing = client.get("/admin/generation/prompt/").content.decode()
    assert "a nurse" in listing
    assert FALCON not in listing
    falcon = Prompt.objects.get(caption=FALCON)
    assert client.get(f"/admin/generation/prompt/{falcon.pk}/change/").status_code in (302, 404)
    # Staff share a prompt: now every researcher sees it.
    Prompt.objects.filter(pk=falcon.pk).update(is_shared=True)
    assert FALCON in client.get("/admin/generation/prompt/").content.decode()


def test_the_campaign_admin_offers_and_accepts_only_visible_prompts(studies):
    alice, _, mine, _ = studies
    client = browser(alice)
    url = f"/admin/annotation/campaign/{mine.pk}/change/"
    page = client.get(url).content.decode()
    assert FALCON not in page
    data = change_form(client, url)
    falcon = Prompt.objects.get(caption=FALCON)
    data["prompts"] = [*([data["prompts"]] if isinstance(data["prompts"], str) else data["prompts"]), str(falcon.pk)]
    client.post(url, data)
    assert not mine.prompts.filter(pk=falcon.pk).exists()


def test_adding_another_studys_caption_reveals_nothing_and_brings_none_of_its_sets(studies):
    alice, _, mine, theirs = studies
    token = create_api_token(user=alice, name="t", scopes=["manage"]).key
    response = bearer(token).post("/api/v1/campaigns/alices/prompts", {"prompts": [{"caption": FALCON}]}, format="json")
    assert response.status_code == 200, response.json()
    # Counted as new: the answer does not say that another study has this caption.
    assert response.json() == {"created": 1, "existing": 0, "added": 1}
    assert mine.prompts.filter(caption=FALCON).exists()
    # Bob's two image sets for his prompt exist; none of them is one Alice's campaign can show.
    assert campaign_populations(theirs).count() == 2
    assert not campaign_populations(mine).filter(prompt__caption=FALCON).exists()
