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


# Tests written against mutation testing (scripts/mutation sampling): each one tells the rule apart from a
# plausible slip in it (a flipped comparison, a dropped default, a wrong constant).

ELO_PER_NAT = 400 / math.log(10)  # 400 Elo points per factor 10 of odds


def expected_active_weights(standings: dict[int, Rated], exploration: float, level: float = 0.95) -> dict:
    """The docstring's rule computed on its own: logistic win probability, Fisher information, normal tails."""
    from scipy.special import expit
    from scipy.stats import norm

    z = norm.ppf(0.5 + level / 2)

    def variance(s: Rated) -> float:
        width = (s.ci_high - s.ci_low) / ELO_PER_NAT
        return (width / (2 * z)) ** 2 if width > 0 else 4 / s.votes

    ids = sorted(standings)
    value = {}
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            gap = (standings[a].rating - standings[b].rating) / ELO_PER_NAT
            var = variance(standings[a]) + variance(standings[b])
            info = expit(gap) * expit(-gap)
            se_after = (1 / var + info) ** -0.5
            value[(a, b)] = (var**0.5 - se_after) * 2 * norm.sf(abs(gap) / var**0.5)
    total = sum(value.values())
    return {p: (1 - exploration) * v / total + exploration / len(value) for p, v in value.items()}


def test_active_weights_match_the_documented_rule_exactly():
    standings = {
        1: Rated(1100, 1060, 1140, 200),
        2: Rated(1040, 990, 1090, 120),
        3: Rated(900, 800, 1000, 30),
        4: Rated(1000, 1000, 1000, 10),  # no bootstrap: its variance comes from its 10 votes
    }
    for exploration in (0.0, 0.25):
        weights = active_weights(standings, exploration=exploration)
        assert weights == pytest.approx(expected_active_weights(standings, exploration), rel=1e-9)


def test_active_weights_at_a_90_percent_level_read_the_intervals_as_90_percent_ones():
    standings = {1: Rated(1100, 1050, 1150, 50), 2: Rated(1060, 1000, 1120, 50), 3: Rated(950, 930, 970, 300)}
    weights = active_weights(standings, exploration=0.0, level=0.9)
    assert weights == pytest.approx(expected_active_weights(standings, 0.0, level=0.9), rel=1e-9)
    assert weights != pytest.approx(expected_active_weights(standings, 0.0, level=0.95), rel=1e-3)


def test_exploration_outside_0_to_1_is_refused_naming_the_range_and_its_ends_are_allowed():
    standings = {1: Rated(1000, 950, 1050, 50), 2: Rated(1010, 960, 1060, 50)}
    for bad in (-0.01, 1.01, 1.5):
        with pytest.raises(ValueError, match=r"^exploration must be between 0 and 1$"):
            active_weights(standings, exploration=bad)
    assert active_weights(standings, exploration=0.0) == {(1, 2): pytest.approx(1.0)}
    assert active_weights(standings, exploration=1.0) == {(1, 2): pytest.approx(1.0)}


def test_the_part_number_itself_does_not_matter_only_whether_two_parts_differ():
    @dataclass(frozen=True)
    class InPart(Rated):
        part: int

    plain = {1: Rated(1100, 1060, 1140, 200), 2: Rated(1040, 990, 1090, 120), 3: Rated(700, 680, 720, 300)}
    in_part_two = {g: InPart(s.rating, s.ci_low, s.ci_high, s.votes, 2) for g, s in plain.items()}
    assert active_weights(in_part_two) == pytest.approx(active_weights(plain), rel=1e-12)


def test_who_counts_as_rated_needs_a_vote_and_both_interval_ends_finite():
    rated = {1: Rated(1000, 950, 1050, 50), 2: Rated(1300, 1280, 1320, 400)}
    # One vote is enough to be rated: 3's pair with the far-off 1 gets only the exploration share, while
    # its pair with the close 2 gets the rest (unrated, 3 would get as much with 1 as with 2).
    one_vote = active_weights({**rated, 3: Rated(1310, 1290, 1330, 1)})
    assert one_vote[(1, 3)] == pytest.approx(0.1 / 3)
    assert one_vote[(2, 3)] > 0.9
    # No votes (even with a finite interval from a prior), or one open end, is unrated: top weight.
    for newcomer in (Rated(1000, 1000, 1000, 0), Rated(1000, -math.inf, 1050, 5), Rated(1000, 950, math.inf, 5)):
        weights = active_weights({**rated, 3: newcomer})
        assert weights[(1, 3)] == weights[(2, 3)] == max(weights.values()) > 2 * weights[(1, 2)]


def test_with_every_generator_unrated_every_pair_is_equally_likely():
    fresh = {g: Rated(1000, -math.inf, math.inf, 0) for g in (1, 2, 3)}
    assert active_weights(fresh) == pytest.approx(dict.fromkeys([(1, 2), (1, 3), (2, 3)], 1 / 3))


def test_pairs_whose_order_is_certain_to_rounding_fall_back_to_equal_weights():
    # 100,000 Elo apart with 2-point intervals: every pair's uncertainty is 0.0, so no pair has value.
    settled = {g: Rated(g * 100_000, g * 100_000 - 1, g * 100_000 + 1, 500) for g in (1, 2, 3)}
    assert active_weights(settled, exploration=0.0) == {(1, 2): 1 / 3, (1, 3): 1 / 3, (2, 3): 1 / 3}


def test_balanced_policy_counts_a_pair_missing_from_the_votes_as_zero_and_ignores_informativeness():
    votes = {(1, 2): 1, (2, 3): 0}  # (1, 3) never voted on
    for seed in range(20):
        order = choose_pairs(
            [1, 2, 3], votes, policy="balanced", rng=random.Random(seed), informativeness=lambda p: p[0] * 10 + p[1]
        )
        assert order[-1] == (1, 2)


def test_active_policy_without_weights_or_informativeness_is_balanced():
    votes = {(1, 2): 4, (1, 3): 0, (2, 3): 2}
    assert choose_pairs([1, 2, 3], votes, policy="active", rng=random.Random(0)) == [(1, 3), (2, 3), (1, 2)]


def test_active_policy_breaks_equal_informativeness_by_fewest_votes_counting_missing_pairs_as_zero():
    votes = {(1, 2): 1, (2, 3): 3}  # (1, 3) never voted on
    for seed in range(20):
        order = choose_pairs([1, 2, 3], votes, policy="active", rng=random.Random(seed), informativeness=lambda p: 1.0)
        assert order == [(1, 3), (1, 2), (2, 3)]


def test_allowed_pairs_match_in_either_order():
    assert choose_pairs([1, 2, 3], {}, policy="balanced", rng=random.Random(0), allowed=[(1, 2)]) == [(1, 2)]
    assert choose_pairs([1, 2, 3], {}, policy="uniform", rng=random.Random(0), allowed=[(3, 1), (2, 3)]) in (
        [(1, 3), (2, 3)],
        [(2, 3), (1, 3)],
    )


def test_active_policy_with_empty_weights_draws_every_pair_alike():
    first = Counter(
        choose_pairs([1, 2, 3], {}, policy="active", rng=random.Random(i), weights={})[0] for i in range(600)
    )
    assert set(first) == {(1, 2), (1, 3), (2, 3)}
    assert all(150 < n < 250 for n in first.values()), first


def test_pairs_of_zero_weight_come_last_and_are_never_drawn_first():
    weights = {(1, 2): 0.0, (1, 3): 0.5, (2, 3): 0.5}
    for seed in range(50):
        order = choose_pairs([1, 2, 3], {}, policy="active", rng=random.Random(seed), weights=weights)
        assert order[-1] == (1, 2), order


def test_sample_pairs_draws_exactly_count_pairs_and_nothing_from_no_weights():
    weights = {(1, 2): 1.0, (1, 3): 1.0}
    assert len(sample_pairs(weights, 1, random.Random(0))) == 1
    assert len(sample_pairs(weights, 7, random.Random(0))) == 7
    assert sample_pairs(weights, 0, random.Random(0)) == []
    assert sample_pairs({}, 5, random.Random(0)) == []
