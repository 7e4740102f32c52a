"""The staff dashboard: who may open it, creating a campaign from a form and a prompt file, status buttons."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile

from annotation.models import Campaign
from annotation.services import grant_researcher_role
from generation.models import Prompt
from tests.factories import CampaignFactory, CriterionFactory, GeneratorFactory, PromptFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(client):
    user = User.objects.create_user("alice", password="pw")
    grant_researcher_role(user=user)
    client.force_login(user)
    return user


def form_data(generators, **changes):
    data = {
        "title": "Doctors",
        "slug": "doctors",
        "generators": [g.pk for g in generators],
        "population_size": 4,
        "criteria": "diversity: Which set shows more kinds of people?\nquality: Which set looks better?\n",
        "votes_per_pair": 3,
        "sampling_policy": "balanced",
        "gold_rate": 0.1,
        "repeat_rate": 0.05,
        "access": "prolific",
        "prolific_study_id": "study-1",
        "participant_quota": 10,
        "completion_code": "C0DE",
        "completion_code_flagged": "",
        "instructions": "Look at all images.",
        "prompts_text": "a doctor\n\na nurse\n",
    }
    data.update(changes)
    return data


def test_anonymous_visitors_log_in_first_and_participants_are_refused(client):
    assert client.get("/staff/").url.startswith("/admin/login/?next=/staff/")
    client.force_login(User.objects.create_user("voter"))
    assert client.get("/staff/").status_code == 403
    assert client.get("/staff/campaigns/new/").status_code == 403
    assert "Dashboard" not in client.get("/").content.decode()


def test_the_dashboard_lists_only_the_researchers_campaigns_with_status_and_progress(client, alice):
    CampaignFactory(owner=alice, title="Mine", status=Campaign.Status.PAUSED)
    CampaignFactory(title="Not mine")
    page = client.get("/staff/").content.decode()
    assert "Mine" in page
    assert "paused" in page
    assert "Not mine" not in page
    # The site's nav leads researchers here.
    assert 'href="/staff/"' in client.get("/").content.decode()


def test_staff_see_every_campaign(admin_client):
    CampaignFactory(title="Anyone's")
    assert "Anyone&#x27;s" in admin_client.get("/staff/").content.decode()


def test_creating_a_campaign_from_pasted_prompts_and_a_csv_file(client, alice):
    generators = [GeneratorFactory(), GeneratorFactory()]
    GeneratorFactory(is_active=False)
    upload = SimpleUploadedFile("prompts.csv", b"caption,category\na surgeon,occupation\na nurse,occupation\n")
    response = client.post("/staff/campaigns/new/", {**form_data(generators), "prompts_file": upload})
    assert response.status_code == 302
    assert response.url == "/staff/campaigns/doctors/"
    campaign = Campaign.objects.get(slug="doctors")
    assert campaign.owner == alice
    assert campaign.status == Campaign.Status.DRAFT
    assert set(campaign.generators.all()) == set(generators)
    assert list(campaign.criteria.values_list("key", "question")) == [
        ("diversity", "Which set shows more kinds of people?"),
        ("quality", "Which set looks better?"),
    ]
    # The pasted "a nurse" and the file's "a nurse, occupation" are two prompts (different categories).
    assert sorted(campaign.prompts.values_list("caption", "category")) == [
        ("a doctor", ""),
        ("a nurse", ""),
        ("a nurse", "occupation"),
        ("a surgeon", "occupation"),
    ]
    assert (campaign.gold_rate, campaign.repeat_rate, campaign.participant_quota) == (0.1, 0.05, 10)
    assert (campaign.access, campaign.completion_code, campaign.population_size) == ("prolific", "C0DE", 4)
    detail = client.get(response.url).content.decode()
    assert "Campaign &#x27;doctors&#x27; created (draft)." in detail


def test_a_bad_prompt_file_is_refused_with_its_line_number_and_nothing_is_created(client, alice):
    generators = [GeneratorFactory(), GeneratorFactory()]
    prompts_before = Prompt.objects.count()
    upload = SimpleUploadedFile("prompts.csv", b"caption,category\na surgeon,occupation\n,occupation\n")
    response = client.post("/staff/campaigns/new/", {**form_data(generators), "prompts_file": upload})
    assert response.status_code == 200
    assert "prompts.csv line 3: &#x27;caption&#x27; is empty" in response.content.decode()
    assert not Campaign.objects.exists()
    assert Prompt.objects.count() == prompts_before


def test_bad_criteria_lines_are_named(client, alice):
    generators = [GeneratorFactory(), GeneratorFactory()]
    data = form_data(generators, criteria="quality: Which is better?\nno question here\nquality: again?")
    page = client.post("/staff/campaigns/new/", data).content.decode()
    assert "line 2: write it as key: question" in page
    assert "line 3: the key &#x27;quality&#x27; is used twice" in page
    assert not Campaign.objects.exists()


def test_opening_at_once_is_refused_with_one_generator_and_rolls_the_whole_creation_back(client, alice):
    generators = [GeneratorFactory()]
    prompts_before = Prompt.objects.count()
    response = client.post("/staff/campaigns/new/", {**form_data(generators), "open_now": "on"})
    assert "needs at least two active generators" in response.content.decode()
    assert not Campaign.objects.exists()
    assert Prompt.objects.count() == prompts_before


def test_opening_at_once_opens_the_campaign(client, alice):
    generators = [GeneratorFactory(), GeneratorFactory()]
    client.post("/staff/campaigns/new/", {**form_data(generators), "open_now": "on"})
    assert Campaign.objects.get(slug="doctors").status == Campaign.Status.OPEN


def test_a_taken_slug_is_a_form_error(client, alice):
    CampaignFactory(slug="doctors")
    page = client.post("/staff/campaigns/new/", form_data([GeneratorFactory(), GeneratorFactory()])).content.decode()
    assert "a campaign with slug &#x27;doctors&#x27; already exists" in page


def test_status_buttons_open_pause_and_close_and_show_a_refusal(client, alice):
    campaign = CampaignFactory(owner=alice, slug="mine", status=Campaign.Status.DRAFT)
    CriterionFactory(campaign=campaign)
    campaign.prompts.add(PromptFactory())
    campaign.generators.add(GeneratorFactory())
    refused = client.post("/staff/campaigns/mine/status/", {"status": "open"}, follow=True).content.decode()
    assert "needs at least two active generators to be opened" in refused
    campaign.generators.add(GeneratorFactory())
    client.post("/staff/campaigns/mine/status/", {"status": "open"})
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.OPEN
    client.post("/staff/campaigns/mine/status/", {"status": "paused"})
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED
    assert client.get("/staff/campaigns/mine/status/").status_code == 405


def test_the_status_buttons_need_the_csrf_token(alice):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    CampaignFactory(owner=alice, slug="mine", status=Campaign.Status.PAUSED)
    assert strict.post("/staff/campaigns/mine/status/", {"status": "closed"}).status_code == 403
    assert Campaign.objects.get(slug="mine").status == Campaign.Status.PAUSED


def test_another_researchers_campaign_is_not_found(client, alice):
    CampaignFactory(slug="bobs", owner=User.objects.create_user("bob"))
    assert client.get("/staff/campaigns/bobs/").status_code == 404
    assert client.get("/staff/campaigns/bobs/progress.json").status_code == 404
    assert client.post("/staff/campaigns/bobs/status/", {"status": "closed"}).status_code == 404
    assert Campaign.objects.get(slug="bobs").status == Campaign.Status.OPEN


def test_the_campaign_page_shows_the_invite_link_or_the_crowd_entry_urls(client, alice):
    invite = CampaignFactory(owner=alice, slug="secret", access=Campaign.Access.INVITE)
    page = client.get("/staff/campaigns/secret/").content.decode()
    assert f"http://testserver/c/secret/?invite={invite.invite_token}" in page
    assert "PROLIFIC_PID" not in page
    CampaignFactory(owner=alice, slug="crowd", access=Campaign.Access.PROLIFIC)
    page = client.get("/staff/campaigns/crowd/").content.decode()
    assert (
        "http://testserver/c/crowd/?PROLIFIC_PID={{%PROLIFIC_PID%}}&amp;STUDY_ID={{%STUDY_ID%}}"
        "&amp;SESSION_ID={{%SESSION_ID%}}" in page
    )
    assert "MTurk ExternalQuestion URL" in page
    assert "no completion code set" in page
