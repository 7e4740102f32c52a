"""Bradley-Terry ranking: exactness, scale, intervals, ranks and every degenerate case, without a database."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import expit

from arena import ranking
from arena.ranking import (
    ELO_PER_NAT,
    FIRST_WINS,
    SECOND_WINS,
    TIE,
    Leaderboard,
    PairCounts,
    expected_win_rates,
    fit_ratings,
    rank_from_intervals,
    win_rate_matrix,
)


def independent_mle(matrix: np.ndarray) -> np.ndarray:
    """Elo ratings (mean 1000) by BFGS on the BT log-likelihood with the first strength fixed at 0."""
    m = np.asarray(matrix, dtype=float)
    k = len(m)

    def negative(free: np.ndarray) -> tuple[float, np.ndarray]:
        s = np.concatenate([[0.0], free])
        d = s[:, None] - s[None, :]
        value = float((m * np.logaddexp(0.0, -d)).sum())
        q = m * expit(-d)
        grad = -(q.sum(axis=1) - q.sum(axis=0))
        return value, grad[1:]

    result = minimize(negative, np.zeros(k - 1), jac=True, method="BFGS", options={"gtol": 1e-11, "maxiter": 10_000})
    s = np.concatenate([[0.0], result.x])
    return 1000 + ELO_PER_NAT * (s - s.mean())


def random_counts(k: int, seed: int, votes: int = 40, tie_rate: float = 0.1) -> tuple[PairCounts, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.normal(0, 0.8, k)
    wins = np.zeros((k, k))
    ties = np.zeros((k, k))
    for i in range(k):
        for j in range(i + 1, k):
            tied = rng.binomial(votes, tie_rate)
            won = rng.binomial(votes - tied, expit(truth[i] - truth[j]))
            wins[i, j], wins[j, i] = won, votes - tied - won
            ties[i, j] = ties[j, i] = tied
    return PairCounts(tuple(f"g{i}" for i in range(k)), wins, ties), truth


def assert_no_nan(board: Leaderboard) -> None:
    for s in board.standings:
        for value in (s.rating, s.ci_low, s.ci_high, s.votes, s.wins, s.losses, s.ties):
            assert not math.isnan(value), s
        assert math.isfinite(s.rating)


def test_two_generators_match_the_closed_form_with_ties_as_half_wins():
    counts = PairCounts.from_tallies(["a", "b"], [("a", "b", 30, 10, 6)])
    board = fit_ratings(counts, bootstrap=0)
    gap = ELO_PER_NAT * math.log((30 + 3) / (10 + 3))
    assert board.by_name("a").rating == pytest.approx(1000 + gap / 2, abs=1e-6)
    assert board.by_name("b").rating == pytest.approx(1000 - gap / 2, abs=1e-6)
    assert board.method == "exact MLE"
    assert board.prior is None


def test_fit_matches_an_independent_mle_to_a_hundredth_of_an_elo_point():
    for seed in range(5):
        counts, _ = random_counts(6, seed, votes=25)
        board = fit_ratings(counts, bootstrap=0)
        ours = np.array([board.by_name(n).rating for n in counts.names])
        np.testing.assert_allclose(ours, independent_mle(counts.matrix), atol=0.01)


def test_fit_matches_an_independent_mle_on_sparse_uneven_fractional_data():
    # A chain with one weak link and weighted (non-integer) counts: slow ground for I-LSR.
    matrix = np.zeros((5, 5))
    for i, (won, lost) in enumerate([(40.5, 2.25), (3.0, 1.0), (12.0, 30.5), (0.5, 9.0)]):
        matrix[i, i + 1], matrix[i + 1, i] = won, lost
    board = fit_ratings(PairCounts.from_matrix([f"g{i}" for i in range(5)], matrix), bootstrap=0)
    ours = np.array([board.by_name(f"g{i}").rating for i in range(5)])
    np.testing.assert_allclose(ours, independent_mle(matrix), atol=0.01)


def test_elo_scale_is_400_points_per_factor_ten_of_odds_and_the_mean_is_1000():
    board = fit_ratings(PairCounts.from_tallies(["a", "b"], [("a", "b", 100, 10, 0)]), bootstrap=0)
    assert board.by_name("a").rating - board.by_name("b").rating == pytest.approx(400.0)
    counts, _ = random_counts(7, 3)
    ratings = fit_ratings(counts, bootstrap=0).ratings()
    assert np.mean(list(ratings.values())) == pytest.approx(1000.0)


def test_anchor_pins_one_rating_and_keeps_the_gaps():
    counts, _ = random_counts(5, 4)
    free = fit_ratings(counts, bootstrap=100, seed=1)
    pinned = fit_ratings(counts, bootstrap=100, seed=1, anchor=("g2", 1200.0))
    assert pinned.by_name("g2").rating == pytest.approx(1200.0)
    shift = 1200.0 - free.by_name("g2").rating
    for name in counts.names:
        assert pinned.by_name(name).rating == pytest.approx(free.by_name(name).rating + shift)
    # Every round is re-anchored: the anchor's own interval collapses onto it.
    assert pinned.by_name("g2").ci_low == pytest.approx(1200.0)
    assert pinned.by_name("g2").ci_high == pytest.approx(1200.0)
    assert "anchored: g2 = 1200" in pinned.method_note
    with pytest.raises(ValueError, match="anchor generator 'zz'"):
        fit_ratings(counts, anchor=("zz", 1000.0))


def test_no_votes_at_all_gives_unrated_generators_not_an_error():
    board = fit_ratings(PairCounts.empty(["a", "b", "c"]))
    assert board.method == "no comparisons"
    assert "no votes yet" in board.method_note
    assert [s.rating for s in board.standings] == [1000.0] * 3
    assert all(s.ci_low == -math.inf and s.ci_high == math.inf and s.rank == 1 for s in board.standings)
    assert board.as_rows()[0]["ci_low"] is None  # JSON has no infinity
    assert fit_ratings(PairCounts.empty([])).standings == ()


def test_one_generator_is_rated_1000_with_an_unbounded_interval():
    board = fit_ratings(PairCounts.empty(["only"]), anchor=("only", 1234.0))
    (standing,) = board.standings
    assert (standing.rating, standing.rank, standing.votes) == (1234.0, 1, 0.0)
    assert not standing.rated
    assert_no_nan(board)


def test_a_generator_with_only_wins_gets_a_finite_rating_and_the_output_says_a_prior_was_used():
    counts = PairCounts.from_tallies(
        ["champ", "x", "y"], [("champ", "x", 5, 0, 0), ("champ", "y", 4, 0, 0), ("x", "y", 6, 4, 2)]
    )
    board = fit_ratings(counts, bootstrap=200)
    assert_no_nan(board)
    assert board.method == "regularised MLE"
    assert board.prior == 0.5
    assert "perfect separation" in board.method_note
    assert "champ" in board.method_note
    assert board.standings[0].name == "champ"
    assert board.by_name("champ").rating > board.by_name("x").rating + 100


def test_a_generator_with_only_losses_is_last_and_leaves_the_others_exact():
    counts = PairCounts.from_tallies(["x", "y", "loser"], [("x", "y", 9, 3, 0), ("loser", "x", 0, 3, 0)])
    board = fit_ratings(counts, bootstrap=0)
    assert_no_nan(board)
    assert board.standings[-1].name == "loser"
    assert "loser" in board.method_note
    # The prior touches only the pair between the separated groups: x against y is still exact.
    gap = board.by_name("x").rating - board.by_name("y").rating
    assert gap == pytest.approx(ELO_PER_NAT * math.log(9 / 3), abs=1e-6)


def test_connected_data_without_separation_is_never_regularised():
    counts, _ = random_counts(6, 11, votes=30)
    board = fit_ratings(counts, bootstrap=0, prior=5.0)
    ours = np.array([board.by_name(n).rating for n in counts.names])
    np.testing.assert_allclose(ours, independent_mle(counts.matrix), atol=0.01)
    assert board.method == "exact MLE"


def test_a_disconnected_comparison_graph_is_reported_as_parts_ranked_separately():
    counts = PairCounts.from_tallies(
        ["a", "b", "c", "d", "e"], [("a", "b", 8, 2, 0), ("c", "d", 5, 5, 1), ("d", "e", 3, 6, 0), ("c", "e", 2, 2, 2)]
    )
    board = fit_ratings(counts, bootstrap=100)
    assert_no_nan(board)
    assert board.parts == 2
    assert "2 disconnected parts" in board.method_note
    parts = {s.name: s.part for s in board.standings}
    assert parts["c"] == parts["d"] == parts["e"] == 0  # the larger part first
    assert parts["a"] == parts["b"] == 1
    for part in (0, 1):
        members = [s for s in board.standings if s.part == part]
        assert np.mean([s.rating for s in members]) == pytest.approx(1000.0)
        assert min(s.rank for s in members) == 1


def test_a_generator_added_mid_campaign_with_few_votes_gets_a_wide_interval():
    counts, _ = random_counts(5, 6, votes=60)
    names = [*counts.names, "new"]
    wins = np.zeros((6, 6))
    ties = np.zeros((6, 6))
    wins[:5, :5] = counts.wins
    ties[:5, :5] = counts.ties
    wins[5, 0], wins[0, 5], wins[5, 1] = 1, 2, 1  # three votes: beat g0 once, lost to it twice, beat g1
    board = fit_ratings(PairCounts(tuple(names), wins, ties), bootstrap=200)
    assert_no_nan(board)
    assert board.method == "exact MLE"
    new = board.by_name("new")
    widths = [s.ci_high - s.ci_low for s in board.standings if s.name != "new"]
    assert new.votes == 4
    assert new.ci_high - new.ci_low > 2 * max(widths)


def test_bootstrap_is_deterministic_for_a_seed():
    counts, _ = random_counts(6, 7)
    first = fit_ratings(counts, bootstrap=150, seed=42)
    again = fit_ratings(counts, bootstrap=150, seed=42)
    other = fit_ratings(counts, bootstrap=150, seed=43)
    assert first == again
    assert (first.seed, first.bootstrap_rounds) == (42, 150)
    assert [s.ci_low for s in first.standings] != [s.ci_low for s in other.standings]


def test_intervals_cover_the_true_ratings_about_95_percent_of_the_time():
    rng = np.random.default_rng(2024)
    k, votes, repeats, tie_rate = 6, 60, 40, 0.1
    truth = np.linspace(-1.0, 1.0, k)
    true_rating = 1000 + ELO_PER_NAT * (truth - truth.mean())
    names = [f"g{i}" for i in range(k)]
    first, second = np.triu_indices(k, 1)
    first, second = np.repeat(first, votes), np.repeat(second, votes)
    # Ties scored as half a win fit BT only if the expected score is the BT probability: decisive
    # votes are drawn so that tie_rate / 2 + (1 - tie_rate) * P(first wins) = expit(gap).
    decisive_win = (expit(truth[first] - truth[second]) - tie_rate / 2) / (1 - tie_rate)
    covered = 0
    for repeat in range(repeats):
        tie = rng.random(first.size) < tie_rate
        won = rng.random(first.size) < decisive_win
        outcome = np.where(tie, TIE, np.where(won, FIRST_WINS, SECOND_WINS))
        board = fit_ratings(PairCounts.from_indices(names, first, second, outcome), bootstrap=100, seed=repeat)
        covered += sum(s.ci_low <= true_rating[names.index(s.name)] <= s.ci_high for s in board.standings)
    coverage = covered / (k * repeats)
    assert 0.88 <= coverage <= 0.99, coverage


def test_ranks_respect_the_intervals():
    counts, _ = random_counts(10, 8, votes=30)
    board = fit_ratings(counts, bootstrap=200)
    for s in board.standings:
        surely_better = [o for o in board.standings if o.ci_low > s.ci_high]
        assert s.rank == 1 + len(surely_better)
        assert s.ci_low <= s.rating <= s.ci_high
    assert rank_from_intervals([10, 0, 4], [12, 2, 11]).tolist() == [1, 3, 1]
    assert rank_from_intervals([10, 0], [12, 2], part=[0, 1]).tolist() == [1, 1]


def test_counts_from_a_half_win_matrix_fit_the_same_as_from_votes():
    counts, _ = random_counts(5, 9)
    with_ties = PairCounts.from_matrix(counts.names, counts.matrix, ties=counts.ties)
    np.testing.assert_allclose(with_ties.wins, counts.wins)
    folded = PairCounts.from_matrix(counts.names, counts.matrix)
    assert fit_ratings(folded, bootstrap=0).ratings() == pytest.approx(fit_ratings(counts, bootstrap=0).ratings())
    by_votes = PairCounts.from_indices(["a", "b", "c"], [0, 0, 1, 2], [1, 1, 2, 0], [FIRST_WINS, TIE, SECOND_WINS, TIE])
    assert by_votes.matrix.tolist() == [[0, 1.5, 0.5], [0.5, 0, 0], [0.5, 1, 0]]
    assert by_votes.total == 4


def test_bad_counts_are_refused():
    with pytest.raises(ValueError, match="non-negative"):
        PairCounts(("a", "b"), np.array([[0, -1], [0, 0]]), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="symmetric"):
        PairCounts(("a", "b"), np.zeros((2, 2)), np.array([[0, 1], [0, 0]]))
    with pytest.raises(ValueError, match="unique"):
        PairCounts.empty(["a", "a"])
    with pytest.raises(ValueError, match="3 x 3"):
        PairCounts(("a", "b", "c"), np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="itself"):
        PairCounts.from_indices(["a", "b"], [0], [0], [TIE])


def test_win_rate_heatmap_and_model_win_rates():
    counts = PairCounts.from_tallies(["a", "b", "c"], [("a", "b", 3, 1, 2)])
    rates = win_rate_matrix(counts)
    assert rates[0, 1] == pytest.approx(4 / 6)
    assert rates[1, 0] == pytest.approx(2 / 6)
    assert np.isnan(rates[[0, 0], [2, 0]]).all()
    board = fit_ratings(counts, bootstrap=0)
    expected = expected_win_rates(board, ["a", "b", "c"])
    assert expected[0, 1] == pytest.approx(4 / 6)  # the MLE reproduces a lone pair's win rate
    assert np.isnan(expected[0, 2])  # c has no votes


def test_resampled_scores_follow_the_exact_multinomial_law():
    # The bootstrap draws S = 2 * wins + ties per pair from a tabulated law; compare with brute force.
    n, p_first, p_second, p_tie = 9, 0.5, 0.3, 0.2
    exact = np.zeros(2 * n + 1)
    for wins in range(n + 1):
        for ties in range(n - wins + 1):
            losses = n - wins - ties
            coefficient = math.factorial(n) / (math.factorial(wins) * math.factorial(ties) * math.factorial(losses))
            exact[2 * wins + ties] += coefficient * p_first**wins * p_tie**ties * p_second**losses
    tables = ranking._ScoreTables(np.array([n]), np.array([p_first]), np.array([p_second]), np.array([p_tie]))
    cdf = np.zeros(2 * n + 1)
    cdf[tables.low[0] : tables.low[0] + tables.cdfs[0].size] = tables.cdfs[0]
    cdf[tables.low[0] + tables.cdfs[0].size :] = 1.0
    np.testing.assert_allclose(cdf, np.cumsum(exact), atol=1e-12)
    draws = tables.draw(np.random.default_rng(0), 20_000)[:, 0]
    assert abs(draws.mean() - n * (2 * p_first + p_tie)) < 0.05


def test_separated_bootstrap_rounds_are_counted_and_said():
    counts = PairCounts.from_tallies(["a", "b", "c"], [("a", "b", 2, 1, 0), ("b", "c", 1, 1, 0), ("a", "c", 1, 1, 0)])
    board = fit_ratings(counts, bootstrap=300, seed=5)
    assert board.method == "exact MLE"
    assert 0 < board.separated_rounds < 300
    assert f"{board.separated_rounds} of 300 bootstrap rounds" in board.method_note
    assert_no_nan(board)


# --- closed-form (sandwich) intervals -----------------------------------------------------------------------

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def half_widths_in_nats(board: Leaderboard, names: list[str]) -> np.ndarray:
    return np.array([(board.by_name(n).ci_high - board.by_name(n).ci_low) / 2 / ELO_PER_NAT for n in names])


def numeric_sandwich(wins: np.ndarray, ties: np.ndarray, strengths: np.ndarray) -> np.ndarray:
    """The robust covariance derived from the log-likelihood alone, by finite differences (no formula shared).

    Votes are observations with outcome 1 (row won), 0 or 1/2 (a tie); the Hessian of the summed
    log-likelihood and each vote's score are taken numerically; centring is a projection.
    """
    k = len(strengths)
    observations = [(i, j, 1.0, wins[i, j]) for i in range(k) for j in range(k) if wins[i, j]]
    observations += [(i, j, 0.5, ties[i, j]) for i in range(k) for j in range(i + 1, k) if ties[i, j]]

    def loglik(s: np.ndarray, i: int, j: int, y: float) -> float:
        d = s[i] - s[j]
        return float(-y * np.logaddexp(0.0, -d) - (1 - y) * np.logaddexp(0.0, d))

    def total(s: np.ndarray) -> float:
        return sum(n * loglik(s, i, j, y) for i, j, y, n in observations)

    h = 1e-4
    unit = np.eye(k)
    hessian = np.array(
        [
            [
                (
                    total(strengths + h * (unit[a] + unit[b]))
                    - total(strengths + h * (unit[a] - unit[b]))
                    - total(strengths - h * (unit[a] - unit[b]))
                    + total(strengths - h * (unit[a] + unit[b]))
                )
                / (4 * h * h)
                for b in range(k)
            ]
            for a in range(k)
        ]
    )
    meat = np.zeros((k, k))
    for i, j, y, n in observations:
        score = np.array(
            [
                (loglik(strengths + h * unit[a], i, j, y) - loglik(strengths - h * unit[a], i, j, y)) / (2 * h)
                for a in range(k)
            ]
        )
        meat += n * np.outer(score, score)
    # The pseudo-inverse on the centred subspace: finite differences leave a speck of curvature along
    # the all-ones direction, which the projection and the cut-off remove.
    centring = np.eye(k) - 1.0 / k
    bread_inverse = np.linalg.pinv(centring @ -hessian @ centring, rcond=1e-8, hermitian=True)
    return bread_inverse @ meat @ bread_inverse


def test_sandwich_intervals_match_a_numerical_derivation_from_the_log_likelihood():
    rng = np.random.default_rng(11)
    names = ["a", "b", "c", "d", "e"]
    wins = rng.integers(1, 30, size=(5, 5)).astype(float)
    np.fill_diagonal(wins, 0)
    ties = np.triu(rng.integers(0, 12, size=(5, 5)), 1).astype(float)
    ties = ties + ties.T
    board = fit_ratings(PairCounts(tuple(names), wins, ties), intervals="sandwich")
    strengths = np.array([(board.by_name(n).rating - 1000) / ELO_PER_NAT for n in names])

    expected = np.sqrt(np.diag(numeric_sandwich(wins, ties, strengths)))

    assert half_widths_in_nats(board, names) / Z95 == pytest.approx(expected, rel=1e-5)
    assert board.intervals == "sandwich"
    assert board.bootstrap_rounds == 0
    # The point fit is the one the bootstrap board has: only the intervals differ.
    assert board.ratings() == pytest.approx(fit_ratings(PairCounts(tuple(names), wins, ties), bootstrap=0).ratings())


def test_without_ties_the_sandwich_is_close_to_the_fisher_interval_and_ties_narrow_it():
    # Given votes that follow the model, the meat is the bread on average: the sandwich ~ 1 / sqrt(Fisher).
    rng = np.random.default_rng(3)
    names = ["a", "b", "c"]
    s = np.array([-0.4, 0.0, 0.4])
    wins = np.zeros((3, 3))
    for i in range(3):
        for j in range(i + 1, 3):
            won = rng.binomial(4000, expit(s[i] - s[j]))
            wins[i, j], wins[j, i] = won, 4000 - won
    plain = fit_ratings(PairCounts.from_matrix(names, wins), intervals="sandwich")
    x = np.array([(plain.by_name(n).rating - 1000) / ELO_PER_NAT for n in names])
    p = expit(x[:, None] - x[None, :])
    w = 4000 * p * p.T
    np.fill_diagonal(w, 0)
    fisher = np.linalg.pinv(np.diag(w.sum(axis=1)) - w)
    assert half_widths_in_nats(plain, names) / Z95 == pytest.approx(np.sqrt(np.diag(fisher)), rel=0.05)
    # When half the votes are ties with the same expected outcome, each carries less variance: narrower.
    tied = PairCounts(tuple(names), wins / 2, np.where(np.eye(3) == 1, 0.0, 2000.0) + 0 * wins)
    assert np.all(
        half_widths_in_nats(fit_ratings(tied, intervals="sandwich"), names) < half_widths_in_nats(plain, names)
    )


def simulate(rng: np.random.Generator, s: np.ndarray, votes: int, tie_share: float) -> PairCounts:
    """Votes on random pairs: with probability `tie_share` a tie, otherwise a win drawn so that the expected
    outcome (a tie as 1/2) is exactly sigmoid(s_i - s_j): the fit's model holds in mean, not in variance."""
    k = len(s)
    first = rng.integers(0, k, size=votes)
    second = (first + rng.integers(1, k, size=votes)) % k
    p = expit(s[first] - s[second])
    tie = rng.random(votes) < tie_share
    win = rng.random(votes) < (p - tie_share / 2) / (1 - tie_share)
    outcome = np.where(tie, TIE, np.where(win, FIRST_WINS, SECOND_WINS))
    return PairCounts.from_indices([f"g{i}" for i in range(k)], first, second, outcome)


def test_sandwich_intervals_cover_the_true_ratings_95_percent_of_the_time():
    # Given 800 simulated boards (fixed seed) of 4 generators and 400 votes, 40% of them ties,
    rng = np.random.default_rng(2024)
    s = np.array([-0.5, -0.1, 0.2, 0.4])
    truth = 1000 + ELO_PER_NAT * (s - s.mean())
    covered = total = 0
    for _ in range(800):
        board = fit_ratings(simulate(rng, s, 400, 0.4), intervals="sandwich")
        for i, rating in enumerate(truth):
            row = board.by_name(f"g{i}")
            covered += row.ci_low <= rating <= row.ci_high
            total += 1
    # then 95% intervals cover 95% of the time, within a window that a 90% (or 99%) interval would miss.
    assert 0.935 <= covered / total <= 0.965, covered / total


def test_sandwich_intervals_on_degenerate_data_never_raise_or_give_nan():
    names = ["a", "b", "c", "d"]
    # no votes
    empty = fit_ratings(PairCounts.empty(names), intervals="sandwich")
    assert all(math.isinf(row.ci_low) and math.isinf(row.ci_high) for row in empty.standings)
    # two disconnected parts, and one generator that only won (the prior's regularised fit)
    wins = np.zeros((4, 4))
    wins[0, 1], wins[1, 0] = 5, 3
    wins[2, 3] = 4
    board = fit_ratings(PairCounts.from_matrix(names, wins), intervals="sandwich")
    for row in board.standings:
        assert math.isfinite(row.ci_low)
        assert math.isfinite(row.ci_high)
        assert row.ci_low < row.rating < row.ci_high
    assert "perfect separation" in board.method_note


def test_a_sandwich_interval_with_an_anchor_is_that_of_the_difference_to_the_anchor():
    rng = np.random.default_rng(5)
    names = ["a", "b", "c"]
    counts = simulate(rng, np.array([0.0, 0.3, -0.2]), 600, 0.2)
    counts = PairCounts(tuple(names), counts.wins, counts.ties)
    free = fit_ratings(counts, intervals="sandwich")
    pinned = fit_ratings(counts, intervals="sandwich", anchor=("a", 1200.0))
    assert pinned.by_name("a").ci_low == pinned.by_name("a").ci_high == pytest.approx(1200.0)
    strengths = np.array([(free.by_name(n).rating - 1000) / ELO_PER_NAT for n in names])
    cov = numeric_sandwich(np.asarray(counts.wins), np.asarray(counts.ties), strengths)
    spread = np.sqrt(cov[1, 1] + cov[0, 0] - 2 * cov[0, 1])
    assert half_widths_in_nats(pinned, ["b"])[0] / Z95 == pytest.approx(spread, rel=1e-4)


def test_an_unknown_interval_method_is_refused():
    with pytest.raises(ValueError, match="intervals must be one of bootstrap, sandwich"):
        fit_ratings(PairCounts.empty(["a", "b"]), intervals="jackknife")


def independent_bootstrap(counts: PairCounts, rounds: int, seed: int, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval ends (Elo) from resampling each pair's votes with replacement, every round refitted by
    Newton's method on the BT log-likelihood (all rounds at once, the first strength fixed at 0)."""
    rng = np.random.default_rng(seed)
    k = counts.size
    m = np.zeros((rounds, k, k))
    for i in range(k):
        for j in range(i + 1, k):
            n = int(counts.comparisons[i, j])
            if n:
                shares = np.array([counts.wins[i, j], counts.wins[j, i], counts.ties[i, j]]) / n
                won, lost, tied = rng.multinomial(n, shares, size=rounds).T
                m[:, i, j], m[:, j, i] = won + tied / 2, lost + tied / 2
    s = np.zeros((rounds, k))
    total = m + m.transpose(0, 2, 1)
    for _ in range(50):
        p = expit(s[:, :, None] - s[:, None, :])
        gradient = (m - total * p).sum(axis=2)
        w = total * p * (1 - p)
        hessian = w - np.eye(k) * w.sum(axis=2)[:, :, None]
        s[:, 1:] -= np.linalg.solve(hessian[:, 1:, 1:], gradient[:, 1:, None])[:, :, 0]
    samples = 1000 + ELO_PER_NAT * (s - s.mean(axis=1, keepdims=True))
    assert np.abs(gradient).max() < 1e-8
    tail = 100 * (1 - level) / 2
    return np.percentile(samples, tail, axis=0), np.percentile(samples, 100 - tail, axis=0)


def test_bootstrap_interval_ends_are_the_2_5th_and_97_5th_percentiles_of_an_independent_bootstrap():
    # Given 400 votes among 4 generators, 30% of them ties (fixed seed),
    rng = np.random.default_rng(31)
    counts = simulate(rng, np.array([-0.5, -0.1, 0.2, 0.4]), 400, 0.3)
    names = list(counts.names)
    # when the leaderboard's 95% intervals are set beside the percentiles of a bootstrap written here,
    low, high = independent_bootstrap(counts, 1000, seed=7, level=0.95)
    board = fit_ratings(counts, bootstrap=1000, seed=5)
    ci_low = np.array([board.by_name(n).ci_low for n in names])
    ci_high = np.array([board.by_name(n).ci_high for n in names])
    # then each end is within Monte Carlo noise of the 2.5th or 97.5th percentile (on these seeds, 4% of the
    # width at most), and the widths agree on average; a 90% interval is 15% narrower, a 99% one 32% wider.
    width = high - low
    assert np.abs(ci_low - low).max() < 0.07 * width.min(), (ci_low - low, width)
    assert np.abs(ci_high - high).max() < 0.07 * width.min(), (ci_high - high, width)
    assert np.mean((ci_high - ci_low) / width) == pytest.approx(1.0, abs=0.05)


@pytest.mark.slow
def test_bootstrap_intervals_cover_the_true_ratings_95_percent_within_a_window_90_percent_ones_miss():
    # Given 300 simulated boards (fixed seed) of 4 generators and 400 votes, 30% of them ties,
    rng = np.random.default_rng(2031)
    s = np.array([-0.5, -0.1, 0.2, 0.4])
    truth = 1000 + ELO_PER_NAT * (s - s.mean())
    covered = total = 0
    for repeat in range(300):
        board = fit_ratings(simulate(rng, s, 400, 0.3), bootstrap=100, seed=repeat)
        for i, rating in enumerate(truth):
            row = board.by_name(f"g{i}")
            covered += row.ci_low <= rating <= row.ci_high
            total += 1
    # then the bootstrap's 95% intervals cover the truth 95% of the time, within a window (four binomial
    # standard errors of 1,200 checks) that 90% or 99% intervals fall outside.
    assert 0.925 <= covered / total <= 0.975, covered / total
