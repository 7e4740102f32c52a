"""Withdrawal (arena.participation.withdraw_participant): a participant's votes leave every board and tally."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils.timezone import now

from annotation.models import CampaignParticipation, ConsentDecision, Participant, PlatformStatus
from annotation.questionnaire import QuestionSpec, save_question, submit_questionnaire
from annotation.selectors import get_participant_answers
from annotation.services import hash_external_id
from arena.issuing import issue_comparison
from arena.models import PairTally, Vote
from arena.participation import (
    count_withdrawn,
    find_campaign_participant,
    set_count_only_reconciled,
    set_flags,
    withdraw_participant,
)
from arena.selectors import get_leaderboard
from arena.voting import VoteInput, cast_votes
from core.errors import NotFound

pytestmark = pytest.mark.django_db

BOTH = [VoteInput("diversity", "left"), VoteInput("quality", "left")]


def vote(campaign, participant: Participant, times: int = 1) -> None:  # type: ignore[no-untyped-def]
    for _ in range(times):
        comparison = issue_comparison(campaign=campaign, participant=participant)
        cast_votes(token=comparison.token, participant=participant, votes=BOTH, dwell_ms=2000)


def board_votes(campaign, criterion: str, category: str = "") -> int:  # type: ignore[no-untyped-def]
    return get_leaderboard(campaign=campaign, criterion=criterion, category=category, intervals="sandwich")["votes"]


def tallied(campaign) -> int:  # type: ignore[no-untyped-def]
    return sum(t.a_wins + t.b_wins + t.ties + t.both_bad for t in PairTally.objects.filter(campaign=campaign))


def test_a_withdrawn_participant_s_votes_and_answers_leave_every_board_and_tally(arena_campaign):
    # Given two participants who voted 2 and 3 times on both criteria, and answered the questionnaire
    campaign = arena_campaign(prompts=2, per_queue=4, votes_per_pair=20)
    campaign.prompts.update(category="people")
    save_question(campaign=campaign, spec=QuestionSpec(key="age", text="Age?", kind="number", min_value=18))
    stays, leaves = Participant.objects.create(), Participant.objects.create()
    vote(campaign, stays, 2)
    vote(campaign, leaves, 3)
    for person, age in ((stays, 30), (leaves, 40)):
        submit_questionnaire(campaign=campaign, participant=person, answers={"age": age})
    boards = [(criterion, category) for criterion in ("diversity", "quality") for category in ("", "people")]
    assert [board_votes(campaign, *board) for board in boards] == [5, 5, 5, 5]
    # 5 comparisons x 2 criteria, each counted for all prompts and for the category
    assert tallied(campaign) == 20
    # When one withdraws
    result = withdraw_participant(campaign=campaign, participant=leaves, by="participant")
    # Then every board (each criterion, all prompts and the category) and the tallies count only the other's votes
    assert [board_votes(campaign, *board) for board in boards] == [2, 2, 2, 2]
    assert tallied(campaign) == 8
    assert get_leaderboard(campaign=campaign, criterion="quality", include_flagged=True)["votes"] == 2
    assert Vote.objects.counted().filter(comparison__campaign=campaign).count() == 4
    # Their votes stay stored; their answers are deleted; the change is recorded, once
    assert Vote.objects.filter(comparison__participant=leaves).count() == 6
    assert result.answers_deleted == 1
    assert get_participant_answers(campaign) == {stays.pk: {"age": 30}}
    row = CampaignParticipation.objects.get(campaign=campaign, participant=leaves)
    assert (row.withdrawn_by, row.withdrawn_at) == ("participant", result.withdrawn_at)
    assert count_withdrawn(campaign=campaign) == 1
    assert withdraw_participant(campaign=campaign, participant=leaves, by="staff").already is True


def test_a_vote_cast_after_a_staff_withdrawal_is_never_tallied(arena_campaign):
    # The vote path reads the standing with the comparison: a comparison held before the withdrawal counts nothing
    campaign = arena_campaign(per_queue=4, votes_per_pair=20)
    person = Participant.objects.create()
    held = issue_comparison(campaign=campaign, participant=person)
    withdraw_participant(campaign=campaign, participant=person, by="staff", note="email of 3 May")
    cast_votes(token=held.token, participant=person, votes=BOTH, dwell_ms=2000)
    assert tallied(campaign) == 0
    assert board_votes(campaign, "quality") == 0


def test_staff_find_a_crowd_participant_by_hashed_or_raw_worker_id(arena_campaign):
    campaign = arena_campaign(per_queue=4, votes_per_pair=20)
    worker = Participant.objects.create(kind="prolific", external_id_hash=hash_external_id("prolific", "PID123"))
    vote(campaign, worker)
    assert find_campaign_participant(campaign=campaign, hashed_id=worker.external_id_hash.upper()) == worker
    assert find_campaign_participant(campaign=campaign, worker_id="PID123") == worker
    with pytest.raises(NotFound):
        find_campaign_participant(campaign=campaign, worker_id="someone-else")


def test_withdrawing_through_the_page_ends_participation_and_refuses_more_comparisons(arena_campaign):
    campaign = arena_campaign(per_queue=4, votes_per_pair=20)
    campaign.consent_text = "You agree."
    campaign.save()
    client = Client()
    client.post("/api/v1/campaigns/study/consent", {"accept": True, "version": 1}, content_type="application/json")
    assert (
        client.post("/api/v1/campaigns/study/comparisons/next", {}, content_type="application/json").status_code == 200
    )
    # Unconfirmed: nothing happens
    assert client.post("/c/study/withdraw/", {}).status_code == 400
    assert count_withdrawn(campaign=campaign) == 0
    ended = client.post("/c/study/withdraw/", {"confirm": "yes"}, follow=True)
    assert "You have withdrawn" in ended.content.decode()
    refused = client.post("/api/v1/campaigns/study/comparisons/next", {}, content_type="application/json")
    assert refused.json()["error"]["code"] == "consent_declined"
    assert list(ConsentDecision.objects.order_by("id").values_list("accepted", flat=True)) == [True, False]
    assert client.get("/c/study/").status_code == 302


def test_a_withdrawal_from_a_campaign_without_consent_refuses_the_session_more_comparisons(arena_campaign):
    arena_campaign(per_queue=4, votes_per_pair=20)
    client = Client()
    assert (
        client.post("/api/v1/campaigns/study/comparisons/next", {}, content_type="application/json").status_code == 200
    )
    assert (
        client.post("/api/v1/campaigns/study/withdraw", {"confirm": True}, content_type="application/json").status_code
        == 200
    )
    refused = client.post("/api/v1/campaigns/study/comparisons/next", {}, content_type="application/json")
    assert refused.status_code == 403


def test_votes_cast_while_flagged_or_unreconciled_are_stored_but_never_tallied(arena_campaign):
    # Given a campaign that counts only participants their platform approved or holds for review, one approved
    # participant, one the platform has not reconciled, and one approved but flagged by quality control,
    campaign = arena_campaign(prompts=2, per_queue=4, votes_per_pair=20)
    set_count_only_reconciled(campaign=campaign, value=True)
    approved, unreconciled, flagged = (Participant.objects.create() for _ in range(3))
    for person in (approved, flagged):
        CampaignParticipation.objects.create(
            campaign=campaign, participant=person, platform_status=PlatformStatus.APPROVED, reconciled_at=now()
        )
    set_flags(campaign=campaign, flags={flagged.pk: "failed the gold checks"})
    # when each votes (the live tallies are written with the vote, not recounted),
    vote(campaign, approved, 2)
    vote(campaign, unreconciled, 1)
    vote(campaign, flagged, 3)
    # then every vote is stored, and only the approved participant's reach the tallies and the boards.
    assert Vote.objects.filter(comparison__campaign=campaign).count() == 12
    # (each comparison: two criteria, each tallied on the board of all prompts and on its prompt's category's)
    assert tallied(campaign) == 2 * 2 * 2
    assert [board_votes(campaign, c) for c in ("diversity", "quality")] == [2, 2]
