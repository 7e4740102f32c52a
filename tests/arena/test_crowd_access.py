"""Crowd campaigns admit only their crowd: Prolific and MTurk entries, previews, staff, one completion each."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from annotation.models import Campaign, CrowdAssignment, Participant
from arena.models import Comparison, Vote

pytestmark = pytest.mark.django_db

BOTH = {"votes": [{"criterion": "diversity", "choice": "left"}, {"criterion": "quality", "choice": "tie"}]}
PROLIFIC = "/c/study/?PROLIFIC_PID=p-1&STUDY_ID=study-9&SESSION_ID={session}"
MTURK = "/c/study/?workerId=W1&assignmentId={assignment}&hitId=H{assignment}&turkSubmitTo=https%3A%2F%2Fwww.mturk.com"
MTURK_PREVIEW = "/c/study/?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H3&turkSubmitTo=https%3A%2F%2Fwww.mturk.com"


@pytest.fixture
def crowd_study(arena_campaign):
    def build(access: str, **fields) -> Campaign:
        campaign = arena_campaign(per_queue=4, votes_per_pair=5)
        campaign.access = access
        campaign.participant_quota = 2
        campaign.completion_code = "C0DE42"
        for name, value in fields.items():
            setattr(campaign, name, value)
        campaign.save()
        return campaign

    return build


def next_comparison(client: Client):
    return client.post("/api/v1/campaigns/study/comparisons/next", {}, content_type="application/json")


def vote(client: Client, token: str):
    return client.post(f"/api/v1/comparisons/{token}/votes", {**BOTH, "dwell_ms": 900}, content_type="application/json")


def vote_once(client: Client) -> None:
    response = next_comparison(client)
    assert response.status_code == 200, response.content
    assert vote(client, response.json()["token"]).status_code == 200


def nothing_stored() -> bool:
    return not (Participant.objects.exists() or Comparison.objects.exists() or Vote.objects.exists())


@pytest.mark.parametrize(
    ("access", "entry", "named"),
    [
        ("prolific", "/c/study/", "Prolific"),
        ("prolific", "/c/study/?PROLIFIC_PID=p-1", "STUDY_ID, SESSION_ID"),
        ("prolific", "/c/study/?PROLIFIC_PID=p-1&STUDY_ID=s&SESSION_ID=", "SESSION_ID"),
        ("prolific", "/c/study/?workerId=W1&assignmentId=A1&hitId=H1", "Prolific"),
        ("mturk", "/c/study/", "Mechanical Turk"),
        ("mturk", "/c/study/?workerId=W1&hitId=H1", "assignmentId"),
        ("mturk", "/c/study/?PROLIFIC_PID=p-1&STUDY_ID=s&SESSION_ID=x", "Mechanical Turk"),
    ],
)
def test_a_visitor_without_the_platforms_entry_is_told_how_to_take_part_and_nothing_is_stored(
    crowd_study, access, entry, named
):
    crowd_study(access)
    client = Client()
    page = client.get(entry)
    assert page.status_code == 403
    text = page.content.decode()
    assert "How to take part" in text
    assert named in text
    assert "data-choice" not in text
    refused = next_comparison(client)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "crowd_only"
    assert nothing_stored()


def test_a_prolific_link_for_another_study_is_refused(crowd_study):
    crowd_study("prolific", prolific_study_id="study-9")
    client = Client()
    page = client.get("/c/study/?PROLIFIC_PID=p-1&STUDY_ID=other-study&SESSION_ID=x")
    assert page.status_code == 403
    assert "another Prolific study" in page.content.decode()
    assert next_comparison(client).status_code == 403
    assert nothing_stored()


def test_the_study_s_own_prolific_link_votes_through_page_and_api(crowd_study):
    crowd_study("prolific", prolific_study_id="study-9")
    client = Client()
    page = client.get(PROLIFIC.format(session="s1"))
    assert page.status_code == 200
    assert 'data-choice="left"' in page.content.decode()
    vote_once(client)
    (worker,) = Participant.objects.all()
    assert worker.kind == "prolific"
    assert Vote.objects.filter(comparison__participant=worker).count() == 2


def test_an_mturk_preview_can_look_but_never_get_or_cast_a_vote(crowd_study, arena_campaign):
    crowd_study("mturk")
    # Someone else's real comparison, whose token a previewer might try.
    worker = Client()
    worker.get(MTURK.format(assignment="A1"))
    token = next_comparison(worker).json()["token"]
    before = (Participant.objects.count(), Comparison.objects.count())

    previewer = Client()
    assert "This is a preview" in previewer.get(MTURK_PREVIEW).content.decode()
    refused = next_comparison(previewer)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "crowd_only"
    assert vote(previewer, token).status_code in (403, 404)
    assert (Participant.objects.count(), Comparison.objects.count()) == before
    assert not Vote.objects.exists()


def test_staff_preview_a_crowd_campaign_without_voting(crowd_study):
    crowd_study("prolific")
    staff = get_user_model().objects.create_user("sam", password="pw-for-tests-only", is_staff=True)
    client = Client()
    client.force_login(staff)
    page = client.get("/c/study/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Staff preview" in text
    assert "data-choice" not in text
    assert next_comparison(client).status_code == 403
    assert nothing_stored()


def test_only_the_campaigns_managers_get_the_staff_preview_of_a_crowd_campaign(crowd_study):
    from annotation.services import grant_researcher_role

    campaign = crowd_study("prolific")
    owner, other = (get_user_model().objects.create_user(name) for name in ("owner", "other"))
    for user in (owner, other):
        grant_researcher_role(user=user)
    campaign.owner = owner
    campaign.save()
    client = Client()
    client.force_login(other)
    page = client.get("/c/study/")
    assert page.status_code == 403
    assert "Staff preview" not in page.content.decode()
    client.force_login(owner)
    assert "Staff preview" in client.get("/c/study/").content.decode()
    assert nothing_stored()


@pytest.mark.parametrize(
    ("access", "first", "second"),
    [
        ("mturk", MTURK.format(assignment="A1"), MTURK.format(assignment="A2")),
        ("prolific", PROLIFIC.format(session="s1"), PROLIFIC.format(session="s2")),
    ],
)
def test_a_worker_who_completed_gets_no_completion_on_a_second_assignment(crowd_study, settings, access, first, second):
    settings.MTURK_SUBMIT_ORIGINS = ["https://www.mturk.com"]
    crowd_study(access)
    client = Client()
    client.get(first)
    vote_once(client)
    vote_once(client)
    done = client.get("/c/study/done/")
    assert done.status_code in (200, 302)  # the completion on the first assignment

    again = Client()  # the same worker, on a new assignment
    page = again.get(second)
    assert page.status_code == 403
    assert "already taken part" in page.content.decode()
    assert next_comparison(again).status_code == 403
    completion = again.get("/c/study/done/")
    assert completion.status_code == 403
    text = completion.content.decode()
    assert "externalSubmit" not in text
    assert "C0DE42" not in text
    # The first assignment still holds the work.
    (assignment,) = CrowdAssignment.objects.all()
    assert assignment.participant.kind == access


def test_a_worker_who_left_an_assignment_unfinished_does_the_work_on_the_new_one(crowd_study, settings):
    settings.MTURK_SUBMIT_ORIGINS = ["https://www.mturk.com"]
    crowd_study("mturk")
    first = Client()
    first.get(MTURK.format(assignment="A1"))
    vote_once(first)  # one of two, then the worker returns the HIT

    second = Client()
    assert second.get(MTURK.format(assignment="A2")).status_code == 200
    vote_once(second)
    done = second.get("/c/study/done/").content.decode()
    assert 'name="assignmentId" value="A2"' in done
    # The abandoned assignment's session gets no hand-back of its own.
    stale = first.get("/c/study/done/")
    assert stale.status_code == 403
    assert "externalSubmit" not in stale.content.decode()


def test_the_raw_assignment_and_hit_ids_are_not_stored(crowd_study, settings):
    crowd_study("mturk")
    client = Client()
    client.get("/c/study/?workerId=WORKER77&assignmentId=ASSIGN77&hitId=HIT77&turkSubmitTo=https%3A%2F%2Fwww.mturk.com")
    (worker,) = Participant.objects.all()
    stored = str(worker.entry_params) + worker.external_id_hash + CrowdAssignment.objects.get().assignment_hash
    for raw in ("WORKER77", "ASSIGN77", "HIT77"):
        assert raw not in stored
    assert worker.entry_params["turkSubmitTo"] == "https://www.mturk.com"


def test_a_logged_in_user_who_arrived_from_prolific_votes_as_that_worker(crowd_study):
    crowd_study("prolific")
    user = get_user_model().objects.create_user("ada", password="pw-for-tests-only")
    client = Client()
    client.force_login(user)
    client.get(PROLIFIC.format(session="s1"))
    vote_once(client)
    assert Participant.objects.get(kind="prolific").comparisons.count() == 1


def test_an_uninvited_visitor_gets_neither_page_nor_comparison_and_nothing_is_stored(crowd_study):
    crowd_study("invite")
    client = Client()
    assert client.get("/c/study/").status_code == 404
    assert client.get("/c/study/?invite=a-guess").status_code == 404
    refused = next_comparison(client)
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "not_found"
    assert nothing_stored()
