"""Pure Bradley-Terry ranking of generators from pairwise votes: exact MLE, bootstrap or sandwich intervals, ranks.

No Django.

The model: generator i beats j with probability 1 / (1 + exp(s_j - s_i)). Votes arrive as a K x K
table of outcome counts (`PairCounts`): decisive wins of row over column, and ties (a tie or a
both_bad vote), which count half a win each way as in Chatbot Arena. `fit_ratings` returns a
`Leaderboard`:

- ratings on the Elo scale, 1000 + 400 / ln(10) * s (400 points per factor 10 of odds), with the
  mean of each connected part at 1000, or one anchor generator pinned to a given rating;
- the exact maximum-likelihood fit from `choix.ilsr_pairwise_dense` (the fixed point of I-LSR is the
  MLE, fractional counts included); its gradient then certifies it, or Newton steps finish it, so
  ratings are within about 1e-6 Elo of the optimum;
- percentile bootstrap intervals that resample the aggregated counts, not the rows: for every
  compared pair the (i wins, j wins, tie) counts are redrawn as a multinomial with the pair's own
  number of votes (drawn exactly through the law of 2 * wins + ties, see `_ScoreTables`), and each
  round is refitted with I-LSR warm-started from a Newton step off the point fit;
- or, with `intervals="sandwich"`, closed-form intervals from the robust (Huber-White "sandwich")
  covariance of the fit, as LMArena's arena-rank computes them for its live board (see below);
- ranks as 1 + the number of generators whose lower bound is above this one's upper bound.

The sandwich convention. Each vote between i and j is one observation with outcome y (1: i won,
0: j won, 1/2: a tie or both_bad) and log-likelihood y log p + (1 - y) log(1 - p), p = sigmoid(s_i - s_j):
the tie-as-half-a-win fit above is exactly this (quasi-)likelihood's maximum. Write x_ij = e_i - e_j.
- The bread A = sum over votes of p (1 - p) x x^T is the Fisher information (and minus the Hessian of
  the log-likelihood: for the logistic link they coincide).
- The meat B = sum over votes of (y - p)^2 x x^T is the empirical covariance of the per-vote scores.
- Strengths are centred (mean 0 in each connected part), so A is singular along the all-ones vector;
  Cov = A+ B A+ with A+ the Moore-Penrose inverse, which is the covariance of the centred estimate.
  arena-rank adds a small ridge to A's diagonal instead; on centred strengths both give the same
  answer as the ridge goes to 0.
- Interval: rating +- z * ELO_PER_NAT * sqrt(Cov_ii), z the standard normal quantile of (1 + level) / 2
  (1.96 at 95%). With an anchor, the variance is that of s_i - s_anchor, so the anchor's collapses.
Where B equals A in expectation (no ties, the model right) this is the Fisher interval; ties carry
less variance than a coin flip, and the sandwich says so where the Fisher interval would not. It is
a large-sample interval: on a handful of votes the bootstrap is the honest one. A regularised part
(perfect separation) is given the sandwich of its regularised counts, prior pseudo-wins included.

Degenerate data never raises or yields NaN, and the leaderboard says what was done:

- no votes at all, or a generator with none: rating 1000 (or the anchor's), unbounded interval;
- a disconnected comparison graph: each connected part is fitted on its own, centred on 1000, and
  ranked within itself; `Standing.part` says which part (0 is the largest);
- perfect separation (a generator or group that only won, or only lost, against the rest of its
  part): the MLE does not exist, so `prior` pseudo-wins (0.5 by default) are added each way to the
  compared pairs *between* the strongly connected groups of the "beat" graph, and only there. Pairs
  inside a group keep their exact counts, and data without separation is never regularised.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

ELO_PER_NAT = 400.0 / math.log(10.0)
ELO_MEAN = 1000.0
DEFAULT_BOOTSTRAP = 1000
DEFAULT_LEVEL = 0.95
DEFAULT_PRIOR = 0.5

# Outcome codes for `PairCounts.from_indices`.
FIRST_WINS = 0
SECOND_WINS = 1
TIE = 2

# How intervals are computed (`fit_ratings(intervals=...)`, `Leaderboard.intervals`).
INTERVALS_BOOTSTRAP = "bootstrap"
INTERVALS_SANDWICH = "sandwich"
INTERVAL_METHODS = (INTERVALS_BOOTSTRAP, INTERVALS_SANDWICH)

METHOD_EXACT = "exact MLE"
METHOD_REGULARISED = "regularised MLE"
METHOD_NONE = "no comparisons"

# I-LSR stops on the mean change per generator between iterates (in natural log-strength units),
# not on the distance to the optimum. 1e-10 is far below the 0.01 Elo (5.8e-5) we promise, and the
# Newton check after it catches the rare slowly converging chain.
_POINT_TOL = 1e-10
# Bootstrap rounds only feed percentiles: 1e-5 moves interval ends by under 1e-4 Elo against a 1e-10
# solve (K = 100, 200k votes) and lets warm-started I-LSR stop after its minimum two iterations.
_BOOT_TOL = 1e-5
_MAX_ITER = 10_000
# Keeps one chunk of resampled counts (rounds x pairs) near 16 MB.
_CHUNK_CELLS = 2_000_000
# Up to this many generators a bootstrap round's warm start gets an extra exact Newton step.
_EXACT_STEP_MAX = 40
# Pairs with more votes than this are resampled with NumPy's binomials instead of an FFT table.
_MAX_TABLE_TRIALS = 1 << 21


@dataclass(frozen=True, eq=False)
class PairCounts:
    """Outcome counts between K named generators.

    `wins[i, j]` counts decisive votes for i over j; `ties[i, j] == ties[j, i]` counts tie and
    both_bad votes between i and j. Counts are floats so weighted votes work; plain votes are whole
    numbers. The arrays are copied and made read-only.
    """

    names: tuple[str, ...]
    wins: FloatArray
    ties: FloatArray

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.names)
        k = len(names)
        if len(set(names)) != k:
            raise ValueError("generator names must be unique")
        wins = np.array(self.wins, dtype=np.float64)
        ties = np.array(self.ties, dtype=np.float64)
        if k == 0 and wins.size == 0 and ties.size == 0:
            wins, ties = np.zeros((0, 0)), np.zeros((0, 0))
        if wins.shape != (k, k) or ties.shape != (k, k):
            raise ValueError(f"wins and ties must be {k} x {k} for {k} generators")
        for label, table in (("wins", wins), ("ties", ties)):
            if not np.all(np.isfinite(table)) or np.any(table < 0):
                raise ValueError(f"{label} must be finite and non-negative")
            if np.any(np.diag(table) != 0):
                raise ValueError(f"{label} has a generator compared with itself (non-zero diagonal)")
        if not np.allclose(ties, ties.T):
            raise ValueError("ties must be symmetric: a tie between i and j is one tie for both")
        wins.setflags(write=False)
        ties.setflags(write=False)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "wins", wins)
        object.__setattr__(self, "ties", ties)

    @classmethod
    def empty(cls, names: Sequence[str]) -> PairCounts:
        k = len(names)
        return cls(tuple(names), np.zeros((k, k)), np.zeros((k, k)))

    @classmethod
    def from_matrix(cls, names: Sequence[str], matrix: ArrayLike, ties: ArrayLike | None = None) -> PairCounts:
        """From a win matrix as in Chatbot Arena: `matrix[i, j]` = wins of i over j, ties added as 0.5 to both cells.

        Pass `ties` (symmetric tie counts) when you keep them: the leaderboard then reports ties and
        the bootstrap resamples (wins, losses, ties). Without them the tie halves stay folded into
        the wins: the point fit is identical, each tie is resampled as a coin flip (slightly wider,
        conservative intervals) and `Standing.ties` is 0.
        """
        m = np.asarray(matrix, dtype=np.float64)
        if ties is None:
            return cls(tuple(names), m, np.zeros_like(m))
        t = np.asarray(ties, dtype=np.float64)
        wins = m - t / 2
        if np.any(wins < -1e-9):
            raise ValueError("matrix is smaller than half the ties somewhere: it must already include them")
        return cls(tuple(names), np.clip(wins, 0.0, None), t)

    @classmethod
    def from_indices(cls, names: Sequence[str], first: ArrayLike, second: ArrayLike, outcome: ArrayLike) -> PairCounts:
        """From one row per vote: indices into `names` and FIRST_WINS / SECOND_WINS / TIE codes (vectorised)."""
        k = len(names)
        a = np.asarray(first, dtype=np.int64)
        b = np.asarray(second, dtype=np.int64)
        o = np.asarray(outcome, dtype=np.int64)
        if not (a.shape == b.shape == o.shape):
            raise ValueError("first, second and outcome must have the same length")
        if a.size and (min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= k):
            raise ValueError("generator index out of range")
        if np.any(a == b):
            raise ValueError("a vote compares a generator with itself")
        if np.any((o < FIRST_WINS) | (o > TIE)):
            raise ValueError("outcome codes are FIRST_WINS (0), SECOND_WINS (1) or TIE (2)")
        winner = np.where(o == FIRST_WINS, a, b)
        loser = np.where(o == FIRST_WINS, b, a)
        decisive = o != TIE
        wins = np.bincount(winner[decisive] * k + loser[decisive], minlength=k * k).reshape(k, k)
        tied = np.bincount(a[~decisive] * k + b[~decisive], minlength=k * k).reshape(k, k)
        return cls(tuple(names), wins.astype(np.float64), (tied + tied.T).astype(np.float64))

    @classmethod
    def from_tallies(cls, names: Sequence[str], tallies: Iterable[tuple[str, str, float, float, float]]) -> PairCounts:
        """From aggregate rows `(first, second, first_wins, second_wins, ties)`; repeated or reversed pairs add up.

        This is the shape a database aggregate gives (GROUP BY left, right, choice).
        """
        index = {name: i for i, name in enumerate(names)}
        k = len(names)
        wins = np.zeros((k, k))
        ties = np.zeros((k, k))
        for first, second, first_wins, second_wins, tied in tallies:
            if first not in index or second not in index:
                raise ValueError(f"unknown generator in tally ({first!r}, {second!r})")
            i, j = index[first], index[second]
            if i == j:
                raise ValueError(f"tally compares {first!r} with itself")
            wins[i, j] += first_wins
            wins[j, i] += second_wins
            ties[i, j] += tied
            ties[j, i] += tied
        return cls(tuple(names), wins, ties)

    @property
    def size(self) -> int:
        return len(self.names)

    @property
    def matrix(self) -> FloatArray:
        """Wins with each tie counted as half a win each way: the table the model is fitted on."""
        return self.wins + self.ties / 2

    @property
    def comparisons(self) -> FloatArray:
        """Votes between each pair, symmetric."""
        return self.wins + self.wins.T + self.ties

    @property
    def total(self) -> float:
        """All votes (each comparison counted once)."""
        return float(self.wins.sum() + self.ties.sum() / 2)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"unknown generator {name!r}") from None


@dataclass(frozen=True)
class Standing:
    """One generator's row: Elo-scale rating with its interval and rank, and its vote counts."""

    name: str
    rating: float
    ci_low: float
    ci_high: float
    rank: int
    votes: float
    wins: float
    losses: float
    ties: float
    part: int

    @property
    def rated(self) -> bool:
        """False for a generator without votes: its interval is unbounded (-inf, inf)."""
        return self.votes > 0

    def as_row(self) -> dict[str, Any]:
        """JSON-safe dict: unbounded interval ends become None (JSON has no infinity)."""
        return {
            "name": self.name,
            "rating": self.rating,
            "ci_low": self.ci_low if math.isfinite(self.ci_low) else None,
            "ci_high": self.ci_high if math.isfinite(self.ci_high) else None,
            "rank": self.rank,
            "votes": self.votes,
            "wins": self.wins,
            "losses": self.losses,
            "ties": self.ties,
            "part": self.part,
        }


@dataclass(frozen=True)
class Leaderboard:
    """A fit: standings best first (by part, rank, rating), and what was done to get them."""

    standings: tuple[Standing, ...]
    method: str
    notes: tuple[str, ...]
    prior: float | None
    parts: int
    bootstrap_rounds: int
    separated_rounds: int
    seed: int | None
    level: float
    total_votes: float
    anchor: tuple[str, float] | None
    intervals: str = INTERVALS_BOOTSTRAP  # INTERVALS_BOOTSTRAP or INTERVALS_SANDWICH

    @property
    def method_note(self) -> str:
        """One line for people: the method, then every note."""
        return "; ".join((self.method, *self.notes))

    def by_name(self, name: str) -> Standing:
        for standing in self.standings:
            if standing.name == name:
                return standing
        raise KeyError(f"unknown generator {name!r}")

    def ratings(self) -> dict[str, float]:
        return {s.name: s.rating for s in self.standings}

    def as_rows(self) -> list[dict[str, Any]]:
        return [s.as_row() for s in self.standings]


def win_rate_matrix(counts: PairCounts) -> FloatArray:
    """Observed share of votes row won against column (ties as half) for a heatmap; NaN where never compared."""
    n = counts.comparisons
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(n > 0, counts.matrix / np.where(n > 0, n, 1.0), np.nan)
    np.fill_diagonal(rates, np.nan)
    return rates


def expected_win_rates(board: Leaderboard, names: Sequence[str] | None = None) -> FloatArray:
    """Model probability that row beats column, from the fitted ratings; NaN across parts and for unrated generators."""
    order = list(names) if names is not None else [s.name for s in board.standings]
    rows = [board.by_name(name) for name in order]
    rating = np.array([s.rating for s in rows])
    part = np.array([s.part for s in rows])
    rated = np.array([s.rated for s in rows])
    p = _sigmoid((rating[:, None] - rating[None, :]) / ELO_PER_NAT)
    valid = (part[:, None] == part[None, :]) & rated[:, None] & rated[None, :]
    np.fill_diagonal(valid, False)
    return np.where(valid, p, np.nan)


def fit_ratings(
    counts: PairCounts,
    *,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int | None = 0,
    level: float = DEFAULT_LEVEL,
    anchor: tuple[str, float] | None = None,
    prior: float = DEFAULT_PRIOR,
    intervals: str = INTERVALS_BOOTSTRAP,
) -> Leaderboard:
    """Fit Bradley-Terry ratings with bootstrap intervals and ranks; see the module docstring for the rules.

    `bootstrap` rounds (0: no intervals, each interval is the rating itself); `seed` makes the
    intervals reproducible (None draws fresh entropy); `level` is the interval's coverage;
    `intervals="sandwich"` gives closed-form robust intervals instead of the bootstrap (`bootstrap`
    and `seed` are then unused): one linear solve per part, milliseconds where 1,000 rounds take tenths;
    `anchor=(name, rating)` pins one generator (its part is shifted; its own interval collapses
    to the anchor and the others widen, as every round is re-anchored); `prior` is the pseudo-win
    count used only when perfect separation leaves no finite MLE.
    """
    if intervals not in INTERVAL_METHODS:
        raise ValueError(f"intervals must be one of {', '.join(INTERVAL_METHODS)}, not {intervals!r}")
    if bootstrap < 0:
        raise ValueError("bootstrap rounds must be >= 0")
    if not 0 < level < 1:
        raise ValueError("level must be between 0 and 1")
    if not (prior > 0 and math.isfinite(prior)):
        raise ValueError("prior must be a positive number")
    if anchor is not None:
        if anchor[0] not in counts.names:
            raise ValueError(f"anchor generator {anchor[0]!r} is not among the generators")
        if not math.isfinite(anchor[1]):
            raise ValueError("anchor rating must be a finite number")

    k = counts.size
    n = counts.comparisons
    parts = _connected_parts(n)
    part_of = np.zeros(k, dtype=np.int64)
    for p, members in enumerate(parts):
        part_of[members] = p

    matrix = counts.matrix
    strengths = np.zeros(k)
    fits: list[_PartFit | None] = []
    for members in parts:
        if len(members) < 2:
            fits.append(None)
            continue
        fit_matrix, crossing, groups = _add_separation_prior(matrix[np.ix_(members, members)], prior)
        x = _mle(fit_matrix, None, _POINT_TOL, polish=True)
        strengths[members] = x
        fits.append(_PartFit(members, x, fit_matrix, crossing, groups))

    rating = ELO_MEAN + ELO_PER_NAT * strengths
    shift = np.zeros(len(parts))
    anchor_index, anchor_rating = (counts.index(anchor[0]), anchor[1]) if anchor is not None else (-1, 0.0)
    if anchor_index >= 0:
        shift[part_of[anchor_index]] = anchor_rating - rating[anchor_index]
    rating += shift[part_of]

    rated = n.sum(axis=1) > 0
    if intervals == INTERVALS_SANDWICH:
        bootstrap, seed = 0, None
        low, high = _sandwich_intervals(counts, fits, rating, anchor_index, level, prior)
        separated = 0
    else:
        low, high, separated = _intervals(
            counts,
            fits,
            parts,
            part_of,
            rating,
            shift,
            anchor_index,
            bootstrap,
            level,
            prior,
            np.random.default_rng(seed),
        )
    low[~rated] = -math.inf
    high[~rated] = math.inf
    if anchor_index >= 0 and not rated[anchor_index]:
        rating[anchor_index] = anchor_rating

    ranks = rank_from_intervals(low, high, part_of)
    wins = counts.wins.sum(axis=1)
    losses = counts.wins.sum(axis=0)
    ties = counts.ties.sum(axis=1)
    standings = [
        Standing(
            name=counts.names[i],
            rating=float(rating[i]),
            ci_low=float(low[i]),
            ci_high=float(high[i]),
            rank=int(ranks[i]),
            votes=float(n[i].sum()),
            wins=float(wins[i]),
            losses=float(losses[i]),
            ties=float(ties[i]),
            part=int(part_of[i]),
        )
        for i in range(k)
    ]
    standings.sort(key=lambda s: (s.part, s.rank, -s.rating, s.name))

    prior_used = any(fit is not None and fit.crossing.any() for fit in fits)
    method = METHOD_NONE if not rated.any() else METHOD_REGULARISED if prior_used else METHOD_EXACT
    notes = [
        _separation_note(p, len(parts), [counts.names[m] for m in fit.members], fit.groups, fit.crossing, prior)
        for p, fit in enumerate(fits)
        if fit is not None and fit.crossing.any()
    ]
    notes += _coverage_notes(counts.names, parts, rated)
    if separated:
        notes.append(
            f"{separated} of {bootstrap} bootstrap rounds drew a perfectly separated sample and were fitted with the "
            f"prior {prior:g}"
        )
    if anchor is not None:
        notes.append(f"anchored: {anchor[0]} = {anchor[1]:g}")
    return Leaderboard(
        standings=tuple(standings),
        method=method,
        notes=tuple(notes),
        prior=prior if (prior_used or separated) else None,
        parts=len(parts),
        bootstrap_rounds=bootstrap,
        separated_rounds=separated,
        seed=seed,
        level=level,
        total_votes=counts.total,
        anchor=anchor,
        intervals=intervals,
    )


def _intervals(
    counts: PairCounts,
    fits: list[_PartFit | None],
    parts: list[IntArray],
    part_of: IntArray,
    rating: FloatArray,
    shift: FloatArray,
    anchor_index: int,
    bootstrap: int,
    level: float,
    prior: float,
    rng: np.random.Generator,
) -> tuple[FloatArray, FloatArray, int]:
    """Percentile interval ends on the Elo scale, and how many rounds needed the prior."""
    if bootstrap == 0 or all(fit is None for fit in fits):
        return rating.copy(), rating.copy(), 0
    samples, separated = _bootstrap(counts, fits, bootstrap, prior, rng)
    samples = ELO_MEAN + ELO_PER_NAT * samples + shift[part_of]
    if anchor_index >= 0 and fits[part_of[anchor_index]] is not None:
        members = parts[part_of[anchor_index]]
        samples[:, members] += rating[anchor_index] - samples[:, [anchor_index]]
    tail = 100 * (1 - level) / 2
    low = np.percentile(samples, tail, axis=0)
    high = np.percentile(samples, 100 - tail, axis=0)
    # A percentile interval can miss its own point estimate in tiny or separated samples; a bar
    # that does not contain its dot reads as a bug, so the interval is widened to include it.
    return np.minimum(low, rating), np.maximum(high, rating), separated


def sandwich_covariance(wins: FloatArray, ties: FloatArray, strengths: FloatArray) -> FloatArray:
    """Robust covariance A+ B A+ of centred strengths (natural-log units) at the fit `strengths`.

    `wins[i, j]`: decisive votes for i over j (prior pseudo-wins included where the fit used them);
    `ties`: symmetric tie counts. The comparison graph must be connected. See the module docstring.
    """
    k = len(strengths)
    p = _sigmoid(strengths[:, None] - strengths[None, :])
    votes = wins + wins.T + ties
    w = votes * p * p.T
    bread = np.diag(w.sum(axis=1)) - w
    # Squared score of each vote, summed by pair: a win of i scores 1 - p, a loss -p, a tie 1/2 - p.
    s = wins * (1 - p) ** 2 + wins.T * p**2 + ties * (0.5 - p) ** 2
    meat = np.diag(s.sum(axis=1)) - s
    centre = np.full((k, k), 1.0 / k)
    pinv = np.linalg.inv(bread + centre) - centre  # Moore-Penrose inverse: A's null space is the all-ones vector
    return np.asarray(pinv @ meat @ pinv, dtype=np.float64)


def _sandwich_intervals(
    counts: PairCounts,
    fits: list[_PartFit | None],
    rating: FloatArray,
    anchor_index: int,
    level: float,
    prior: float,
) -> tuple[FloatArray, FloatArray]:
    """Normal interval ends on the Elo scale from the sandwich covariance of each part."""
    low, high = rating.copy(), rating.copy()
    z = NormalDist().inv_cdf((1 + level) / 2)
    for fit in fits:
        if fit is None:
            continue
        members = fit.members
        local = np.ix_(members, members)
        wins = counts.wins[local] + prior * fit.crossing
        cov = sandwich_covariance(wins, counts.ties[local], fit.strengths)
        variance = np.diag(cov).copy()
        if anchor_index >= 0 and anchor_index in members:
            a = int(np.flatnonzero(members == anchor_index)[0])
            variance = variance + cov[a, a] - 2 * cov[:, a]
        half = z * ELO_PER_NAT * np.sqrt(np.clip(variance, 0.0, None))
        low[members] = rating[members] - half
        high[members] = rating[members] + half
    return low, high


def _coverage_notes(names: tuple[str, ...], parts: list[IntArray], rated: NDArray[np.bool_]) -> list[str]:
    if not names:
        return []
    if not rated.any():
        return ["no votes yet: every generator is unrated (rating 1000 by convention, unbounded interval)"]
    notes = []
    rated_parts = sum(1 for members in parts if len(members) > 1)
    if rated_parts > 1:
        notes.append(
            f"the comparison graph has {rated_parts} disconnected parts: ratings are comparable only within a "
            "part (each part is centred on 1000 unless it holds the anchor) and ranks are within the part"
        )
    unrated = [names[i] for i in range(len(names)) if not rated[i]]
    if unrated:
        notes.append(f"no votes yet for {', '.join(unrated)}: rating 1000 by convention, unbounded interval")
    return notes


def rank_from_intervals(low: ArrayLike, high: ArrayLike, part: ArrayLike | None = None) -> IntArray:
    """1 + the number of generators (of the same part) whose lower bound is above this one's upper bound."""
    lo = np.asarray(low, dtype=np.float64)
    hi = np.asarray(high, dtype=np.float64)
    above = lo[None, :] > hi[:, None]
    if part is not None:
        p = np.asarray(part)
        above &= p[None, :] == p[:, None]
    return (1 + above.sum(axis=1)).astype(np.int64)


@dataclass(frozen=True, eq=False)
class _PartFit:
    members: IntArray
    strengths: FloatArray
    matrix: FloatArray  # the counts the point fit used, prior included
    crossing: NDArray[np.bool_]  # pairs that received the prior
    groups: NDArray[np.int64]  # strongly connected group of each member


def _connected_parts(n: FloatArray) -> list[IntArray]:
    """Connected parts of the comparison graph, largest first (ties by lowest index); generators without votes alone."""
    k = n.shape[0]
    if k == 0:
        return []
    compared = n > 0
    unseen = np.ones(k, dtype=bool)
    parts = []
    while unseen.any():
        seen = _reach(compared, int(np.flatnonzero(unseen)[0]))
        parts.append(np.flatnonzero(seen).astype(np.int64))
        unseen &= ~seen
    parts.sort(key=lambda m: (-len(m), int(m[0])))
    return parts


def _add_separation_prior(matrix: FloatArray, prior: float) -> tuple[FloatArray, NDArray[np.bool_], NDArray[np.int64]]:
    """The matrix to fit, which pairs got the prior, and the strongly connected group of each generator.

    The MLE is finite iff the "beat" graph (i -> j when i won anything against j) is strongly
    connected (Zermelo; Ford 1957). In a connected part, adding pseudo-wins both ways to the
    compared pairs that cross between strongly connected groups makes it so, and leaves pairs inside
    a group untouched.
    """
    beats = matrix > 0
    if _strongly_connected(beats):
        return matrix, np.zeros(matrix.shape, dtype=bool), np.zeros(len(matrix), dtype=np.int64)
    # Rare (separated data only), so SciPy's import is paid only here.
    from scipy.sparse.csgraph import connected_components

    _, labels = connected_components(beats, directed=True, connection="strong")
    compared = (matrix + matrix.T) > 0
    crossing = compared & (labels[:, None] != labels[None, :])
    return matrix + prior * crossing, crossing, labels.astype(np.int64)


def _strongly_connected(edges: NDArray[np.bool_]) -> bool:
    """Whether every generator reaches every other along `edges` and back.

    Bootstrap rounds on sparse data ask this every round; SciPy's component search costs a
    millisecond of input checks per call, two breadth-first searches a few microseconds.
    """
    return bool(_reach(edges, 0).all() and _reach(edges.T, 0).all())


def _reach(edges: NDArray[np.bool_], start: int) -> NDArray[np.bool_]:
    """Generators reachable from `start` along `edges` (breadth-first, one matrix row-block per step)."""
    seen = np.zeros(len(edges), dtype=bool)
    seen[start] = True
    frontier = seen
    while frontier.any():
        frontier = edges[frontier].any(axis=0) & ~seen
        seen = seen | frontier
    return seen


def _sigmoid(x: FloatArray) -> FloatArray:
    """1 / (1 + exp(-x)) without overflow (SciPy's expit, without importing scipy.special for one function)."""
    return np.asarray(np.exp(-np.logaddexp(0.0, -x)), dtype=np.float64)


def _separation_note(
    part: int,
    parts: int,
    names: list[str],
    groups: NDArray[np.int64],
    crossing: NDArray[np.bool_],
    prior: float,
) -> str:
    where = f"part {part}" if parts > 1 else "the comparison graph"
    sizes = np.bincount(groups)
    alone = [names[i] for i in range(len(names)) if sizes[groups[i]] == 1]
    who = f" ({', '.join(alone[:5])}{', ...' if len(alone) > 5 else ''} only won or only lost)" if alone else ""
    return (
        f"perfect separation in {where}{who}: no finite MLE, so {prior:g} pseudo-wins were added each way to the "
        f"{int(crossing.sum() // 2)} compared pairs between its {int(groups.max()) + 1} strongly connected groups "
        f"(prior alpha={prior:g}); other pairs keep their exact counts"
    )


def _mle(matrix: FloatArray, init: FloatArray | None, tol: float, *, polish: bool) -> FloatArray:
    """Centred MLE strengths for a strongly connected matrix: I-LSR, then Newton if it did not (or may not) finish."""
    # choix pulls in scipy.stats (about a second): the web process imports this module at start-up
    # but should pay for choix only when it first fits.
    import choix

    try:
        x = choix.ilsr_pairwise_dense(matrix, initial_params=init, tol=tol, max_iter=_MAX_ITER)
    except (RuntimeError, ValueError):
        # RuntimeError: I-LSR ran out of iterations; ValueError: its chain lost irreducibility in
        # floating point. Newton from the start point finishes the job either way.
        x = np.zeros(matrix.shape[0]) if init is None else init
        polish = True
    if polish and not _certified(matrix, x):
        x = _newton(matrix, x)
    return np.asarray(x - x.mean(), dtype=np.float64)


def _certified(matrix: FloatArray, x: FloatArray) -> bool:
    """Whether the gradient is so small that a Newton step (diagonal estimate) would move no strength by 1e-9.

    Checking first spares a dense solve: on a busy machine a multithreaded BLAS can take 100 ms to
    wake up for a 100 x 100 system that needs 0.5 ms.
    """
    p = _sigmoid(x[:, None] - x[None, :])
    n = matrix + matrix.T
    grad = matrix.sum(axis=1) - (n * p).sum(axis=1)
    curvature = (n * p * p.T).sum(axis=1)
    return bool(np.all(np.abs(grad) <= 1e-9 * curvature))


def _newton(matrix: FloatArray, x: FloatArray, max_steps: int = 50) -> FloatArray:
    """Damped Newton on the BT log-likelihood; stops when the step is below 1e-12 (2e-10 Elo)."""
    k = matrix.shape[0]
    n = matrix + matrix.T
    wins = matrix.sum(axis=1)
    fix = np.full((k, k), 1.0 / k)  # pins the free shift: the Hessian's null space is the all-ones vector

    def loglik(v: FloatArray) -> float:
        d = v[:, None] - v[None, :]
        return float(-(matrix * np.logaddexp(0.0, -d)).sum())

    x = x - x.mean()
    current = loglik(x)
    for _ in range(max_steps):
        p = _sigmoid(x[:, None] - x[None, :])
        grad = wins - (n * p).sum(axis=1)
        w = n * p * p.T
        hess = np.diag(w.sum(axis=1)) - w
        step = np.linalg.solve(hess + fix, grad)
        step -= step.mean()
        size = float(np.abs(step).max())
        if size < 1e-12:
            break
        t = 1.0
        while t > 1e-6:
            trial = x + t * step
            value = loglik(trial)
            if value >= current - 1e-12 * abs(current):
                x, current = trial, value
                break
            t /= 2
        else:
            break
        if size < 1e-9:
            break
    return x - x.mean()


def _bootstrap(
    counts: PairCounts, fits: list[_PartFit | None], rounds: int, prior: float, rng: np.random.Generator
) -> tuple[FloatArray, int]:
    """Strengths for each round (rounds x K, centred per part) and how many rounds needed the prior."""
    k = counts.size
    iu, ju = np.triu_indices(k, 1)
    n_pairs = counts.comparisons[iu, ju]
    keep = n_pairs > 0
    iu, ju = iu[keep], ju[keep]
    a = counts.wins[iu, ju].copy()
    b = counts.wins[ju, iu].copy()
    t = counts.ties[iu, ju]
    n = a + b + t
    # In a regularised part the pairs that got the prior are resampled from the smoothed counts, so
    # that a pair seen once (1-0) does not reappear as 1-0 in every round with a zero-width interval.
    for fit in fits:
        if fit is not None and fit.crossing.any():
            local = {int(g): i for i, g in enumerate(fit.members)}
            for pair, (gi, gj) in enumerate(zip(iu, ju, strict=True)):
                li, lj = local.get(int(gi)), local.get(int(gj))
                if li is not None and lj is not None and fit.crossing[li, lj]:
                    a[pair] += prior
                    b[pair] += prior
    decisive = a + b
    p_tie = t / (decisive + t)
    p_tie_free = 1 - p_tie
    p_first = np.where(decisive > 0, a / np.where(decisive > 0, decisive, 1.0), 0.5)
    # Weighted counts need not be whole: draw round(n) votes and scale back to n.
    trials = np.maximum(1, np.rint(n)).astype(np.int64)
    scale = n / trials

    parts = [fit for fit in fits if fit is not None]
    setups = [_round_setup(fit, k) for fit in parts]
    pair_part = np.full(len(iu), -1, dtype=np.int64)
    part_index = np.full(k, -1, dtype=np.int64)
    for p, fit in enumerate(parts):
        part_index[fit.members] = p
    pair_part[:] = part_index[iu]

    samples = np.zeros((rounds, k))
    separated = 0
    chunk = max(1, min(rounds, _CHUNK_CELLS // max(1, len(iu))))
    # Tables pay off when many rounds reuse them; a pair with millions of votes would need a huge FFT.
    use_tables = chunk >= 64 and bool(np.all(trials <= _MAX_TABLE_TRIALS))
    tables = _ScoreTables(trials, p_tie_free * p_first, p_tie_free * (1 - p_first), p_tie) if use_tables else None
    for start in range(0, rounds, chunk):
        c = min(chunk, rounds - start)
        if tables is not None:
            score = tables.draw(rng, c)
        else:
            tied = rng.binomial(trials, p_tie, size=(c, len(iu)))
            score = tied + 2 * rng.binomial(trials - tied, p_first)
        upper = scale * (score / 2)
        lower = scale * (trials - score / 2)
        one_sided = (upper == 0) | (lower == 0)
        for r in range(c):
            full = np.zeros((k, k))
            full[iu, ju] = upper[r]
            full[ju, iu] = lower[r]
            flagged = np.unique(pair_part[one_sided[r]]) if one_sided[r].any() else ()
            any_prior = False
            for p, (fit, setup) in enumerate(zip(parts, setups, strict=True)):
                sub = full if setup.whole else full[np.ix_(fit.members, fit.members)]
                if p in flagged:
                    sub, crossing, _ = _add_separation_prior(sub, prior)
                    any_prior = any_prior or bool(crossing.any())
                x = _mle(sub, setup.warm_start(sub), _BOOT_TOL, polish=False)
                samples[start + r, fit.members] = x
            separated += any_prior
    return samples, separated


@dataclass(frozen=True, eq=False)
class _RoundSetup:
    """What every bootstrap round of one part reuses: the point fit and its inverse Hessian."""

    whole: bool
    strengths: FloatArray
    p: FloatArray
    inverse_hessian: FloatArray

    def warm_start(self, matrix: FloatArray) -> FloatArray:
        # One Newton step from the point fit, with the point fit's Hessian: close enough on large
        # data that I-LSR stops after the two iterations its convergence test needs.
        grad = matrix.sum(axis=1) - ((matrix + matrix.T) * self.p).sum(axis=1)
        x = self.strengths + self.inverse_hessian @ grad
        if len(x) <= _EXACT_STEP_MAX:
            # On small, sparse data that step lands further off and I-LSR crawls (4-5 iterations);
            # a Newton step with this round's own Hessian costs less than one I-LSR iteration here.
            x = _newton(matrix, x, max_steps=1)
        return np.asarray(x - x.mean(), dtype=np.float64)


def _round_setup(fit: _PartFit, k: int) -> _RoundSetup:
    x = fit.strengths
    m = len(x)
    p = _sigmoid(x[:, None] - x[None, :])
    w = (fit.matrix + fit.matrix.T) * p * p.T
    hess = np.diag(w.sum(axis=1)) - w + np.full((m, m), 1.0 / m)
    return _RoundSetup(whole=m == k, strengths=x, p=p, inverse_hessian=np.linalg.inv(hess))


class _ScoreTables:
    """Exact resampling of each pair's score S = 2 * (first's wins) + ties by inverting a tabulated law.

    The fit sees a resampled pair only through S (cells S/2 and n - S/2), and under the multinomial
    (n; p_first, p_second, p_tie) S is a sum of n independent draws from {0, 1, 2}: its law is the
    coefficient list of (p_second + p_tie z + p_first z^2)^n. It is computed once per pair with a
    DFT on a circle just wider than mean +- (15 sd + 15), beyond which the mass is below 1e-40, so
    wrap-around is harmless. FFT rounding leaves a total-variation error near 1e-13 for hundreds of
    votes per pair and 1e-10 for millions. One uniform per pair and round then replaces NumPy's two
    binomial draws, whose per-element setup made them the slowest step of the bootstrap.
    """

    def __init__(self, trials: IntArray, p_first: FloatArray, p_second: FloatArray, p_tie: FloatArray) -> None:
        count = len(trials)
        mean = trials * (p_tie + 2 * p_first)
        sd = np.sqrt(np.maximum(trials * (p_tie + 4 * p_first) - trials * (p_tie + 2 * p_first) ** 2, 0.0))
        self.low = np.maximum(0, np.floor(mean - 15 * sd - 15)).astype(np.int64)
        high = np.minimum(2 * trials, np.ceil(mean + 15 * sd + 15)).astype(np.int64)
        width = high - self.low + 1
        self.cdfs: list[FloatArray] = [np.ones(1)] * count
        circle = np.maximum(4, 1 << np.ceil(np.log2(width)).astype(np.int64))
        for size in np.unique(circle):
            group = np.flatnonzero(circle == size)
            # Batches of about 4M cells keep memory bounded whatever the pair sizes.
            step = max(1, (1 << 22) // int(size))
            for begin in range(0, len(group), step):
                rows = group[begin : begin + step]
                coefficients = np.zeros((len(rows), int(size)))
                coefficients[:, 0] = p_second[rows]
                coefficients[:, 1] = p_tie[rows]
                coefficients[:, 2] = p_first[rows]
                pmf = np.fft.irfft(_power(np.fft.rfft(coefficients, axis=1), trials[rows]), int(size), axis=1)
                span = int(width[rows].max())
                cells = pmf[np.arange(len(rows))[:, None], (self.low[rows, None] + np.arange(span)) % size]
                cells = np.where(np.arange(span) < width[rows, None], np.clip(cells, 0.0, None), 0.0)
                cdf = np.cumsum(cells, axis=1)
                cdf /= cdf[:, -1:]
                for row, pair in enumerate(rows):
                    self.cdfs[pair] = cdf[row, : width[pair]]

    def draw(self, rng: np.random.Generator, rounds: int) -> IntArray:
        uniform = rng.random((len(self.cdfs), rounds))
        out = np.empty((rounds, len(self.cdfs)), dtype=np.int64)
        for pair, cdf in enumerate(self.cdfs):
            out[:, pair] = self.low[pair] + np.minimum(np.searchsorted(cdf, uniform[pair], side="right"), cdf.size - 1)
        return out


def _power(base: NDArray[np.complex128], exponents: IntArray) -> NDArray[np.complex128]:
    """Row-wise base ** exponent by repeated squaring: a few complex products, cheaper and tighter than complex pow."""
    result = np.ones_like(base)
    base = base.copy()
    e = exponents.copy()
    while np.any(e > 0):
        np.multiply(result, base, out=result, where=(e & 1).astype(bool)[:, None])
        np.multiply(base, base, out=base)
        e >>= 1
    return result
