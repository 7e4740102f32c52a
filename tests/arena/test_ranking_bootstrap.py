"""The bootstrap's interval ends recomputed here, draw for draw, from the resampling arena/ranking.py documents.

The module docstring promises: every compared pair's (wins, losses, ties) redrawn as a multinomial with the
pair's own number of votes, through the law of S = 2 * wins + ties (a pair enters the fit only through S);
a pair that got the separation prior in the point fit resampled from its smoothed counts; a round that draws
a perfectly separated part fitted with the prior (and counted); each part centred on 1000, the anchor's part
re-anchored every round; percentile ends, widened to hold the point rating. From 64 rounds on, S is drawn
by inverting its exact law with one uniform per pair and round; below that, as NumPy binomials (ties, then
first wins among the rest). Here S's law comes from repeated convolution (not the core's FFT), separation
from a transitive closure (not its graph search), and each round's fit from Newton's method with the first
strength fixed (not I-LSR); only the order in which the seeded generator is read is taken from the core.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pytest
from scipy.special import expit
from scipy.stats import binom

from arena import ranking
from arena.ranking import ELO_PER_NAT, PairCounts, fit_ratings

PRIOR = 0.5


def score_cdf(trials: int, p_first: float, p_second: float, p_tie: float) -> np.ndarray:
    """CDF of S = 2 * first's wins + ties over `trials` votes, each worth 2, 1 or 0 with these chances."""
    law = np.array([1.0])
    for _ in range(trials):
        law = np.convolve(law, [p_second, p_tie, p_first])
    return np.cumsum(law)


def groups(matrix: np.ndarray) -> np.ndarray:
    """same[i, j]: i and j reach each other in the "beat" graph (i -> j when i won anything against j)."""
    k = len(matrix)
    reach = (matrix > 0) | np.eye(k, dtype=bool)
    for via in range(k):  # Warshall's transitive closure
        reach |= reach[:, [via]] & reach[[via], :]
    return reach & reach.T


def smoothed(matrix: np.ndarray) -> tuple[np.ndarray, bool]:
    """The matrix with PRIOR pseudo-wins each way on compared pairs between groups, and whether any were added."""
    crossing = ((matrix + matrix.T) > 0) & ~groups(matrix)
    return matrix + PRIOR * crossing, bool(crossing.any())


def fit(matrices: np.ndarray) -> np.ndarray:
    """Centred BT strengths of a stack of matrices (rounds x k x k), Newton's method with the first strength at 0."""
    rounds, k, _ = matrices.shape
    s = np.zeros((rounds, k))
    total = matrices + matrices.transpose(0, 2, 1)
    for _ in range(100):
        p = expit(s[:, :, None] - s[:, None, :])
        gradient = (matrices - total * p).sum(axis=2)
        w = total * p * (1 - p)
        hessian = w - np.eye(k) * w.sum(axis=2)[:, :, None]
        s[:, 1:] -= np.linalg.solve(hessian[:, 1:, 1:], gradient[:, 1:, None])[:, :, 0]
    assert np.abs(gradient).max() < 1e-8
    return s - s.mean(axis=1, keepdims=True)


@dataclass
class Expected:
    low: dict[str, float]
    high: dict[str, float]
    separated: int


def reference_bootstrap(
    counts: PairCounts,
    parts: list[list[int]],
    rounds: int,
    seed: int,
    level: float,
    ratings: dict[str, float],
    anchor: tuple[str, float] | None = None,
    chunk: int | None = None,
) -> Expected:
    """Interval ends of the rated generators of `parts` (index lists, in the core's part order).

    Rounds are drawn `chunk` at a time (all at once by default), tabulated from 64 rounds a chunk on.
    """
    rng = np.random.default_rng(seed)
    chunk = chunk or rounds
    starts = range(0, rounds, chunk)
    k = counts.size
    # Each part's point-fit matrix says which of its pairs got the prior: they are resampled smoothed.
    point = counts.wins + counts.ties / 2
    crossing = np.zeros((k, k), dtype=bool)
    for members in parts:
        sub = point[np.ix_(members, members)]
        crossing[np.ix_(members, members)] = ((sub + sub.T) > 0) & ~groups(sub)
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k) if counts.comparisons[i, j] > 0]
    scores = np.zeros((rounds, len(pairs)), dtype=np.int64)
    trials, scales = [], []
    tabulated = chunk >= 64
    law = []
    for i, j in pairs:
        n = counts.comparisons[i, j]
        first, second, tied = counts.wins[i, j], counts.wins[j, i], counts.ties[i, j]
        if crossing[i, j]:
            first, second = first + PRIOR, second + PRIOR
        m = max(1, round(n))
        p_tie = tied / (first + second + tied)
        p_first = first / (first + second) if first + second else 0.5
        trials.append(m)
        scales.append(n / m)
        law.append((m, (1 - p_tie) * p_first, (1 - p_tie) * (1 - p_first), p_tie, p_first))
    if tabulated:
        draws = np.concatenate([rng.random((len(pairs), min(chunk, rounds - start))) for start in starts], axis=1)
        for pair, (m, win, lose, tie, _) in enumerate(law):
            cdf = score_cdf(m, win, lose, tie)
            scores[:, pair] = [int(np.argmax(cdf > u)) for u in draws[pair]]  # the least S with CDF(S) > u
    else:
        t = np.array(trials)
        for start in starts:
            c = min(chunk, rounds - start)
            tied = rng.binomial(t, [entry[3] for entry in law], size=(c, len(pairs)))
            scores[start : start + c] = tied + 2 * rng.binomial(t - tied, [entry[4] for entry in law])
    samples = np.zeros((rounds, k))
    separated = np.zeros(rounds, dtype=bool)
    for members in parts:
        if len(members) < 2:
            continue
        index = {g: local for local, g in enumerate(members)}
        stack = np.zeros((rounds, len(members), len(members)))
        for pair, (i, j) in enumerate(pairs):
            if i in index and j in index:
                stack[:, index[i], index[j]] = scales[pair] * scores[:, pair] / 2
                stack[:, index[j], index[i]] = scales[pair] * (trials[pair] - scores[:, pair] / 2)
        for r in range(rounds):
            stack[r], prior_used = smoothed(stack[r])
            separated[r] |= prior_used
        strengths = 1000 + ELO_PER_NAT * fit(stack)
        if anchor is not None and counts.names.index(anchor[0]) in index:
            strengths += anchor[1] - strengths[:, [index[counts.names.index(anchor[0])]]]
        samples[:, members] = strengths
    tail = 100 * (1 - level) / 2
    low, high = {}, {}
    for members in parts:
        for g in members if len(members) > 1 else ():
            name = counts.names[g]
            low[name] = min(float(np.percentile(samples[:, g], tail)), ratings[name])
            high[name] = max(float(np.percentile(samples[:, g], 100 - tail)), ratings[name])
    return Expected(low, high, int(separated.sum()))


def assert_intervals(
    counts: PairCounts, parts: list[list[int]], rounds: int, seed: int, level: float, chunk: int | None = None, **kw
) -> None:
    board = fit_ratings(counts, bootstrap=rounds, seed=seed, level=level, **kw)
    expected = reference_bootstrap(counts, parts, rounds, seed, level, board.ratings(), kw.get("anchor"), chunk)
    for name in expected.low:
        row = board.by_name(name)
        assert (row.ci_low, row.ci_high) == pytest.approx((expected.low[name], expected.high[name]), abs=1e-3), name
    assert board.separated_rounds == expected.separated
    assert board.bootstrap_rounds == rounds


# Three generators, every pair compared, ties, one pair with weighted (fractional) votes.
NAMES3 = ("a", "b", "c")
WINS3 = np.array([[0, 6, 3.5], [3, 0, 2], [1.25, 4, 0]])
TIES3 = np.array([[0, 2, 0.75], [2, 0, 1], [0.75, 1, 0]])


@pytest.mark.parametrize(("rounds", "level"), [(200, 0.9), (40, 0.8)], ids=["tabulated-law", "binomials"])
def test_interval_ends_are_the_percentiles_of_the_documented_resampling(rounds, level):
    counts = PairCounts(NAMES3, WINS3, TIES3)
    assert_intervals(counts, [[0, 1, 2]], rounds, seed=11, level=level)


def test_a_pair_of_few_votes_draws_separated_rounds_that_are_fitted_with_the_prior_and_counted():
    # A chain a - b - c whose links are two votes, one each way: about three rounds in four give some
    # generator only wins or only losses.
    counts = PairCounts.from_tallies(["a", "b", "c"], [("a", "b", 1, 1, 0), ("b", "c", 1, 1, 0)])
    assert_intervals(counts, [[0, 1, 2]], 120, seed=3, level=0.95)
    assert 60 < fit_ratings(counts, bootstrap=120, seed=3).separated_rounds < 120


@pytest.mark.parametrize("rounds", [100, 30], ids=["tabulated-law", "binomials"])
def test_a_pair_of_one_vote_is_resampled_like_any_other(rounds):
    # a and c met once (a won), inside a group where every generator both won and lost: that one vote is
    # redrawn every round (a won, lost or tied it), not kept out of the resampling nor fixed at 1-0.
    counts = PairCounts.from_tallies(["a", "b", "c"], [("a", "b", 3, 2, 1), ("b", "c", 4, 2, 0), ("a", "c", 1, 0, 0)])
    assert counts.comparisons[0, 2] == 1
    assert_intervals(counts, [[0, 1, 2]], rounds, seed=5, level=0.9)


def test_parts_a_smoothed_pair_an_unrated_generator_and_an_anchor_are_resampled_as_documented():
    # Given a part where a only won (its pairs smoothed by the prior), a second part holding the anchor, and
    # f without votes,
    counts = PairCounts.from_tallies(
        ["a", "b", "c", "d", "e", "f"],
        [("a", "b", 3, 0, 0), ("a", "c", 2, 0, 0), ("b", "c", 4, 3, 1), ("d", "e", 5, 2, 0)],
    )
    parts = [[0, 1, 2], [3, 4], [5]]
    assert_intervals(counts, parts, 150, seed=8, level=0.9, anchor=("d", 1200.0))
    board = fit_ratings(counts, bootstrap=150, seed=8, level=0.9, anchor=("d", 1200.0))
    assert (board.by_name("f").ci_low, board.by_name("f").ci_high) == (-np.inf, np.inf)


@pytest.mark.parametrize(
    ("votes", "p_first", "p_second", "p_tie"),
    [
        (2000, 0.5, 0.3, 0.2),
        (3000, 0.03, 0.93, 0.04),
        (2000, 0.9, 0.05, 0.05),
        (400, 0.0, 0.9, 0.1),
        (1000, 0, 0.999, 0.001),
    ],
    ids=["even", "mostly-second", "mostly-first", "never-first", "one-sd"],
)
def test_the_tabulated_law_of_a_large_pair_keeps_its_whole_mass(votes, p_first, p_second, p_tie):
    # S is a sum of `votes` independent draws of 2, 1 or 0: its mean and variance are `votes` times one draw's.
    tables = ranking._ScoreTables(np.array([votes]), np.array([p_first]), np.array([p_second]), np.array([p_tie]))
    cdf = tables.cdfs[0]
    pmf = np.diff(cdf, prepend=0.0)
    support = tables.low[0] + np.arange(cdf.size)
    mean = (pmf * support).sum()
    variance = (pmf * (support - mean) ** 2).sum()
    one_mean = 2 * p_first + p_tie
    assert mean == pytest.approx(votes * one_mean, rel=1e-9)
    assert variance == pytest.approx(votes * (4 * p_first + p_tie - one_mean**2), rel=1e-6)


@pytest.mark.parametrize(
    ("chunk", "rounds"),
    [(70, 150), (64, 100), (20, 50), (1, 5)],
    ids=["tabulated-chunks", "64-a-chunk", "binomial-chunks", "one-round-a-chunk"],
)
def test_rounds_drawn_chunk_by_chunk_are_the_documented_resampling(monkeypatch, chunk, rounds):
    # Given chunks of `chunk` rounds (3 pairs, so `chunk` rounds a chunk), the last one short,
    monkeypatch.setattr(ranking, "_CHUNK_CELLS", 3 * chunk)
    # then every round lands in its own row, each chunk read from the generator in turn, tabulated from 64 on.
    assert_intervals(PairCounts(NAMES3, WINS3, TIES3), [[0, 1, 2]], rounds, seed=4, level=0.9, chunk=chunk)


def test_a_lone_pair_fills_a_chunk_of_its_own_cells(monkeypatch):
    # One pair: a chunk is as many rounds as there are cells.
    monkeypatch.setattr(ranking, "_CHUNK_CELLS", 40)
    counts = PairCounts.from_tallies(["a", "b"], [("a", "b", 5, 3, 1)])
    assert_intervals(counts, [[0, 1]], 50, seed=2, level=0.9, chunk=40)


@pytest.mark.parametrize("rounds", [64, 63], ids=["tabulated-law", "binomials"])
def test_the_tabulated_law_takes_over_at_64_rounds(rounds):
    assert_intervals(PairCounts(NAMES3, WINS3, TIES3), [[0, 1, 2]], rounds, seed=6, level=0.9)


@pytest.mark.parametrize("rounds", [120, 30], ids=["tabulated-law", "binomials"])
def test_a_smoothed_pair_won_by_the_later_generator_keeps_its_wins(rounds):
    # c only won (3-0 against a, 2-0 against b): both pairs are smoothed, and c's wins stay under the prior.
    counts = PairCounts.from_tallies(["a", "b", "c"], [("a", "c", 0, 3, 0), ("b", "c", 0, 2, 0), ("a", "b", 4, 3, 1)])
    assert_intervals(counts, [[0, 1, 2]], rounds, seed=9, level=0.9)


@pytest.mark.parametrize("rounds", [120, 30], ids=["tabulated-law", "binomials"])
def test_pairs_of_fractional_decisive_votes_and_of_ties_only_are_resampled_as_documented(rounds):
    # a - c: 0.25 and 0.5 weighted decisive votes and half a tie (1.25 votes, drawn as 1 and scaled back);
    # b - c: two ties and nothing else (no decisive vote: p_first is a coin that is never tossed).
    counts = PairCounts.from_tallies(
        ["a", "b", "c"], [("a", "b", 3, 2, 1), ("a", "c", 0.25, 0.5, 0.5), ("b", "c", 0, 0, 2)]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and without dividing 0 by 0 on the way (a warning in every log)
        assert_intervals(counts, [[0, 1, 2]], rounds, seed=12, level=0.9)


def test_a_pair_of_2_21_votes_still_draws_from_its_tabulated_law():
    # Given one pair of exactly 2**21 decisive votes (the most a table takes), no ties: S / 2 is binomial,
    n, won = 1 << 21, 1_200_000
    counts = PairCounts(("a", "b"), np.array([[0.0, won], [n - won, 0.0]]), np.zeros((2, 2)))
    rounds, level = 64, 0.9
    board = fit_ratings(counts, bootstrap=rounds, seed=1, level=level)
    # then each round inverts that law with one uniform, and a lone pair's fit is its log odds, split evenly.
    uniforms = np.random.default_rng(1).random((1, rounds))[0]
    a_wins = binom.ppf(uniforms, n, won / n)
    if not np.all(binom.cdf(a_wins, n, won / n) > uniforms):  # ppf is the least k with CDF(k) >= u
        a_wins = a_wins + (binom.cdf(a_wins, n, won / n) <= uniforms)
    gap = ELO_PER_NAT * np.log(a_wins / (n - a_wins))
    rating = board.by_name("a").rating
    tail = 100 * (1 - level) / 2
    low = min(float(np.percentile(1000 + gap / 2, tail)), rating)
    high = max(float(np.percentile(1000 + gap / 2, 100 - tail)), rating)
    assert (board.by_name("a").ci_low, board.by_name("a").ci_high) == pytest.approx((low, high), abs=1e-3)
    assert rating == pytest.approx(1000 + ELO_PER_NAT * np.log(won / (n - won)) / 2, abs=1e-6)
