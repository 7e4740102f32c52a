"""Boards per group, the group test and raking (arena.groups), on plain simulated votes without a database."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import chi2

from arena.groups import (
    INTERVALS_PARTICIPANTS,
    GroupsError,
    ParticipantVotes,
    board,
    compare_groups,
    effective_size,
    parse_targets,
    participant_share,
    rake,
    weighted_board,
)
from arena.ranking import FIRST_WINS, SECOND_WINS, TIE, PairCounts, fit_ratings
from metrics.measures import wilson_interval

NAMES = ("wide", "base", "narrow")


def crowd(
    tastes: list[np.ndarray], votes_each: int, rng: np.random.Generator, *, start: int = 0, ties: float = 0.0
) -> list[tuple[str, str, str, int]]:
    """Votes of one participant per taste (strengths per generator), each on random pairs, as from_rows takes them."""
    rows = []
    for n, taste in enumerate(tastes):
        for _ in range(votes_each):
            i, j = rng.choice(len(NAMES), 2, replace=False)
            if rng.random() < ties:
                outcome = TIE
            else:
                outcome = FIRST_WINS if rng.random() < 1 / (1 + math.exp(taste[j] - taste[i])) else SECOND_WINS
            rows.append((f"p{start + n:04d}", NAMES[i], NAMES[j], outcome))
    return rows


def heterogeneous(mean: list[float], people: int, spread: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Each participant's own taste: the group's mean strengths plus their own deviation (votes correlate within)."""
    return [np.array(mean) + rng.normal(0, spread, len(mean)) for _ in range(people)]


# --- raking ---------------------------------------------------------------------------------------------------------


def test_raking_matches_a_hand_computed_two_margin_example():
    # Given 9 participants: man/young 4, man/old 2, woman/young 2, woman/old 1 (gender 6:3, age 6:3, and the
    # cells are the product of the margins, so one pass of IPF lands exactly).
    # Targets: gender 50/50, age young 40 / old 60.
    # By hand, weights with mean 1:
    #   gender pass: men 0.5 / (6/9) = 0.75, women 0.5 / (3/9) = 1.5; young's share is then (4*.75 + 2*1.5)/9 = 6/9.
    #   age pass: young x 0.4 / (6/9) = 0.6, old x 0.6 / (3/9) = 1.8:
    #   man/young 0.45, man/old 1.35, woman/young 0.9, woman/old 2.7 (sum 9: mean 1 already).
    #   Check: men 4*.45 + 2*1.35 = 4.5 of 9 = 50%; young 4*.45 + 2*.9 = 3.6 of 9 = 40%.
    #   Kish: 81 / (4*.45^2 + 2*1.35^2 + 2*.9^2 + 2.7^2) = 81 / 13.365 = 200/33 = 6.0606.
    answers = (
        [{"gender": "man", "age": "young"}] * 4
        + [{"gender": "man", "age": "old"}] * 2
        + [{"gender": "woman", "age": "young"}] * 2
        + [{"gender": "woman", "age": "old"}]
    )
    targets = parse_targets(
        {
            "margins": [
                {"questions": ["gender"], "shares": {"man": 0.5, "woman": 0.5}},
                {"questions": ["age"], "shares": {"young": 0.4, "old": 0.6}},
            ]
        }
    ).margins

    raking = rake(answers, targets, cap=5)

    assert raking.weights == pytest.approx([0.45] * 4 + [1.35] * 2 + [0.9] * 2 + [2.7])
    assert raking.effective_size == pytest.approx(200 / 33)
    assert raking.converged
    assert raking.excluded == 0
    assert raking.empty_cells == ()
    shares = {(c.margin, c.cell): (c.sample, c.weighted) for c in raking.cells}
    assert shares[("gender", ("man",))] == pytest.approx((6 / 9, 0.5))
    assert shares[("age", ("old",))] == pytest.approx((3 / 9, 0.6))


def test_a_binding_cap_holds_and_is_reported_with_the_share_it_leaves():
    # Given 8 participants in a and 2 in b, target 50/50, cap 2 x the mean weight.
    # Uncapped: a 0.5/0.8 = 0.625, b 0.5/0.2 = 2.5. Capped, b = 2 * mean: with a's weights x, b's y = 2 (8x + 2y) / 10,
    # so y = 8x/3; mean 1: 8x + 2y = 10 gives x = 0.75, y = 2. b's share is then 4/10 = 40%, not 50%.
    # Kish: 100 / (8 * 0.5625 + 2 * 4) = 8.
    answers = [{"q": "a"}] * 8 + [{"q": "b"}] * 2
    targets = parse_targets({"margins": [{"questions": ["q"], "shares": {"a": 0.5, "b": 0.5}}], "cap": 2})
    assert targets.cap == 2

    raking = rake(answers, targets.margins, cap=targets.cap)

    assert raking.weights == pytest.approx([0.75] * 8 + [2.0] * 2)
    assert not raking.converged
    assert raking.at_cap == 2
    assert raking.effective_size == pytest.approx(8.0)
    assert {c.cell: c.weighted for c in raking.cells} == pytest.approx({("a",): 0.6, ("b",): 0.4})


def test_empty_target_cells_are_reported_and_unmatched_participants_get_no_weight():
    # Given a joint gender x age target with a cell nobody is in, and one participant who preferred not to say.
    answers = [
        {"gender": "man", "age": "young"},
        {"gender": "man", "age": "young"},
        {"gender": "woman", "age": "young"},
        {"gender": "prefer not to say", "age": "old"},
        None,
    ]
    targets = parse_targets(
        {
            "margins": [
                {
                    "questions": ["gender", "age"],
                    "shares": {"man|young": 0.25, "woman|young": 0.25, "man|old": 0.25, "woman|old": 0.25},
                }
            ]
        }
    ).margins

    raking = rake(answers, targets)

    # The two old cells are empty, so the young cells share the whole target: 50/50 between man and woman.
    assert set(raking.empty_cells) == {("gender x age", ("man", "old")), ("gender x age", ("woman", "old"))}
    assert raking.excluded == 2
    assert raking.weights == pytest.approx([0.75, 0.75, 1.5, 0.0, 0.0])


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ({}, "margins"),
        ({"margins": [{"questions": ["g"], "shares": {"a": 0.5, "b": 0.4}}]}, "sum to 0.9"),
        ({"margins": [{"questions": ["g"], "shares": {"a": -0.5, "b": 1.5}}]}, ">= 0"),
        ({"margins": [{"questions": ["g", "a"], "shares": {"x": 1.0}}]}, "one value for each"),
        ({"margins": [{"questions": ["g"], "shares": {"a": 1}}, {"questions": ["g"], "shares": {"a": 1}}]}, "already"),
        ({"margins": [{"questions": ["g"], "shares": {"a": 1}, "extra": 1}]}, "exactly"),
        ({"margins": [{"questions": ["g"], "shares": {"a": 1}}], "weights": 1}, "unknown keys: weights"),
    ],
)
def test_bad_targets_are_refused_naming_what_is_wrong(targets, message):
    with pytest.raises(GroupsError, match=message):
        parse_targets(targets)


def test_the_cap_must_be_at_least_one():
    targets = parse_targets({"margins": [{"questions": ["q"], "shares": {"a": 1.0}}]})
    assert targets.cap == 5
    with pytest.raises(GroupsError, match="cap"):
        rake([{"q": "a"}], targets.margins, cap=0.5)
    with pytest.raises(GroupsError, match="cap"):
        parse_targets({"margins": [{"questions": ["q"], "shares": {"a": 1.0}}], "cap": "big"})


def test_effective_size_is_kish():
    assert effective_size(np.ones(10)) == pytest.approx(10)
    assert effective_size(np.array([1.0, 0.0, 0.0])) == pytest.approx(1)


def test_the_weighted_board_ranks_as_the_target_population_would():
    # Given a crowd of 24 men who prefer wide and 6 women who prefer narrow, and a target of 20% men, 80% women.
    rng = np.random.default_rng(3)
    men = crowd([np.array([1.5, 0.0, -1.5])] * 24, 20, rng)
    women = crowd([np.array([-1.5, 0.0, 1.5])] * 6, 20, rng, start=24)
    votes = ParticipantVotes.from_rows(NAMES, men + women)
    answers = [{"gender": "man" if int(who[1:]) < 24 else "woman"} for who in votes.participants]
    targets = parse_targets({"margins": [{"questions": ["gender"], "shares": {"man": 0.2, "woman": 0.8}}]})

    result = weighted_board(votes, answers, targets.margins, cap=10, rounds=30, seed=1)

    # The crowd's board puts wide first; the board weighted to the population puts narrow first.
    assert result.unweighted.standings[0].name == "wide"
    assert result.weighted.standings[0].name == "narrow"
    assert result.weighted.intervals == INTERVALS_PARTICIPANTS
    assert result.raking.converged
    assert {c.cell: round(c.weighted, 6) for c in result.raking.cells} == {("man",): 0.2, ("woman",): 0.8}
    # Women weigh 0.8/0.2 = 4 each, men 0.2/0.8 = 0.25: Kish 30^2 / (24 * 0.0625 + 6 * 16) = 9.23.
    assert result.raking.effective_size == pytest.approx(900 / 97.5)


# --- participant bootstrap -------------------------------------------------------------------------------------------


def width(standing) -> float:
    return standing.ci_high - standing.ci_low


def test_the_participant_bootstrap_widens_intervals_when_a_participants_votes_agree():
    # Given 20 participants who each vote 30 times between wide and base: half always for wide, half always for base.
    rows = []
    for n in range(20):
        for _ in range(30):
            rows.append((f"p{n:02d}", "wide", "base", FIRST_WINS if n % 2 else SECOND_WINS))
    votes = ParticipantVotes.from_rows(("wide", "base"), rows)

    by_participant = board(votes, rounds=300, seed=0)
    by_vote = fit_ratings(votes.counts(), bootstrap=300, seed=0)

    # 600 votes look like a tight 50/50; they are 20 opinions, and the interval says so (about sqrt(30) wider).
    assert width(by_participant.by_name("wide")) > 3 * width(by_vote.by_name("wide"))
    assert by_participant.intervals == INTERVALS_PARTICIPANTS


def test_the_participant_bootstrap_agrees_with_the_vote_bootstrap_when_votes_are_independent():
    rng = np.random.default_rng(5)
    rows = crowd([np.array([0.4, 0.0, -0.4])] * 40, 15, rng)
    votes = ParticipantVotes.from_rows(NAMES, rows)

    by_participant = board(votes, rounds=300, seed=0)
    by_vote = fit_ratings(votes.counts(), bootstrap=300, seed=0)

    for name in NAMES:
        assert 0.7 < width(by_participant.by_name(name)) / width(by_vote.by_name(name)) < 1.4
        # The point fit is the exact fit of all the votes.
        assert by_participant.by_name(name).rating == pytest.approx(by_vote.by_name(name).rating)


def test_counts_per_participant_add_up_to_the_votes():
    rows = [("a", "wide", "base", FIRST_WINS), ("b", "base", "wide", TIE), ("a", "narrow", "wide", SECOND_WINS)]
    votes = ParticipantVotes.from_rows(NAMES, rows)

    counts = votes.counts()
    expected = PairCounts.from_tallies(NAMES, [("wide", "base", 1, 0, 1), ("narrow", "wide", 0, 1, 0)])

    assert np.array_equal(counts.wins, expected.wins)
    assert np.array_equal(counts.ties, expected.ties)
    assert votes.votes_per_participant.tolist() == [2, 1]
    # Only b, twice: one tie counted twice.
    assert votes.counts(np.array([0.0, 2.0])).ties[0, 1] == 2


def test_votes_naming_an_unknown_generator_are_refused():
    with pytest.raises(GroupsError, match="unknown generator"):
        ParticipantVotes.from_rows(NAMES, [("a", "wide", "elsewhere", FIRST_WINS)])


# --- the group test -------------------------------------------------------------------------------------------------


def test_two_groups_from_the_same_judge_reject_about_as_often_as_alpha():
    # Given 40 seeded runs of 2 x 10 participants drawn from one population whose members differ widely in taste
    # (so a participant's 20 votes are correlated, which a vote-level test mistakes for a group difference), the
    # labels at random. With 19 permutations, p <= 0.10 means "largest or second largest of 20": exactly 10% under
    # the null. Expect 4 of 40 (binomial sd 1.9); the window 1..9 holds with room. The chi-square law on the same
    # statistic, which takes the votes as independent, rejects in 26 of these 40 runs: the window catches that.
    rejections = chi_square_rejections = 0
    for run in range(40):
        rng = np.random.default_rng(1000 + run)
        tastes = heterogeneous([0.6, 0.0, -0.6], 20, 2.0, rng)
        votes = ParticipantVotes.from_rows(NAMES, crowd(tastes, 20, rng))
        labels = [str(g) for g in rng.permutation([0] * 10 + [1] * 10)]
        result = compare_groups(votes, labels, permutations=19, rounds=0, seed=run)
        rejections += result.p_value <= 0.10
        chi_square_rejections += chi2.sf(result.statistic, df=2) <= 0.10
    assert 1 <= rejections <= 9
    assert chi_square_rejections > 9


def test_groups_that_prefer_different_generators_are_told_apart_within_150_comparisons_each():
    # Given one group that judges colour spread (wide > base > narrow) and one that prefers base.
    rng = np.random.default_rng(7)
    diverse = crowd(heterogeneous([1.2, 0.0, -1.2], 15, 0.3, rng), 10, rng)
    plain = crowd(heterogeneous([-0.6, 1.2, -0.6], 15, 0.3, rng), 10, rng, start=15)
    votes = ParticipantVotes.from_rows(NAMES, diverse + plain)
    labels = ["diverse" if int(who[1:]) < 15 else "plain" for who in votes.participants]

    result = compare_groups(votes, labels, permutations=199, rounds=100, seed=0, min_size=5)

    assert sum(g.votes for g in result.groups) == 300
    assert result.p_value < 0.01
    assert result.reference == "diverse"  # equal sizes: the first label
    wide = next(d for d in result.differences if d.generator == "wide")
    base = next(d for d in result.differences if d.generator == "base")
    # The plain group rates wide lower and base higher than the diverse group, and the intervals exclude 0.
    assert wide.ci_high < 0 < base.ci_low
    boards = {g.label: g.board for g in result.groups}
    assert boards["diverse"].standings[0].name == "wide"
    assert boards["plain"].standings[0].name == "base"
    assert all(g.board.intervals == INTERVALS_PARTICIPANTS for g in result.groups)


def test_groups_below_the_smallest_size_are_left_out_and_never_named():
    rng = np.random.default_rng(2)
    votes = ParticipantVotes.from_rows(NAMES, crowd([np.zeros(3)] * 13, 5, rng))
    labels: list[str | None] = ["a"] * 6 + ["b"] * 5 + ["rare"] * 1 + [None]

    result = compare_groups(votes, labels, min_size=5, permutations=9, rounds=5)

    assert [g.label for g in result.groups] == ["a", "b"]
    assert result.suppressed_groups == 1
    assert all(d.group != "rare" and d.reference != "rare" for d in result.differences)
    assert sum(g.participants for g in result.groups) == 11

    with pytest.raises(GroupsError, match="at least two groups of at least 6"):
        compare_groups(votes, labels, min_size=6, permutations=9, rounds=5)


def test_the_p_value_is_never_below_one_over_permutations_plus_one():
    rng = np.random.default_rng(4)
    one = crowd([np.array([3.0, 0.0, -3.0])] * 6, 10, rng)
    other = crowd([np.array([-3.0, 0.0, 3.0])] * 6, 10, rng, start=6)
    votes = ParticipantVotes.from_rows(NAMES, one + other)
    labels = ["x" if int(who[1:]) < 6 else "y" for who in votes.participants]

    result = compare_groups(votes, labels, permutations=9, rounds=0)

    assert result.p_value == pytest.approx(0.1)
    assert result.statistic > 0


# --- a share of votes over participants (the metrics' agreement for a group) -------------------------------------


def test_a_participant_share_is_the_pooled_ratio_and_collapses_when_every_participant_agrees_alike():
    # Given 3 participants who each agree on half their judged votes (2/4, 3/6, 1/2): 6 of 12.
    share = participant_share([2, 3, 1], [4, 6, 2], rounds=200, seed=0)
    assert (share.hits, share.votes, share.participants) == (6, 12, 3)
    assert share.share == pytest.approx(0.5)
    # Every redraw of these participants gives 1/2 again: the interval is the point. A vote-level interval
    # (Wilson on 6 of 12: 0.25 to 0.75) would not collapse.
    assert (share.ci_low, share.ci_high) == (pytest.approx(0.5), pytest.approx(0.5))
    # A participant without judged votes counts for nothing.
    assert participant_share([2, 3, 1, 0], [4, 6, 2, 0]).participants == 3


def test_a_participant_share_is_wider_than_wilson_when_each_participant_always_answers_alike():
    # 10 participants of 20 judged votes each: 5 always agree, 5 never do. 100 of 200, but only 10 independent
    # answers: the interval must be about as wide as a proportion over 10, not over 200.
    share = participant_share([20] * 5 + [0] * 5, [20] * 10, rounds=2000, seed=1)
    wilson = wilson_interval(100, 200)
    assert share.share == pytest.approx(0.5)
    assert share.ci_high - share.ci_low > 2 * (wilson[1] - wilson[0])
    # Percentile bootstrap of a proportion over 10: 2.5% and 97.5% quantiles of Binomial(10, 0.5) / 10.
    assert share.ci_low == pytest.approx(0.2, abs=0.05)
    assert share.ci_high == pytest.approx(0.8, abs=0.05)


def test_the_participant_share_interval_covers_the_true_share_about_as_often_as_its_level():
    # 300 seeded crowds of 30 participants whose own agreement rates vary (Beta(2, 2) around 0.5), 10 judged
    # votes each: the 95% interval should hold 0.5 in about 95% of them (binomial sd 1.3%). On these seeds it
    # holds it in 96.3%; a 90% interval in 92.7%, and Wilson's on the votes (which takes a participant's votes
    # as independent) in 81%: the window below tells each of those apart.
    covered = 0
    for run in range(300):
        rng = np.random.default_rng(40_000 + run)
        rates = rng.beta(2, 2, 30)
        hits = rng.binomial(10, rates)
        share = participant_share(hits, [10] * 30, rounds=400, seed=run)
        covered += share.ci_low <= 0.5 <= share.ci_high
    assert 0.935 <= covered / 300 <= 0.99


def test_a_participant_share_refuses_what_is_not_one_count_per_participant():
    with pytest.raises(GroupsError, match="one number per participant"):
        participant_share([1, 2], [3])
    with pytest.raises(GroupsError, match="between 0 and their votes"):
        participant_share([4], [3])
    assert participant_share([], []).share is None
