"""A participant's turn (arena.turns.take_turn): the vote stands whatever happens to the next comparison."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.cache import SessionStore

from annotation.models import Participant
from arena.issuing import issue_comparison
from arena.models import Comparison, Vote
from arena.turns import NextWanted, take_turn
from arena.voting import VoteInput

pytestmark = pytest.mark.django_db

BOTH = [VoteInput("diversity", "left"), VoteInput("quality", "tie")]


def turn(comparison: Comparison, voter: Participant, next_wanted: NextWanted | None):
    return take_turn(
        token=comparison.token,
        participant=voter,
        votes=BOTH,
        dwell_ms=10,
        session=SessionStore(),
        user=AnonymousUser(),
        client=None,
        next_wanted=next_wanted,
    )


def test_without_asking_there_is_no_next_and_no_reason(arena_campaign):
    campaign = arena_campaign(generators=3, per_queue=2)
    voter = Participant.objects.create()
    outcome = turn(issue_comparison(campaign=campaign, participant=voter), voter, None)
    assert (outcome.next, outcome.next_error) == (None, None)
    assert outcome.reveal.votes_cast == 1


def test_asking_brings_the_next_comparison_with_the_count_after_this_vote(arena_campaign):
    campaign = arena_campaign(generators=3, per_queue=2)
    voter = Participant.objects.create()
    first = issue_comparison(campaign=campaign, participant=voter)
    outcome = turn(first, voter, NextWanted())
    assert outcome.next_error is None
    assert outcome.next["token"] != first.token
    assert outcome.next["progress"]["votes_cast"] == 1
    assert Comparison.objects.get(token=outcome.next["token"]).participant_id == voter.pk


def test_a_next_that_cannot_be_issued_says_why_and_the_vote_stands(arena_campaign):
    # Given a campaign whose quota is one comparison,
    campaign = arena_campaign(generators=3, per_queue=2)
    campaign.participant_quota = 1
    campaign.save()
    voter = Participant.objects.create()
    first = issue_comparison(campaign=campaign, participant=voter)
    # when the participant votes and asks for the next one,
    outcome = turn(first, voter, NextWanted())
    # then none comes, the reason is the quota, and both answers of the vote are stored.
    assert outcome.next is None
    assert outcome.next_error is not None
    assert outcome.next_error.code == "quota_reached"
    assert Vote.objects.filter(comparison=first).count() == 2
    assert Comparison.objects.get(pk=first.pk).status == Comparison.Status.VOTED
