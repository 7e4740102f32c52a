"""Roles: staff manage every campaign, a researcher only their own, participants none; the admin follows."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from annotation.models import Campaign
from annotation.permissions import RESEARCHER_GROUP, can_manage_campaign, managed_campaigns
from annotation.services import grant_researcher_role
from tests.factories import CampaignFactory, GeneratorFactory, PromptFactory

pytestmark = pytest.mark.django_db


def researcher(name: str) -> User:
    user = User.objects.create_user(name, password="pw")
    grant_researcher_role(user=user)
    return User.objects.get(pk=user.pk)


@pytest.fixture
def people():
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    alice, bob = researcher("alice"), researcher("bob")
    voter = User.objects.create_user("voter", password="pw")
    return staff, alice, bob, voter


def test_staff_manage_every_campaign_researchers_their_own_and_participants_none(people):
    staff, alice, bob, voter = people
    mine, theirs, nobodys = CampaignFactory(owner=alice), CampaignFactory(owner=bob), CampaignFactory()
    assert all(can_manage_campaign(staff, c) for c in (mine, theirs, nobodys))
    assert [can_manage_campaign(alice, c) for c in (mine, theirs, nobodys)] == [True, False, False]
    assert not any(can_manage_campaign(voter, c) for c in (mine, theirs, nobodys))
    assert set(managed_campaigns(staff)) == {mine, theirs, nobodys}
    assert list(managed_campaigns(alice)) == [mine]
    assert list(managed_campaigns(voter)) == []


def test_a_superuser_in_the_researcher_group_still_manages_everything(people):
    _, alice, _, _ = people
    root = User.objects.create_superuser("root", password="pw")
    root.groups.add(Group.objects.get(name=RESEARCHER_GROUP))
    assert can_manage_campaign(root, CampaignFactory(owner=alice))


def test_an_inactive_researcher_manages_nothing(people):
    _, alice, _, _ = people
    campaign = CampaignFactory(owner=alice)
    alice.is_active = False
    alice.save()
    assert not can_manage_campaign(User.objects.get(pk=alice.pk), campaign)


def test_the_researcher_group_exists_after_migrate_with_its_admin_permissions():
    group = Group.objects.get(name=RESEARCHER_GROUP)
    codenames = set(group.permissions.values_list("codename", flat=True))
    assert {"add_campaign", "change_campaign", "view_campaign", "add_criterion", "view_generator"} <= codenames
    assert "delete_campaign" not in codenames
    assert "view_participant" not in codenames


def test_granting_the_role_makes_a_staff_account_in_the_group(people):
    _, alice, _, _ = people
    assert alice.is_staff
    assert alice.groups.filter(name=RESEARCHER_GROUP).exists()


def test_in_the_admin_a_researcher_sees_and_edits_only_their_own_campaigns(client, people):
    _, alice, bob, _ = people
    mine = CampaignFactory(owner=alice, title="Alice's study")
    theirs = CampaignFactory(owner=bob, title="Bob's study")
    client.force_login(alice)
    changelist = client.get(reverse("admin:annotation_campaign_changelist")).content.decode()
    assert "Alice&#x27;s study" in changelist
    assert "Bob&#x27;s study" not in changelist
    assert client.get(reverse("admin:annotation_campaign_change", args=[mine.pk])).status_code == 200
    # Someone else's campaign is, for this researcher, a campaign that does not exist.
    other = client.get(reverse("admin:annotation_campaign_change", args=[theirs.pk]), follow=True)
    assert "doesn’t exist" in other.content.decode()
    assert client.get(reverse("admin:annotation_participant_changelist")).status_code == 403


def test_a_campaign_a_researcher_adds_in_the_admin_is_theirs(client, people):
    _, alice, _, _ = people
    generators = [GeneratorFactory(), GeneratorFactory()]
    prompt = PromptFactory(owner=alice)  # a researcher adds only prompts of their own study (or shared ones)
    client.force_login(alice)
    form = {
        "slug": "alices-admin-study",
        "title": "Added in the admin",
        "instructions": "",
        "prompts": [prompt.pk],
        "generators": [g.pk for g in generators],
        "population_size": 4,
        "votes_per_pair": 3,
        "sampling_policy": "balanced",
        "gold_rate": 0,
        "repeat_rate": 0,
        "access": "public",
        "participant_quota": "",
        "completion_code": "",
        "completion_code_flagged": "",
        "status": "draft",
        "questionnaire_timing": "before",
        "min_group_size": 5,
        "population_targets": "{}",
        "criteria-TOTAL_FORMS": 1,
        "criteria-INITIAL_FORMS": 0,
        "criteria-0-position": 0,
        "criteria-0-key": "quality",
        "criteria-0-question": "Which set looks better?",
    }
    response = client.post(reverse("admin:annotation_campaign_add"), form)
    assert response.status_code == 302, response.content.decode()[:2000]
    campaign = Campaign.objects.get(slug="alices-admin-study")
    assert campaign.owner == alice
    assert list(campaign.criteria.values_list("key", flat=True)) == ["quality"]


def test_the_quality_page_is_for_the_campaigns_researcher_and_staff_only(client, people):
    staff, alice, bob, voter = people
    campaign = CampaignFactory(owner=alice, slug="alices")
    # Another researcher's campaign answers as a missing one would (404): its existence does not leak.
    for user, status in ((alice, 200), (staff, 200), (bob, 404), (voter, 403)):
        client.force_login(user)
        assert client.get("/c/alices/quality/").status_code == status, user.username
    client.logout()
    assert client.get("/c/alices/quality/").status_code == 302  # to the login
    assert campaign.owner == alice
