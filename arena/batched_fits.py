"""Many exact Bradley-Terry fits at once: the group test's permutations and the participant bootstrap's rounds.

No Django. `fit_many` gives, for each K x K table of a batch (wins of row over column, ties counted half a win
each way, as `PairCounts.matrix`), exactly what `arena.ranking.fit_ratings(counts, bootstrap=0)` gives: the
maximum-likelihood strengths centred on the mean of the rated generators (those with votes), 0 for the
unrated, and the maximised log-likelihood. Where the rated generators form one strongly connected "beat"
graph (the MLE exists and is unique, the common case on real data), the whole batch takes damped Newton steps
together, one stacked linear solve per step; every other table (a disconnected graph, perfect separation,
which fit_ratings regularises with its prior) and any that does not converge is fitted by fit_ratings itself,
so the answers are fit_ratings' answers, hundreds of times faster on a page's 800 fits
(tests/arena/test_batched_fits.py compares the two on generated tables).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from arena.ranking import ELO_MEAN, ELO_PER_NAT, PairCounts, fit_ratings

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

# A Newton step below this (in nats) ends a fit: 1e-10 nats is 2e-8 Elo, under fit_ratings' own tolerance.
STEP_TOL = 1e-10
MAX_STEPS = 60


@dataclass(frozen=True)
class Fits:
    """One row per table: strengths in nats (B x K), which generators have votes (B x K), log-likelihoods (B)."""

    strengths: FloatArray
    rated: BoolArray
    loglik: FloatArray

    def ratings(self) -> FloatArray:
        """Elo-scale ratings, NaN where a generator has no votes in that table (as the bootstrap leaves them out)."""
        return np.where(self.rated, ELO_MEAN + ELO_PER_NAT * self.strengths, np.nan)


def loglik(matrices: FloatArray, strengths: FloatArray) -> FloatArray:
    """The tie-as-half-a-win log-likelihood of each table at its strengths (B x K x K, B x K -> B)."""
    d = strengths[:, :, None] - strengths[:, None, :]
    return np.asarray(-(matrices * np.logaddexp(0.0, -d)).sum(axis=(1, 2)), dtype=np.float64)


def fit_many(matrices: FloatArray, names: Sequence[str]) -> Fits:
    """Exact fits of every table in `matrices` (B x K x K, non-negative, zero diagonal); see the module docstring."""
    m = np.asarray(matrices, dtype=np.float64)
    if m.ndim != 3 or m.shape[1:] != (len(names), len(names)):
        raise ValueError(f"matrices must be B x {len(names)} x {len(names)}")
    n = m + m.transpose(0, 2, 1)
    rated = n.sum(axis=2) > 0
    strengths = np.zeros(m.shape[:2])
    fast = _one_strong_part(m > 0, rated)
    done = np.zeros(len(m), dtype=bool)
    if fast.any():
        index = np.flatnonzero(fast)
        x, converged = _newton(m[index], rated[index])
        strengths[index] = x
        done[index[converged]] = True
    for b in np.flatnonzero(~done):
        strengths[b] = _fit_one(m[b], names)
    return Fits(strengths=strengths, rated=rated, loglik=loglik(m, strengths))


def _fit_one(matrix: FloatArray, names: Sequence[str]) -> FloatArray:
    """fit_ratings' strengths (each connected part centred, unrated at 0): its prior where separation needs one."""
    board = fit_ratings(PairCounts.from_matrix(names, matrix), bootstrap=0)
    ratings = board.ratings()
    return np.array([(ratings[name] - ELO_MEAN) / ELO_PER_NAT for name in names])


def _one_strong_part(beats: BoolArray, rated: BoolArray) -> BoolArray:
    """Per table: whether every rated generator reaches every other along "beat" edges (i won anything against
    j): the MLE is then finite and unique (Zermelo; Ford 1957). Transitive closure by repeated squaring."""
    k = beats.shape[1]
    reach = beats | np.eye(k, dtype=bool)[None]
    steps = 1
    while steps < k:
        reach = np.einsum("bij,bjk->bik", reach.astype(np.float64), reach.astype(np.float64)) > 0
        steps *= 2
    both = rated[:, :, None] & rated[:, None, :]
    return np.asarray(np.all(reach | ~both, axis=(1, 2)), dtype=bool)


def _newton(m: FloatArray, rated: BoolArray) -> tuple[FloatArray, BoolArray]:
    """Damped Newton on every table at once from 0; strengths centred over the rated, and which converged."""
    count, k = m.shape[:2]
    n = m + m.transpose(0, 2, 1)
    wins = m.sum(axis=2)
    a = rated.astype(np.float64)
    size = np.maximum(a.sum(axis=1), 1.0)
    # The Hessian is singular along the rated generators' all-ones vector (a shift changes nothing) and zero for
    # the unrated: pin both, as arena.ranking._newton does for one table.
    fix = a[:, :, None] * a[:, None, :] / size[:, None, None] + np.eye(k)[None] * (1.0 - a)[:, None, :]
    x = np.zeros((count, k))
    current = loglik(m, x)
    converged: BoolArray = np.asarray(~rated.any(axis=1), dtype=bool)
    stuck = np.zeros(count, dtype=bool)
    for _ in range(MAX_STEPS):
        live = np.flatnonzero(~converged & ~stuck)
        if live.size == 0:
            break
        xs = x[live]
        p = _sigmoid(xs[:, :, None] - xs[:, None, :])
        grad = (wins[live] - (n[live] * p).sum(axis=2)) * a[live]
        w = n[live] * p * p.transpose(0, 2, 1)
        hess = np.einsum("bi,ij->bij", w.sum(axis=2), np.eye(k)) - w
        try:
            step = np.linalg.solve(hess + fix[live], grad[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:  # a curvature lost to rounding: fit_ratings takes these tables
            stuck[live] = True
            continue
        step = (step - ((step * a[live]).sum(axis=1) / size[live])[:, None]) * a[live]
        big = np.abs(step).max(axis=1)
        t = np.ones(live.size)
        moved = np.zeros(live.size, dtype=bool)
        for _ in range(30):  # backtracking, each table on its own step length
            trial = xs + t[:, None] * step
            value = loglik(m[live], trial)
            ok = ~moved & (value >= current[live] - 1e-12 * np.abs(current[live]))
            xs = np.where(ok[:, None], trial, xs)
            current[live] = np.where(ok, value, current[live])
            moved |= ok
            if moved.all():
                break
            t = np.where(moved, t, t / 2)
        x[live] = xs
        converged[live] = big < STEP_TOL
        stuck[live] = ~moved & ~converged[live]  # no step length helps: fit_ratings takes those tables
    centred = x - ((x * a).sum(axis=1) / size)[:, None] * a
    return centred * a, converged


def _sigmoid(x: FloatArray) -> FloatArray:
    return np.asarray(np.exp(-np.logaddexp(0.0, -x)), dtype=np.float64)
