"""Pair sampling policies, without a database."""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass

import pytest

from arena.sampling import active_weights, all_pairs, choose_pairs, choose_sides, sample_pairs


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


@dataclass(frozen=True)
class Rated:
    rating: float
    ci_low: float
    ci_high: float
    votes: float


def test_active_weights_favour_close_uncertain_pairs_and_keep_an_exploration_floor():
    standings = {
        1: Rated(1100, 1060, 1140, 200),
        2: Rated(1090, 1050, 1130, 200),  # overlaps 1 almost entirely
        3: Rated(800, 780, 820, 400),  # far below both, sure
    }
    weights = active_weights(standings, exploration=0.1)
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights[(1, 2)] > 10 * weights[(1, 3)]
    assert min(weights.values()) >= 0.1 / 3 - 1e-12
    assert active_weights(standings, exploration=1.0) == pytest.approx(dict.fromkeys(weights, 1 / 3))


def test_a_new_generator_without_votes_gets_the_top_weight():
    standings = {1: Rated(1000, 950, 1050, 50), 2: Rated(1010, 960, 1060, 50), 9: Rated(1000, -math.inf, math.inf, 0)}
    weights = active_weights(standings)
    assert weights[(1, 9)] == weights[(2, 9)] == max(weights.values())
    # A pair missing from the weights (a generator added after the fit) is also served early.
    known = {(1, 2): 0.8, (1, 3): 0.1, (2, 3): 0.1}
    first = [
        choose_pairs([1, 2, 3, 5], {}, policy="active", rng=random.Random(i), weights=known)[0] for i in range(400)
    ]
    assert sum(5 in pair for pair in first) > 0.6 * 400  # 3 pairs at weight 0.8 against 1.0 for the rest


def test_pairs_across_disconnected_parts_get_the_top_weight():
    @dataclass(frozen=True)
    class InPart(Rated):
        part: int

    standings = {
        1: InPart(1000, 990, 1010, 80, 0),
        2: InPart(1300, 1290, 1310, 80, 0),
        3: InPart(1000, 990, 1010, 80, 1),  # its own part: the same number on another scale
    }
    weights = active_weights(standings)
    # 1 and 3 look tied, 2 and 3 far apart, but neither difference means anything across parts.
    assert weights[(1, 3)] == weights[(2, 3)] > 10 * weights[(1, 2)]


def test_active_weights_without_intervals_fall_back_to_vote_counts():
    standings = {1: Rated(1000, 1000, 1000, 10), 2: Rated(1005, 1005, 1005, 10), 3: Rated(1400, 1400, 1400, 10)}
    weights = active_weights(standings)
    assert weights[(1, 2)] > weights[(1, 3)]


def test_active_policy_draws_pairs_in_proportion_to_their_weights():
    weights = {(1, 2): 0.6, (1, 3): 0.3, (2, 3): 0.1}
    rng = random.Random(3)
    first = Counter(choose_pairs([1, 2, 3], {}, policy="active", rng=rng, weights=weights)[0] for _ in range(3000))
    assert 1650 < first[(1, 2)] < 1950
    assert 150 < first[(2, 3)] < 450
    drawn = Counter(sample_pairs(weights, 3000, random.Random(4)))
    assert 800 < drawn[(1, 3)] < 1000


def test_choose_sides_keeps_left_and_right_exposure_balanced():
    rng = random.Random(5)
    left: Counter = Counter()
    right: Counter = Counter()
    for _ in range(600):
        pair = rng.choice(all_pairs([1, 2, 3, 4]))
        shown_left, shown_right = choose_sides(pair, left, right, rng)
        assert {shown_left, shown_right} == set(pair)
        left[shown_left] += 1
        right[shown_right] += 1
    assert all(abs(left[g] - right[g]) <= 2 for g in (1, 2, 3, 4)), (left, right)
    # With no history either side is equally likely.
    sides = Counter(choose_sides((1, 2), {}, {}, random.Random(i))[0] for i in range(400))
    assert 150 < sides[1] < 250
