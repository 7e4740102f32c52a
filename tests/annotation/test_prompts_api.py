"""The prompts API: staff who manage a campaign list and add its prompts, all or none."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from access.services import create_api_token
from annotation.services import grant_researcher_role, set_campaign_status
from generation.models import Demand, Prompt
from tests.factories import CampaignFactory, CriterionFactory, GeneratorFactory, PromptFactory

pytestmark = pytest.mark.django_db


def logged_in(user: User) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def with_token(user: User, *scopes: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {create_api_token(user=user, name='t', scopes=scopes).key}")
    return client


@pytest.fixture
def staff() -> User:
    return User.objects.create_user("staff", password="pw", is_staff=True)


@pytest.fixture
def campaign():  # type: ignore[no-untyped-def]
    campaign = CampaignFactory(slug="faces")
    campaign.prompts.add(PromptFactory(caption="a nurse", category="health"))
    return campaign


def test_staff_list_a_campaigns_prompts(staff, campaign):
    response = logged_in(staff).get("/api/v1/campaigns/faces/prompts")
    assert response.status_code == 200
    assert [(p["caption"], p["category"]) for p in response.json()] == [("a nurse", "health")]


def test_adding_prompts_creates_new_ones_reuses_known_ones_and_counts_both(staff, campaign):
    PromptFactory(caption="a pilot", category="transport")
    body = {"prompts": [{"caption": "a  pilot ", "category": "transport"}, {"caption": "a judge"}]}
    response = with_token(staff, "manage").post("/api/v1/campaigns/faces/prompts", body, format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"created": 1, "existing": 1, "added": 2}
    assert set(campaign.prompts.values_list("caption", "category")) == {
        ("a nurse", "health"),
        ("a pilot", "transport"),
        ("a judge", ""),
    }


def test_one_bad_row_adds_nothing_and_every_bad_row_is_named(staff, campaign):
    body = {
        "prompts": [
            {"caption": "a judge"},
            {"caption": ""},
            {"category": "law"},
            "a lawyer",
            {"caption": "a judge"},
            {"caption": "x" * 1001},
        ]
    }
    response = with_token(staff, "manage").post("/api/v1/campaigns/faces/prompts", body, format="json")
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    for part in (
        "prompts[1]: 'caption' is empty",
        "prompts[2]: missing required field 'caption'",
        "prompts[3]: expected an object",
        "prompts[4]: repeats prompts[0] ('a judge', category '')",
        "prompts[5]: 'caption' is 1001 characters; at most 1000",
    ):
        assert part in message
    assert list(campaign.prompts.values_list("caption", flat=True)) == ["a nurse"]
    assert Prompt.objects.count() == 1


def test_prompts_added_to_an_open_campaign_are_queued_for_generation(staff, campaign):
    for _ in range(2):
        campaign.generators.add(GeneratorFactory())
    CriterionFactory(campaign=campaign)
    set_campaign_status(campaign=campaign, status="open")
    before = Demand.objects.count()
    response = logged_in(staff).post(
        "/api/v1/campaigns/faces/prompts", {"prompts": [{"caption": "a cook"}]}, format="json"
    )
    assert response.status_code == 200
    cook = Prompt.objects.get(caption="a cook")
    assert Demand.objects.filter(prompt=cook).count() == 2
    assert Demand.objects.count() == before + 2


def test_who_may_list_and_add(staff, campaign):
    alice = User.objects.create_user("alice", password="pw")
    grant_researcher_role(user=alice)
    own = CampaignFactory(slug="alices", owner=alice)
    voter = User.objects.create_user("voter", password="pw")
    add = {"prompts": [{"caption": "a baker"}]}
    # A researcher manages only their own campaign; another one answers as if it did not exist.
    assert logged_in(alice).get("/api/v1/campaigns/alices/prompts").status_code == 200
    assert logged_in(alice).get("/api/v1/campaigns/faces/prompts").status_code == 404
    assert with_token(alice, "manage").post("/api/v1/campaigns/faces/prompts", add, format="json").status_code == 404
    # A participant, an anonymous caller and tokens without the right scope get nothing.
    assert logged_in(voter).get("/api/v1/campaigns/faces/prompts").status_code == 403
    anonymous = APIClient().get("/api/v1/campaigns/faces/prompts")
    assert (anonymous.status_code, anonymous.json()["error"]["code"]) == (403, "not_authenticated")
    assert with_token(staff, "read").get("/api/v1/campaigns/faces/prompts").status_code == 200
    refused = with_token(staff, "read").post("/api/v1/campaigns/faces/prompts", add, format="json")
    assert refused.status_code == 403
    assert "lacks the 'manage' scope" in refused.json()["error"]["message"]
    assert with_token(staff, "worker", "vote").get("/api/v1/campaigns/faces/prompts").status_code == 403
    assert not Prompt.objects.filter(caption="a baker").exists()
    assert own.prompts.count() == 0


def test_a_session_must_send_its_csrf_token_to_add(staff, campaign):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(staff)
    response = client.post("/api/v1/campaigns/faces/prompts", {"prompts": [{"caption": "a baker"}]}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]
    assert not Prompt.objects.filter(caption="a baker").exists()
