"""Completion: codes after the quota, Prolific hand-back, MTurk form and framing."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from annotation.models import Participant
from arena.models import Comparison
from arena.participation import set_flags

pytestmark = pytest.mark.django_db

BOTH = {"votes": [{"criterion": "diversity", "choice": "left"}, {"criterion": "quality", "choice": "tie"}]}


def vote_once(client: Client) -> None:
    token = client.post("/api/v1/campaigns/study/comparisons/next", {}, content_type="application/json").json()["token"]
    response = client.post(
        f"/api/v1/comparisons/{token}/votes", {**BOTH, "dwell_ms": 900}, content_type="application/json"
    )
    assert response.status_code == 200


@pytest.fixture
def crowd_campaign(arena_campaign):
    campaign = arena_campaign(per_queue=4, votes_per_pair=5)
    campaign.participant_quota = 2
    campaign.completion_code = "C0DE42"
    campaign.completion_code_flagged = "REVIEW7"
    campaign.save()
    return campaign


def test_prolific_participant_is_sent_back_to_prolific_with_the_code_after_the_quota(crowd_campaign):
    client = Client()
    client.get("/c/study/?PROLIFIC_PID=p-1&STUDY_ID=s&SESSION_ID=x")
    vote_once(client)
    early = client.get("/c/study/done/")
    assert "1 more to your completion code" in early.content.decode()
    vote_once(client)
    # The vote page itself now leads to the completion step.
    assert client.get("/c/study/").url == "/c/study/done/"
    done = client.get("/c/study/done/")
    assert done.status_code == 302
    assert done.url == "https://app.prolific.com/submissions/complete?cc=C0DE42"


def test_a_flagged_participant_gets_the_review_code(crowd_campaign):
    client = Client()
    client.get("/c/study/?PROLIFIC_PID=p-2&STUDY_ID=s&SESSION_ID=y")
    vote_once(client)
    vote_once(client)
    worker = Participant.objects.get(kind="prolific")
    set_flags(campaign=crowd_campaign, flags={worker.pk: "too fast"})
    assert client.get("/c/study/done/").url.endswith("cc=REVIEW7")


def test_mturk_worker_posts_the_assignment_back_and_the_pages_may_be_framed_by_mturk_only(crowd_campaign, settings):
    settings.MTURK_SUBMIT_ORIGINS = ["https://workersandbox.mturk.com"]
    settings.MTURK_FRAME_ANCESTORS = ["https://workersandbox.mturk.com"]
    client = Client()
    entry = client.get(
        "/c/study/?workerId=W1&assignmentId=A9&hitId=H3&turkSubmitTo=https%3A%2F%2Fworkersandbox.mturk.com"
    )
    assert "X-Frame-Options" not in entry
    assert "frame-ancestors https://workersandbox.mturk.com" in entry["Content-Security-Policy"]
    vote_once(client)
    vote_once(client)
    done = client.get("/c/study/done/").content.decode()
    assert 'action="https://workersandbox.mturk.com/mturk/externalSubmit"' in done
    assert 'name="assignmentId" value="A9"' in done
    assert Comparison.objects.filter(status="voted").count() == 2


def test_an_mturk_hand_back_to_a_foreign_host_is_refused(crowd_campaign):
    client = Client()
    client.get("/c/study/?workerId=W2&assignmentId=A1&hitId=H&turkSubmitTo=https%3A%2F%2Fevil.example")
    vote_once(client)
    vote_once(client)
    done = client.get("/c/study/done/").content.decode()
    assert "externalSubmit" not in done
    assert "without a valid turkSubmitTo" in done


def test_ordinary_pages_may_not_be_framed(crowd_campaign):
    response = Client().get("/c/study/")
    assert response["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


PREVIEW = "/c/study/?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H3&turkSubmitTo=https%3A%2F%2Fwww.mturk.com"


def test_an_mturk_preview_shows_the_task_read_only_and_creates_nothing(crowd_campaign):
    crowd_campaign.instructions = "Judge the sets as wholes."
    crowd_campaign.save()
    response = Client().get(PREVIEW)
    page = response.content.decode()
    assert response.status_code == 200
    assert "This is a preview" in page
    assert "Judge the sets as wholes." in page
    assert "Which set is more diverse?" in page
    # Every picture of both example sets, wherever the storage serves them from (/media/ or a presigned URL).
    assert len(re.findall(r'<img src="[^"]+" alt="Example image \d+ of the (left|right) set">', page)) == (
        2 * crowd_campaign.population_size
    )
    assert "data-choice" not in page
    assert "vote.js" not in page
    assert not Participant.objects.exists()
    assert not Comparison.objects.exists()
    # MTurk frames the preview too.
    assert "frame-ancestors https://www.mturk.com" in response["Content-Security-Policy"]
    assert "X-Frame-Options" not in response


def test_a_preview_that_carries_a_worker_id_still_creates_nothing(crowd_campaign):
    Client().get(PREVIEW + "&workerId=W5")
    assert not Participant.objects.exists()


def test_after_accepting_the_hit_the_same_worker_gets_the_normal_task(crowd_campaign):
    client = Client()
    client.get(PREVIEW)
    page = client.get(
        "/c/study/?workerId=W7&assignmentId=A7&hitId=H3&turkSubmitTo=https%3A%2F%2Fwww.mturk.com"
    ).content.decode()
    assert 'data-choice="left"' in page
    (worker,) = Participant.objects.all()
    assert worker.kind == "mturk"
    assert worker.entry_params["assignmentId"] not in ("", "A7")  # kept, hashed
    assert Comparison.objects.filter(participant=worker).count() == 1


def test_the_mturk_completion_page_may_be_framed_by_mturk_and_post_to_it(crowd_campaign, settings):
    settings.MTURK_SUBMIT_ORIGINS = ["https://workersandbox.mturk.com"]
    settings.MTURK_FRAME_ANCESTORS = ["https://workersandbox.mturk.com"]
    client = Client()
    client.get("/c/study/?workerId=W8&assignmentId=A8&hitId=H&turkSubmitTo=https%3A%2F%2Fworkersandbox.mturk.com")
    vote_once(client)
    halfway = client.get("/c/study/done/")
    assert "frame-ancestors https://workersandbox.mturk.com" in halfway["Content-Security-Policy"]
    vote_once(client)
    done = client.get("/c/study/done/")
    assert "form-action 'self' https://workersandbox.mturk.com" in done["Content-Security-Policy"]
    assert "X-Frame-Options" not in done
