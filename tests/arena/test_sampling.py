"""Pair sampling policies, without a database."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from arena.sampling import all_pairs, choose_pairs


def test_all_pairs_of_four_generators_are_the_six_unordered_pairs():
    assert all_pairs([4, 1, 3, 2, 1]) == [(1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4)]


def test_balanced_policy_serves_the_pair_with_fewest_votes_first():
    votes = {(1, 2): 5, (1, 3): 1, (2, 3): 3}
    order = choose_pairs([1, 2, 3], votes, policy="balanced", rng=random.Random(0))
    assert order == [(1, 3), (2, 3), (1, 2)]


def test_balanced_policy_reaches_equal_counts_when_followed():
    votes: Counter = Counter()
    rng = random.Random(1)
    for _ in range(60):
        votes[choose_pairs([1, 2, 3, 4], votes, policy="balanced", rng=rng)[0]] += 1
    assert set(votes.values()) == {10}


def test_uniform_policy_picks_every_pair_about_equally_often():
    rng = random.Random(2)
    first = Counter(choose_pairs([1, 2, 3], {}, policy="uniform", rng=rng)[0] for _ in range(3000))
    assert all(900 < n < 1100 for n in first.values()), first


def test_active_policy_prefers_the_most_informative_pair():
    order = choose_pairs([1, 2, 3], {}, policy="active", rng=random.Random(0), informativeness=lambda p: p[1] - p[0])
    assert order[0] == (1, 3)


def test_allowed_pairs_restrict_the_choice_and_unknown_policy_is_an_error():
    assert choose_pairs([1, 2, 3], {}, policy="balanced", rng=random.Random(0), allowed=[(3, 2)]) == [(2, 3)]
    with pytest.raises(ValueError, match="unknown sampling policy 'best'"):
        choose_pairs([1, 2], {}, policy="best", rng=random.Random(0))
