"""The staff page of a campaign's participants: each form goes through its service and says what it did."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile

from annotation.models import CampaignParticipation, Participant, Question
from annotation.services import grant_researcher_role, hash_external_id
from tests.factories import CampaignFactory, ComparisonFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(client):  # type: ignore[no-untyped-def]
    user = User.objects.create_user("alice", password="pw")
    grant_researcher_role(user=user)
    client.force_login(user)
    return user


def test_staff_define_questions_set_consent_import_prolific_and_withdraw_on_request(client, alice):
    campaign = CampaignFactory(slug="study", owner=alice)
    base = "/staff/campaigns/study/participants/"
    assert client.get(base).status_code == 200
    # Consent text and k
    client.post(
        base + "settings/", {"consent_text": "You agree.", "questionnaire_timing": "after", "min_group_size": 7}
    )
    campaign.refresh_from_db()
    assert (campaign.consent_version, campaign.questionnaire_timing, campaign.min_group_size) == (1, "after", 7)
    # A question, and a bad one refused with the field named
    client.post(
        base + "questions/",
        {
            "key": "sex",
            "text": "Sex?",
            "kind": "single",
            "choices": "Female\nMale",
            "required": "on",
            "position": 0,
            "prolific_column": "Sex",
            "sensitive": "on",
        },
    )
    refused = client.post(
        base + "questions/",
        {"key": "x", "text": "X?", "kind": "single", "choices": "only one", "position": 0},
        follow=True,
    )
    assert "a choice question needs at least two options" in refused.content.decode()
    assert list(Question.objects.values_list("key", "choices")) == [("sex", ["Female", "Male"])]
    # Prolific's export fills it for the campaign's participant
    worker = Participant.objects.create(kind="prolific", external_id_hash=hash_external_id("prolific", "PID1"))
    ComparisonFactory(campaign=campaign, participant=worker)
    upload = SimpleUploadedFile("export.csv", b"Participant id,Sex\r\nPID1,Female\r\n", content_type="text/csv")
    imported = client.post(base + "demographics/", {"record": upload}, follow=True)
    assert "1 answer(s) stored for 1 participant(s)" in imported.content.decode()
    # A withdrawal on request, by the raw worker id (hashed there), with a note
    done = client.post(base + "withdrawals/", {"worker_id": "PID1", "note": "email of 3 May"}, follow=True)
    assert "is withdrawn" in done.content.decode()
    row = CampaignParticipation.objects.get(participant=worker)
    assert (row.withdrawn_by, row.withdrawal_note) == ("staff", "email of 3 May")
    assert not worker.questionnaire_responses.get().answers.exists()


def test_another_researcher_s_campaign_is_not_theirs_to_manage(client, alice):
    CampaignFactory(slug="bobs")
    assert client.get("/staff/campaigns/bobs/participants/").status_code == 404
    assert (
        client.post("/staff/campaigns/bobs/participants/withdrawals/", {"worker_id": "x", "note": "n"}).status_code
        == 404
    )
