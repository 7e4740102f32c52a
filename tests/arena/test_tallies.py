"""Running pair counts stay equal to a recount of the votes, per criterion and per category."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from annotation.models import Participant
from arena.issuing import issue_comparison
from arena.models import PairTally, Vote
from arena.voting import VoteInput, cast_votes

pytestmark = pytest.mark.django_db


def recount(category: str | None) -> Counter:
    counts: Counter = Counter()
    votes = Vote.objects.select_related("comparison__left_population", "comparison__right_population", "criterion")
    for vote in votes:
        if category is not None and vote.comparison.prompt.category != category:
            continue
        left = vote.comparison.left_population.generator_id
        right = vote.comparison.right_population.generator_id
        a, b = sorted((left, right))
        outcome = {
            "left": "a_wins" if left == a else "b_wins",
            "right": "b_wins" if left == a else "a_wins",
            "tie": "ties",
            "both_bad": "both_bad",
        }[vote.choice]
        counts[(vote.criterion.key, a, b, outcome)] += 1
    return counts


def tallied(category: str) -> Counter:
    counts: Counter = Counter()
    for tally in PairTally.objects.filter(category=category).select_related("criterion"):
        for outcome in ("a_wins", "b_wins", "ties", "both_bad"):
            if getattr(tally, outcome):
                counts[(tally.criterion.key, tally.generator_a_id, tally.generator_b_id, outcome)] = getattr(
                    tally, outcome
                )
    return counts


def test_tallies_equal_a_recount_of_the_votes(arena_campaign):
    campaign = arena_campaign(generators=3, prompts=2, per_queue=3, votes_per_pair=2)
    campaign.prompts.filter(pk=campaign.prompts.first().pk).update(category="people")
    rng = random.Random(3)
    for _ in range(12):
        voter = Participant.objects.create()
        comparison = issue_comparison(campaign=campaign, participant=voter, rng=rng)
        votes = [VoteInput(key, rng.choice(["left", "right", "tie", "both_bad"])) for key in ("diversity", "quality")]
        cast_votes(token=comparison.token, participant=voter, votes=votes, dwell_ms=100)
    assert tallied("") == recount(None)
    assert tallied("people") == recount("people")
    assert sum(t.total for t in PairTally.objects.filter(category="")) == Vote.objects.count() == 24
