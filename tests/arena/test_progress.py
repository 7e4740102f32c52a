"""Live campaign progress for the staff dashboard: per criterion, pair, prompt, queue, and who is active."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from annotation.models import Participant
from annotation.services import set_campaign_status
from arena.issuing import issue_comparison
from arena.models import Comparison
from arena.selectors.progress import get_campaign_progress, list_campaign_summaries
from arena.voting import VoteInput, cast_votes

pytestmark = pytest.mark.django_db


def vote(campaign, participant, choice="left"):
    comparison = issue_comparison(campaign=campaign, participant=participant)
    cast_votes(
        token=comparison.token,
        participant=participant,
        votes=[VoteInput("diversity", choice), VoteInput("quality", choice)],
        dwell_ms=3000,
    )
    return comparison


def test_progress_counts_votes_per_criterion_pair_and_prompt_and_what_is_still_needed(arena_campaign):
    campaign = arena_campaign(generators=3, prompts=2, per_queue=2, votes_per_pair=2)
    set_campaign_status(campaign=campaign, status="open")
    first = vote(campaign, Participant.objects.create())
    vote(campaign, Participant.objects.create())
    progress = get_campaign_progress(campaign=campaign)
    assert progress.comparisons_voted == 2
    # 2 prompts x 3 pairs x 2 votes wanted, 2 cast.
    assert (progress.votes_wanted, progress.votes_needed) == (12, 10)
    assert [(row.label, row.votes) for row in progress.criteria] == [
        ("Which set is more diverse?", 2),
        ("Which set looks better?", 2),
    ]
    assert sum(row.votes for row in progress.pairs) == 2
    assert {row.wanted for row in progress.pairs} == {4}
    assert len(progress.pairs) == 3
    assert sum(row.votes for row in progress.prompts) == 2
    assert [row.wanted for row in progress.prompts] == [6, 6]
    pair_of_first = sorted([first.left_population.generator.name, first.right_population.generator.name], key=str)
    assert any(row.label == " vs ".join(pair_of_first) and row.votes >= 1 for row in progress.pairs)
    assert progress.active_participants == 2
    assert [q.generator for q in progress.queues] == [f"secret-generator-{i}" for i in range(3)]
    assert all(q.wanted > 0 for q in progress.queues)


def test_votes_beyond_a_target_do_not_make_up_for_a_pair_without_votes(arena_campaign):
    campaign = arena_campaign(generators=2, prompts=1, per_queue=6, votes_per_pair=1)
    for _ in range(3):
        vote(campaign, Participant.objects.create())
    progress = get_campaign_progress(campaign=campaign)
    assert progress.comparisons_voted == 3
    assert progress.votes_needed == 0


def test_gold_and_repeats_are_left_out_and_old_activity_is_not_active(arena_campaign):
    campaign = arena_campaign(per_queue=4, votes_per_pair=4)
    voter = Participant.objects.create()
    gold = vote(campaign, voter)
    Comparison.objects.filter(pk=gold.pk).update(is_gold=True)
    later = timezone.now() + timedelta(minutes=6)
    progress = get_campaign_progress(campaign=campaign, now=later)
    assert (progress.comparisons_voted, progress.gold_voted) == (0, 1)
    assert [row.votes for row in progress.criteria] == [0, 0]
    assert progress.active_participants == 0


def test_list_summaries_give_votes_and_wanted_per_campaign(arena_campaign):
    campaign = arena_campaign(generators=3, prompts=2, votes_per_pair=2)
    vote(campaign, Participant.objects.create())
    (summary,) = list_campaign_summaries(campaigns=[campaign])
    assert (summary.voted, summary.wanted, summary.percent) == (1, 12, 8)


def test_progress_json_is_for_managers_and_changes_after_a_vote(arena_campaign, client, admin_client):
    campaign = arena_campaign(per_queue=4, votes_per_pair=4)
    url = f"/staff/campaigns/{campaign.slug}/progress.json"
    before = admin_client.get(url).json()
    assert before["comparisons_voted"] == 0
    assert before["status"] == "open"
    vote(campaign, Participant.objects.create())
    after = admin_client.get(url).json()
    assert after["comparisons_voted"] == 1
    assert after["votes_needed"] == before["votes_needed"] - 1
    assert after["pairs"][0]["votes"] == 1
    assert after["queues"][0]["generator"] == "secret-generator-0"
    client.force_login(User.objects.create_user("voter"))
    assert client.get(url).status_code == 403


def test_the_prompt_table_shows_the_prompts_furthest_behind_and_counts_the_rest(arena_campaign, monkeypatch):
    from arena.selectors import progress

    monkeypatch.setattr(progress, "PROMPT_ROWS", 2)
    campaign = arena_campaign(generators=2, prompts=3, per_queue=2, votes_per_pair=1)
    set_campaign_status(campaign=campaign, status="open")
    voted = vote(campaign, Participant.objects.create())
    progress = get_campaign_progress(campaign=campaign)
    # One prompt has its one vote: the two without any are shown, the complete one is counted.
    assert (progress.prompts_total, progress.prompts_complete) == (3, 1)
    assert [row.votes for row in progress.prompts] == [0, 0]
    assert voted.prompt.caption not in [row.label for row in progress.prompts]
    assert progress.as_dict()["prompts_total"] == 3
