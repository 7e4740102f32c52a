"""A crowd campaign opens only with what its platform needs; an arrival for another study is refused.

URL parameters are not authenticated: anyone can type `?PROLIFIC_PID=...&STUDY_ID=...&SESSION_ID=...`.
The campaign's own study id is what ties arrivals to the study the researcher pays for, so a Prolific
campaign without one must not open (before, it admitted any invented id, each a fresh participant
with a fresh quota and the completion code). An MTurk campaign without a quota never reaches the
hand-back form, so no worker could submit the assignment they were paid for.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from annotation.models import Campaign, Criterion, Participant
from annotation.services import grant_researcher_role, set_campaign_status
from arena.models import Comparison
from core.errors import ApplicationError
from generation.models import Demand
from tests.factories import CampaignFactory, GeneratorFactory, PromptFactory

pytestmark = [pytest.mark.django_db]


def draft(access: str, **fields: object) -> Campaign:
    """A draft crowd campaign that has everything a public campaign needs to open."""
    wanted = {"status": Campaign.Status.DRAFT, "participant_quota": 2, "completion_code": "C0DE", **fields}
    campaign = CampaignFactory(access=access, **wanted)
    campaign.generators.set([GeneratorFactory(settings={"width": 32, "height": 32}) for _ in range(2)])
    campaign.prompts.set([PromptFactory()])
    Criterion.objects.create(campaign=campaign, key="quality", question="Which set looks better?")
    return campaign


def refused_opening(campaign: Campaign) -> str:
    with pytest.raises(ApplicationError) as refused:
        set_campaign_status(campaign=campaign, status=Campaign.Status.OPEN)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT
    assert not Demand.objects.exists(), "a refused opening queues no generation"
    return refused.value.message


def test_a_prolific_campaign_without_its_study_id_does_not_open():
    message = refused_opening(draft("prolific"))
    assert "prolific_study_id" in message
    assert "STUDY_ID" in message


def test_a_prolific_campaign_without_a_quota_or_code_does_not_open():
    assert "participant_quota" in refused_opening(draft("prolific", prolific_study_id="s-1", participant_quota=None))
    assert "completion_code" in refused_opening(draft("prolific", prolific_study_id="s-1", completion_code=""))


def test_a_prolific_campaign_with_its_study_opens():
    campaign = draft("prolific", prolific_study_id="s-1")
    set_campaign_status(campaign=campaign, status=Campaign.Status.OPEN)
    assert campaign.status == Campaign.Status.OPEN


def test_an_mturk_campaign_without_a_quota_does_not_open():
    # Without a quota a worker never reaches the form that hands the assignment back to MTurk.
    assert "participant_quota" in refused_opening(draft("mturk", participant_quota=None))


def test_an_mturk_campaign_does_not_open_where_no_mturk_site_may_take_the_work_back(settings):
    settings.MTURK_SUBMIT_ORIGINS = []
    assert "MTURK_SUBMIT_ORIGINS" in refused_opening(draft("mturk"))


def test_an_mturk_campaign_with_its_quota_opens():
    campaign = draft("mturk", completion_code="")
    set_campaign_status(campaign=campaign, status=Campaign.Status.OPEN)
    assert campaign.status == Campaign.Status.OPEN


def test_public_and_invite_campaigns_need_no_crowd_settings():
    for access in ("public", "invite"):
        campaign = draft(access, participant_quota=None, completion_code="")
        set_campaign_status(campaign=campaign, status=Campaign.Status.OPEN)
        assert campaign.status == Campaign.Status.OPEN


def test_the_staff_status_button_names_the_missing_study_id():
    alice = get_user_model().objects.create_user("alice", password="x")
    grant_researcher_role(user=alice)
    campaign = draft("prolific")
    campaign.owner = alice
    campaign.save()
    client = Client()
    client.force_login(alice)
    page = client.post(f"/staff/campaigns/{campaign.slug}/status/", {"status": "open"}, follow=True).content.decode()
    assert "prolific_study_id" in page
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT


def test_a_prolific_arrival_for_another_study_is_refused_and_stores_nothing():
    # Given an open Prolific campaign for study s-1
    campaign = draft("prolific", prolific_study_id="s-1")
    set_campaign_status(campaign=campaign, status=Campaign.Status.OPEN)
    # When someone arrives with an invented worker id and another study's id
    visitor = Client()
    page = visitor.get(f"/c/{campaign.slug}/?PROLIFIC_PID=invented&STUDY_ID=s-2&SESSION_ID=x")
    asked = visitor.post(f"/api/v1/campaigns/{campaign.slug}/comparisons/next", {}, content_type="application/json")
    # Then they are told to come from the study's page, and no participant or comparison exists
    assert page.status_code == 403
    assert "another Prolific study" in page.content.decode()
    assert asked.status_code == 403
    assert asked.json()["error"]["code"] == "crowd_only"
    assert not Participant.objects.exists()
    assert not Comparison.objects.exists()
    # While the study's own link is admitted
    worker = Client()
    assert worker.get(f"/c/{campaign.slug}/?PROLIFIC_PID=p-1&STUDY_ID=s-1&SESSION_ID=x").status_code == 200
    assert Participant.objects.filter(kind="prolific").count() == 1


def test_the_admin_cannot_blank_the_study_id_of_an_open_prolific_campaign(rf, admin_user):
    from django.contrib.admin.sites import site
    from django.forms.models import model_to_dict

    from annotation.admin import CampaignAdmin

    # Given an open Prolific campaign,
    campaign = draft("prolific", prolific_study_id="s-1")
    set_campaign_status(campaign=campaign, status=Campaign.Status.OPEN)
    request = rf.get("/")
    request.user = admin_user
    form_class = CampaignAdmin(Campaign, site).get_form(request, campaign, change=True)
    data = {
        key: [item.pk for item in value] if isinstance(value, list) else value
        for key, value in model_to_dict(campaign).items()
        if value is not None
    }
    # when its study id is blanked in the admin's form, the form refuses, naming the field,
    form = form_class(data={**data, "prolific_study_id": ""}, instance=campaign)
    assert not form.is_valid()
    assert "prolific_study_id" in " ".join(form.non_field_errors())
    # while the same form with the study id kept is valid.
    assert form_class(data=data, instance=Campaign.objects.get(pk=campaign.pk)).is_valid()
    campaign.refresh_from_db()
    assert campaign.prolific_study_id == "s-1"
