"""The ranking core's Newton solver on its own: one exact step, the damped step, convergence from far away.

The point fit reaches Newton only when I-LSR fails or is not certified, and a bootstrap round only for its warm
start, after which I-LSR hides a wrong step; so the solver is checked here directly, against a gradient, Hessian
and log-likelihood written out vote by vote (no formula shared with arena/ranking.py) and an independent MLE.
"""

from __future__ import annotations

from decimal import Decimal, localcontext

import numpy as np
import pytest
from scipy.special import expit, log_expit

from arena import ranking
from tests.arena.test_ranking import independent_mle

# A chain with one weak link and uneven fractional counts, and a dense 4 x 4 table.
CHAIN = np.zeros((5, 5))
for _i, (_won, _lost) in enumerate([(40.5, 2.25), (3.0, 1.0), (12.0, 30.5), (0.5, 9.0)]):
    CHAIN[_i, _i + 1], CHAIN[_i + 1, _i] = _won, _lost
DENSE = np.array([[0, 7, 3, 12], [2, 0, 5, 4], [6, 1, 0, 9], [1, 3, 2, 0]], dtype=float)


def loglik(matrix: np.ndarray, s: np.ndarray) -> float:
    """Sum over cells of wins(i over j) * log P(i beats j)."""
    k = len(s)
    return sum(matrix[i, j] * float(log_expit(s[i] - s[j])) for i in range(k) for j in range(k) if matrix[i, j])


def newton_step(matrix: np.ndarray, s: np.ndarray) -> np.ndarray:
    """The centred Newton step of the log-likelihood at s, gradient and Hessian summed cell by cell."""
    k = len(s)
    gradient = np.zeros(k)
    hessian = np.zeros((k, k))
    for i in range(k):
        for j in range(k):
            if not matrix[i, j]:
                continue
            p = float(expit(s[i] - s[j]))  # P(i beats j)
            gradient[i] += matrix[i, j] * (1 - p)
            gradient[j] -= matrix[i, j] * (1 - p)
            curvature = matrix[i, j] * p * (1 - p)
            hessian[i, i] -= curvature
            hessian[j, j] -= curvature
            hessian[i, j] += curvature
            hessian[j, i] += curvature
    # The Hessian is singular along the all-ones vector (a common shift changes nothing): the minimum-norm step.
    return -np.linalg.pinv(hessian) @ gradient


def nats(elo: np.ndarray) -> np.ndarray:
    return (elo - elo.mean()) / ranking.ELO_PER_NAT


@pytest.mark.parametrize("matrix", [CHAIN, DENSE], ids=["chain", "dense"])
def test_newton_from_zero_reaches_the_maximum_likelihood_fit(matrix):
    x = ranking._newton(matrix, np.zeros(len(matrix)))
    assert x.mean() == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(x, nats(independent_mle(matrix)), atol=1e-6)


@pytest.mark.parametrize("matrix", [CHAIN, DENSE], ids=["chain", "dense"])
def test_one_newton_step_near_the_fit_is_the_full_newton_step(matrix):
    # Given a start a little off the fit (so the full step raises the likelihood and is taken),
    start = nats(independent_mle(matrix)) + np.linspace(-0.2, 0.3, len(matrix))
    expected = start + newton_step(matrix, start)
    assert loglik(matrix, expected) > loglik(matrix, start)
    # then one step lands where the step computed here does, centred.
    np.testing.assert_allclose(ranking._newton(matrix, start, max_steps=1), expected - expected.mean(), atol=1e-10)


def test_a_step_that_would_lower_the_likelihood_is_halved_until_it_does_not():
    # Given a start far from the fit (b made strongest, a weakest: the table says otherwise), where the full
    # Newton step overshoots,
    matrix = np.array([[0, 8, 2], [3, 0, 6], [1, 2, 0]], dtype=float)
    start = np.array([-3.0, 3.0, 0.0])
    step = newton_step(matrix, start)
    before = loglik(matrix, start)
    assert loglik(matrix, start + step) < before
    # then the step taken is the first of step, step/2, step/4, ... that does not lower the likelihood.
    t = 1.0
    while loglik(matrix, start + t * step) < before:
        t /= 2
    assert t == 1 / 8
    expected = start + t * step
    np.testing.assert_allclose(ranking._newton(matrix, start, max_steps=1), expected - expected.mean(), atol=1e-10)
    # and from there on Newton still reaches the fit.
    np.testing.assert_allclose(ranking._newton(matrix, start), nats(independent_mle(matrix)), atol=1e-6)


# A table the model fits exactly: every pair's counts are its votes times the chances strengths ln(1, 2, 4) give
# (a beats b 1 time in 3, c 1 time in 5; b beats c 1 time in 3), so those strengths are the MLE to the last bit.
EXACT = np.array([[0, 5, 3], [10, 0, 5], [12, 10, 0]], dtype=float)
EXACT_FIT = np.log([1.0, 2.0, 4.0]) - np.log([1.0, 2.0, 4.0]).mean()


def test_newton_reaches_an_exactly_known_fit_to_its_documented_step_size():
    # The step stops below 1e-12 nats: the fit is exact to well under 1e-10 nats (2e-8 Elo).
    np.testing.assert_allclose(ranking._newton(EXACT, np.zeros(3)), EXACT_FIT, rtol=0, atol=1e-11)
    np.testing.assert_allclose(ranking._newton(EXACT, np.array([3.0, -1.0, 5.0])), EXACT_FIT, rtol=0, atol=1e-11)


def certified_here(matrix: np.ndarray, s: np.ndarray) -> bool:
    """No generator's diagonal Newton step (gradient over its own curvature, summed cell by cell) reaches 1e-9."""
    k = len(s)
    for i in range(k):
        gradient = curvature = 0.0
        for j in range(k):
            p = float(expit(s[i] - s[j]))  # P(i beats j)
            gradient += matrix[i, j] * (1 - p) - matrix[j, i] * p
            curvature += (matrix[i, j] + matrix[j, i]) * p * (1 - p)
        if abs(gradient) > 1e-9 * curvature:
            return False
    return True


def test_a_fit_is_certified_only_when_no_diagonal_newton_step_reaches_1e_9():
    # At the exact fit the gradient vanishes; moving one strength by about 1e-9 of a nat crosses the line,
    # generator by generator (their curvatures differ, and none is 1).
    assert ranking._certified(EXACT, EXACT_FIT)
    outcomes = []
    for i in range(3):
        for offset in (0.4e-9, 0.8e-9, 1.3e-9, 3e-9, -0.6e-9, -2e-9):
            s = EXACT_FIT.copy()
            s[i] += offset * 1.5  # the others' mean moves by a third of it: the step seen is about offset
            expected = certified_here(EXACT, s)
            assert ranking._certified(EXACT, s) is expected, (i, offset)
            outcomes.append(expected)
    assert True in outcomes
    assert False in outcomes
    # Scaled up a thousandfold the curvature is 1000 times larger, and so is the gradient: the same answers.
    assert ranking._certified(1000 * EXACT, EXACT_FIT)
    s = EXACT_FIT + np.array([3e-9, 0.0, 0.0])
    assert not ranking._certified(1000 * EXACT, s)
    assert not certified_here(1000 * EXACT, s)


# Six generators, counts from under one vote to 890,000 (weighted votes): I-LSR stops 1e-5 Elo off the MLE here,
# and the gradient check sends the fit on to Newton.
SLOW = np.array(
    [
        [0.0, 0.2, 0.0, 97631.4, 41.7, 0.0],
        [256775.3, 0.0, 0.0, 43.5, 3019.0, 0.0],
        [0.0, 0.6, 0.0, 0.0, 0.0, 0.0],
        [17391.5, 0.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.6, 0.0, 0.0, 0.6],
        [0.0, 26012.9, 890549.8, 0.0, 6.9, 0.0],
    ]
)


def newton_here(matrix: np.ndarray) -> np.ndarray:
    """Centred MLE strengths by Newton's method with the first strength fixed, in 40-digit decimal arithmetic:
    counts six orders of magnitude apart leave a float64 Newton a few 1e-6 Elo short."""
    k = len(matrix)
    with localcontext() as context:
        context.prec = 40
        s = [Decimal(0)] * k
        for _ in range(60):
            # Gradient and Hessian of the log-likelihood in strengths 1 .. k-1, cell by cell, as one augmented system.
            system = [[Decimal(0)] * k for _ in range(k - 1)]
            for i in range(k):
                for j in range(k):
                    if not matrix[i, j]:
                        continue
                    p = 1 / (1 + (s[j] - s[i]).exp())  # P(i beats j)
                    won, curvature = Decimal(matrix[i, j]) * (1 - p), Decimal(matrix[i, j]) * p * (1 - p)
                    for a, sign in ((i, 1), (j, -1)):
                        if a:
                            system[a - 1][k - 1] += sign * won
                    for a, b, sign in ((i, i, -1), (j, j, -1), (i, j, 1), (j, i, 1)):
                        if a and b:
                            system[a - 1][b - 1] += sign * curvature
            # Gaussian elimination with partial pivoting, then back substitution: the step H^-1 g.
            n = k - 1
            for c in range(n):
                pivot = max(range(c, n), key=lambda r: abs(system[r][c]))
                system[c], system[pivot] = system[pivot], system[c]
                for r in range(c + 1, n):
                    factor = system[r][c] / system[c][c]
                    system[r] = [x - factor * y for x, y in zip(system[r], system[c], strict=True)]
            step = [Decimal(0)] * n
            for r in reversed(range(n)):
                step[r] = (system[r][n] - sum(system[r][c] * step[c] for c in range(r + 1, n))) / system[r][r]
            s = [s[0]] + [s[a] - step[a - 1] for a in range(1, k)]
        mean = sum(s) / k
        return np.array([float(v - mean) for v in s])


def test_a_point_fit_that_i_lsr_leaves_short_is_finished_to_a_millionth_of_an_elo_point():
    names = tuple("abcdef")
    board = ranking.fit_ratings(ranking.PairCounts(names, SLOW, np.zeros((6, 6))), bootstrap=0)
    expected = 1000 + ranking.ELO_PER_NAT * newton_here(SLOW)
    np.testing.assert_allclose([board.by_name(n).rating for n in names], expected, rtol=0, atol=1e-6)
    assert board.method == "exact MLE"


@pytest.mark.parametrize("error", [RuntimeError("Did not converge after 10000 iterations"), ValueError("reducible")])
def test_when_i_lsr_gives_up_newton_finishes_from_the_start_point(monkeypatch, error):
    # Given I-LSR that fails (out of iterations, or its chain reducible in floating point),
    import choix

    def give_up(*args: object, **kwargs: object) -> np.ndarray:
        raise error

    monkeypatch.setattr(choix, "ilsr_pairwise_dense", give_up)
    # then the fit is still the MLE, from no start or a given one, even where no polish was asked for.
    for start in (None, np.array([0.5, -0.25, 1.0])):
        for polish in (True, False):
            x = ranking._mle(EXACT, start, 1e-5, polish=polish)
            np.testing.assert_allclose(x, EXACT_FIT, rtol=0, atol=1e-11)


def test_i_lsr_starts_from_the_start_point_it_is_given():
    # From the fit itself, I-LSR's fixed point, even a tolerance that stops it after two iterations returns it.
    fitted = nats(independent_mle(DENSE))
    np.testing.assert_allclose(ranking._mle(DENSE, fitted, 1.0, polish=False), fitted, rtol=0, atol=1e-6)


def centred_newton(matrix: np.ndarray, start: np.ndarray) -> np.ndarray:
    """One full Newton step of newton_step from `start` (the test checks the likelihood rises), centred."""
    x = start + newton_step(matrix, start)
    assert loglik(matrix, x) > loglik(matrix, start)
    return x - x.mean()


@pytest.mark.parametrize("k", [40, 41, 5])
def test_a_bootstrap_round_starts_one_newton_step_off_the_point_fit(k):
    # Given a point fit (its matrix and strengths) and a round's resampled matrix,
    rng = np.random.default_rng(k)
    point = rng.integers(1, 6, (k, k)).astype(float)
    np.fill_diagonal(point, 0)
    drawn = np.clip(point + rng.integers(-1, 2, (k, k)), 0, None)
    np.fill_diagonal(drawn, 0)
    s = rng.normal(0, 0.3, k)
    s -= s.mean()
    part = ranking._PartFit(np.arange(k), s, point, np.zeros((k, k), dtype=bool), np.zeros(k, dtype=np.int64))
    # then the start is a Newton step from the point fit with the point fit's Hessian and the round's gradient,
    gradient = np.zeros(k)
    for i in range(k):
        for j in range(k):
            gradient[i] += drawn[i, j] * (1 - expit(s[i] - s[j])) - drawn[j, i] * expit(s[i] - s[j])
    hessian = np.zeros((k, k))
    for i in range(k):
        for j in range(k):
            curvature = (point[i, j] + point[j, i]) * expit(s[i] - s[j]) * expit(s[j] - s[i])
            hessian[i, j] += curvature
            hessian[i, i] -= curvature
    start = s - np.linalg.pinv(hessian) @ gradient
    # followed, up to 40 generators, by one exact Newton step on the round's own likelihood.
    expected = centred_newton(drawn, start) if k <= 40 else start - start.mean()
    warm = ranking._round_setup(part, k).warm_start(drawn)
    np.testing.assert_allclose(warm, expected, rtol=0, atol=1e-9)


def lsr_iteration(matrix: np.ndarray, s: np.ndarray) -> np.ndarray:
    """One I-LSR iteration (Maystre and Grossglauser 2015): the stationary law of the chain that moves from i to j
    at rate (j's wins over i) / (w_i + w_j), w = exp(s); its centred log."""
    w = np.exp(s)
    rates = matrix.T / (w[:, None] + w[None, :])
    generator = rates - np.diag(rates.sum(axis=1))
    k = len(s)
    # pi Q = 0 and sum(pi) = 1, solved as one least-squares system.
    system = np.vstack([generator.T, np.ones(k)])
    pi = np.linalg.lstsq(system, np.concatenate([np.zeros(k), [1.0]]), rcond=None)[0]
    return np.log(pi) - np.log(pi).mean()


def test_a_bootstrap_fit_stops_at_its_tolerance_without_polish():
    # Given a tolerance loose enough to stop I-LSR after its minimum two iterations from equal strengths,
    first = lsr_iteration(DENSE, np.zeros(4))
    second = lsr_iteration(DENSE, first)
    assert 1e-3 < np.abs(second - first).mean() <= 1.0
    # then the fit is those two iterations, not the MLE (a round's fit is not polished by Newton).
    x = ranking._mle(DENSE, None, 1.0, polish=False)
    np.testing.assert_allclose(x, second, rtol=0, atol=1e-9)
    assert np.abs(x - nats(independent_mle(DENSE))).max() > 1e-3


@pytest.mark.parametrize("unit", [1e-9, 1e9])
def test_the_step_halving_does_not_depend_on_the_unit_of_the_counts(unit):
    # Weighted votes may come in any unit: the same table scaled has the same steps, so the overshooting step
    # of the test above is halved to 1/8 here too (the acceptance test is relative to the log-likelihood). The
    # shift-pinning term does not scale with the counts, so at 1e-9 the solve keeps only about 7 digits.
    matrix = np.array([[0, 8, 2], [3, 0, 6], [1, 2, 0]], dtype=float)
    start = np.array([-3.0, 3.0, 0.0])
    expected = start + newton_step(matrix, start) / 8
    np.testing.assert_allclose(
        ranking._newton(unit * matrix, start, max_steps=1), expected - expected.mean(), rtol=0, atol=1e-5
    )


def test_when_i_lsr_gives_up_newton_starts_from_the_given_start(monkeypatch):
    # Given I-LSR that fails, and Newton watched,
    import choix

    def give_up(*args: object, **kwargs: object) -> np.ndarray:
        raise RuntimeError("Did not converge after 10000 iterations")

    starts: list[np.ndarray] = []
    newton = ranking._newton

    def watched(matrix: np.ndarray, x: np.ndarray, max_steps: int = 50) -> np.ndarray:
        starts.append(np.array(x, copy=True))
        return newton(matrix, x, max_steps)

    monkeypatch.setattr(choix, "ilsr_pairwise_dense", give_up)
    monkeypatch.setattr(ranking, "_newton", watched)
    # then Newton goes on from the start the fit was given (a round's warm start), or from equal strengths.
    start = np.array([0.5, -0.25, 1.0])
    ranking._mle(EXACT, start, 1e-5, polish=False)
    ranking._mle(EXACT, None, 1e-5, polish=False)
    np.testing.assert_array_equal(starts[0], start)
    np.testing.assert_array_equal(starts[1], np.zeros(3))


def test_the_point_fit_is_polished_and_each_bootstrap_round_is_warm_started_and_not(monkeypatch):
    # Given every call of the fit watched,
    calls: list[tuple[np.ndarray | None, float, bool, np.ndarray]] = []
    mle = ranking._mle

    def watched(matrix: np.ndarray, init: np.ndarray | None, tol: float, *, polish: bool) -> np.ndarray:
        x = mle(matrix, init, tol, polish=polish)
        calls.append((None if init is None else np.array(init, copy=True), tol, polish, x))
        return x

    monkeypatch.setattr(ranking, "_mle", watched)
    counts = ranking.PairCounts.from_tallies(
        ["a", "b", "c"], [("a", "b", 6, 4, 1), ("b", "c", 5, 3, 0), ("a", "c", 4, 4, 2)]
    )
    ranking.fit_ratings(counts, bootstrap=10, seed=3)
    # then the point fit starts cold at the tight tolerance and is polished by Newton,
    assert len(calls) == 11
    assert calls[0][:3] == (None, 1e-10, True)
    # and each of the 10 rounds starts near its own fit (two Newton steps off the point fit), at the loose
    # tolerance, without Newton's polish.
    for init, tol, polish, x in calls[1:]:
        assert init is not None
        assert np.abs(init - x).max() < 0.1
        assert tol == 1e-5
        assert polish is False
