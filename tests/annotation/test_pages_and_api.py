"""The campaign list page, the campaigns API, and an admin page for every model."""

from __future__ import annotations

from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command
from django.urls import reverse

from annotation.models import Campaign
from tests.factories import CampaignFactory, CriterionFactory, VoteFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo():
    call_command("seed_demo", stdout=StringIO())
    return Campaign.objects.get(slug="demo")


def test_campaign_list_shows_open_public_campaigns_only(client, demo):
    CampaignFactory(title="A secret study", access=Campaign.Access.INVITE)
    CampaignFactory(title="A draft study", status=Campaign.Status.DRAFT)
    page = client.get("/").content.decode()
    assert demo.title in page
    assert "14 prompts · 4 generators · 6 images per side" in page
    assert "A secret study" not in page
    assert "A draft study" not in page


def test_campaigns_api_lists_and_describes_a_campaign_with_its_criteria(client, demo):
    listing = client.get("/api/v1/campaigns/").json()
    assert [c["slug"] for c in listing] == ["demo"]
    assert listing[0]["population_size"] == 6
    detail = client.get("/api/v1/campaigns/demo/").json()
    assert [c["key"] for c in detail["criteria"]] == ["diversity", "quality"]
    assert detail["prompt_count"] == 14


def test_unknown_campaign_is_a_404_in_the_one_error_shape(client):
    response = client.get("/api/v1/campaigns/nope/")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "no campaign with slug 'nope'"}}


def test_openapi_schema_describes_the_campaign_endpoints(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert "/api/v1/campaigns/{slug}/" in response.content.decode()


def test_every_model_has_a_working_admin_list_and_change_page(admin_client, demo):
    vote = VoteFactory()
    CriterionFactory(campaign=vote.comparison.campaign)
    for app in ("generation", "annotation", "arena"):
        for model in apps.get_app_config(app).get_models():
            opts = model._meta
            changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
            assert admin_client.get(changelist).status_code == 200, changelist
            obj = model.objects.first()
            if obj is not None:
                change = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
                assert admin_client.get(change).status_code == 200, change


def test_admin_shows_the_demo_campaign_with_its_criteria(admin_client, demo):
    page = admin_client.get(reverse("admin:annotation_campaign_change", args=[demo.pk])).content.decode()
    assert "Which set better shows the range" in page
    assert "diverse-prompting" in page


def test_votes_cannot_be_deleted_from_the_admin(admin_client):
    vote = VoteFactory()
    response = admin_client.post(reverse("admin:arena_vote_delete", args=[vote.pk]), {"post": "yes"})
    assert response.status_code == 403
    assert type(vote).objects.filter(pk=vote.pk).exists()
