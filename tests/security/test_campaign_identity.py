"""A campaign's data follows the campaign, not its slug: a new campaign given an old slug inherits nothing.

Each scenario renames a campaign the way the admin could before slugs froze (a plain row update, as a
campaign renamed on an older version), gives its old slug to a new campaign, and checks that nothing of
the first reaches the second: its exports, a browser's invite grant or crowd admission, its generation demand.
"""

from __future__ import annotations

import io
import zipfile

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.test import Client
from rest_framework.test import APIClient

from annotation.models import Campaign, Criterion
from annotation.services import grant_researcher_role, set_campaign_status
from core.errors import ApplicationError
from generation.models import Demand
from tests.factories import CampaignFactory, GeneratorFactory, PromptFactory

pytestmark = [pytest.mark.django_db]

EXPORTS = "/api/v1/campaigns/{slug}/exports"


def researcher(name: str):
    user = get_user_model().objects.create_user(name, password="x")
    grant_researcher_role(user=user)
    return user


def api_client(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def legacy_rename(campaign: Campaign, slug: str) -> None:
    """A rename as the admin saved it before slugs froze: the row changes, nothing else does."""
    Campaign.objects.filter(pk=campaign.pk).update(slug=slug)
    campaign.refresh_from_db()


def invite_only(slug: str) -> Campaign:
    campaign = CampaignFactory(slug=slug, access=Campaign.Access.INVITE)
    Criterion.objects.create(campaign=campaign, key="quality", question="Which set looks better?")
    return campaign


@pytest.fixture
def exports_root(settings, tmp_path):
    settings.EXPORTS_ROOT = tmp_path / "exports"
    return settings.EXPORTS_ROOT


def test_a_new_campaign_with_an_old_slug_lists_and_serves_none_of_the_old_campaigns_exports(
    arena_campaign,  # noqa: F811
    exports_root,
):
    # Given Bob's campaign `bobs` with an export of its votes on the server
    bob, alice = researcher("bob"), researcher("alice")
    bobs = arena_campaign()
    bobs.owner = bob
    bobs.save()
    legacy_rename(bobs, "bobs")
    made = api_client(bob).post(EXPORTS.format(slug="bobs"), {"format": "votes-csv"}, format="json")
    assert made.status_code == 201, made.content
    name = made.json()["name"]
    # When Bob renames it and Alice creates a new campaign with the slug `bobs`
    legacy_rename(bobs, "bobs-2024")
    CampaignFactory(slug="bobs", owner=alice, status=Campaign.Status.DRAFT)
    # Then Alice's campaign has no exports, and Bob's is not hers to download
    alice_api = api_client(alice)
    listed = alice_api.get(EXPORTS.format(slug="bobs"))
    assert listed.status_code == 200
    assert listed.json() == []
    assert alice_api.get(f"{EXPORTS.format(slug='bobs')}/{name}.zip").status_code == 404
    page = Client()
    page.force_login(alice)
    assert page.get(f"/admin/exports/campaigns/bobs/{name}.zip").status_code == 404
    # And Bob still finds and downloads his export under the campaign's new slug
    bob_api = api_client(bob)
    assert [e["name"] for e in bob_api.get(EXPORTS.format(slug="bobs-2024")).json()] == [name]
    download = bob_api.get(f"{EXPORTS.format(slug='bobs-2024')}/{name}.zip")
    assert download.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    assert any(entry.endswith("/votes.csv") for entry in archive.namelist())


def test_an_invite_granted_for_an_old_slug_does_not_open_a_new_invite_only_campaign_given_that_slug():
    # Given a browser that opened the invite link of `inv-old`
    old = invite_only("inv-old")
    browser = Client()
    assert browser.get(f"/c/inv-old/?invite={old.invite_token}").status_code == 200
    assert browser.get("/c/inv-old/").status_code == 200
    # When that campaign is renamed and a new invite-only campaign is given the slug `inv-old`
    legacy_rename(old, "inv-older")
    invite_only("inv-old")
    # Then the browser is as much a stranger to the new campaign as a fresh one
    assert Client().get("/c/inv-old/").status_code == 404
    assert browser.get("/c/inv-old/").status_code == 404
    # And its grant still opens the campaign it was given for, at its new address
    assert browser.get("/c/inv-older/").status_code == 200


def test_a_crowd_admission_does_not_carry_over_to_a_new_crowd_campaign_given_the_old_slug(arena_campaign):  # noqa: F811
    # Given a Prolific worker admitted to the Prolific campaign `study`, who votes there
    old = arena_campaign(per_queue=4)
    Campaign.objects.filter(pk=old.pk).update(access=Campaign.Access.PROLIFIC)
    worker = Client()
    worker.get("/c/study/?PROLIFIC_PID=p-1&STUDY_ID=s-1&SESSION_ID=x-1")
    issued = worker.post("/api/v1/campaigns/study/comparisons/next", {}, content_type="application/json")
    assert issued.status_code == 200, issued.content
    # When it is renamed and a new Prolific campaign takes the slug `study`
    legacy_rename(old, "study-2024")
    new = CampaignFactory(slug="study", access=Campaign.Access.PROLIFIC, population_size=old.population_size)
    Criterion.objects.create(campaign=new, key="diversity", question="Which set is more diverse?")
    new.generators.set(old.generators.all())
    new.prompts.set(old.prompts.all())
    # Then the worker must arrive from Prolific to vote in it, as anyone else must
    refused = worker.post("/api/v1/campaigns/study/comparisons/next", {}, content_type="application/json")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "crowd_only"


def test_opening_a_new_campaign_with_an_old_slug_leaves_the_old_campaigns_generation_queues_alone():
    # Given Bob's open campaign `bobs`, whose queues are wanted
    generators = [GeneratorFactory(name=f"g{i}", settings={"width": 32, "height": 32}) for i in range(2)]
    bobs = CampaignFactory(slug="bobs", status=Campaign.Status.DRAFT)
    bobs.generators.set(generators)
    bobs.prompts.set([PromptFactory(caption="a red circle")])
    Criterion.objects.create(campaign=bobs, key="quality", question="Which set looks better?")
    set_campaign_status(campaign=bobs, status=Campaign.Status.OPEN)
    wanted = Demand.objects.count()
    assert wanted == 2
    # When it is renamed and a new campaign `bobs` opens with a prompt of its own
    legacy_rename(bobs, "bobs-2024")
    alices = CampaignFactory(slug="bobs", status=Campaign.Status.DRAFT)
    alices.generators.set(generators)
    alices.prompts.set([PromptFactory(caption="a blue square")])
    Criterion.objects.create(campaign=alices, key="quality", question="Which set looks better?")
    set_campaign_status(campaign=alices, status=Campaign.Status.OPEN)
    # Then Bob's queues are still wanted beside Alice's
    assert Demand.objects.count() == 4
    assert set(Demand.objects.values_list("prompt__caption", flat=True)) == {"a red circle", "a blue square"}


def test_a_slug_is_frozen_once_the_campaign_has_left_draft(client):
    from annotation.services import rename_campaign

    # Given an open campaign and a draft one
    live = CampaignFactory(slug="live", status=Campaign.Status.OPEN)
    draft = CampaignFactory(slug="sketch", status=Campaign.Status.DRAFT)
    # Then the model refuses to rename the open one, naming the field
    live.slug = "renamed"
    with pytest.raises(ValidationError) as refused:
        live.full_clean()
    assert "slug" in refused.value.message_dict
    with pytest.raises(ValidationError):
        live.save()
    assert Campaign.objects.get(pk=live.pk).slug == "live"
    # And so does the service, while a draft is renamed freely
    live.refresh_from_db()
    with pytest.raises(ApplicationError) as service_refused:
        rename_campaign(campaign=live, slug="renamed")
    assert "slug" in service_refused.value.message
    assert rename_campaign(campaign=draft, slug="sketch-2").slug == "sketch-2"
    # A campaign paused or put back into draft after it ran keeps its slug too
    set_campaign_status(campaign=live, status=Campaign.Status.PAUSED)
    with pytest.raises(ApplicationError):
        rename_campaign(campaign=live, slug="renamed")


def test_the_admin_shows_an_opened_campaigns_slug_read_only_and_keeps_it(client):
    admin = get_user_model().objects.create_superuser("root", password="x")
    client.force_login(admin)
    live = CampaignFactory(slug="live", status=Campaign.Status.OPEN)
    page = client.get(f"/admin/annotation/campaign/{live.pk}/change/")
    assert page.status_code == 200
    assert 'name="slug"' not in page.content.decode()
    draft = CampaignFactory(slug="sketch", status=Campaign.Status.DRAFT)
    assert 'name="slug"' in client.get(f"/admin/annotation/campaign/{draft.pk}/change/").content.decode()
