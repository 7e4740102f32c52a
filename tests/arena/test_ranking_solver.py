"""The ranking core's Newton solver on its own: one exact step, the damped step, convergence from far away.

The point fit reaches Newton only when I-LSR fails or is not certified, and a bootstrap round only for its warm
start, after which I-LSR hides a wrong step; so the solver is checked here directly, against a gradient, Hessian
and log-likelihood written out vote by vote (no formula shared with arena/ranking.py) and an independent MLE.
"""

from __future__ import annotations

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
