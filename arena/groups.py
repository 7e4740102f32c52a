"""Pure boards per group of participants, the test of whether groups disagree, and a board raked to a population.

No Django. Every fit is arena.ranking's exact Bradley-Terry fit (`fit_ratings(counts, bootstrap=0)`:
ties and both_bad count half a win each way, the separation prior only where separation leaves no
finite MLE, ratings on the Elo scale centred on 1000 in each connected part). The permutations' and
bootstrap rounds' refits, hundreds per answer, are made together by arena.batched_fits, which gives
fit_ratings' answers.

Conventions:

- The unit of resampling is the participant, never the vote. A participant's votes share one taste
  (and one attention span), so they are not independent draws: `ParticipantVotes` keeps each vote with
  its participant, and every interval here comes from a bootstrap that redraws whole participants
  with replacement (all their votes with them), refits, and takes percentiles (widened, as in
  arena.ranking, to contain the point fit). A generator without votes in a round is left out of that
  round's percentiles; one without votes at all keeps the unbounded interval.
- A group is a label per participant (a questionnaire answer); participants without a label belong
  to no group. Groups with fewer than `min_size` participants are dropped before anything is
  computed (the caller passes the campaign's k): they are counted in `suppressed_groups`, never named.
- The group test (`compare_groups`): the likelihood-ratio statistic 2 (sum over groups of the maximised
  log-likelihood of a fit on that group's votes - the maximised log-likelihood of one fit on all of
  them), with the tie-as-half-a-win (quasi-)likelihood the fit maximises. Its p-value comes from
  permuting the group labels among the participants (group sizes kept, a participant's votes kept
  together), never from the chi-square law, which assumes independent votes:
  p = (1 + #{permuted statistic >= observed}) / (1 + permutations), so it is never 0 and a test with
  P permutations cannot give less than 1 / (P + 1). The permutations are seeded.
- Rating differences between groups: each group against the reference group (the largest, ties by
  label), per generator, rating in the group - rating in the reference, both centred on 1000, so a
  difference is relative to the group's mean generator. Intervals come from a stratified participant
  bootstrap: each round redraws every group's participants from that group, and the same rounds give
  each group's board its intervals.
- A share of votes (`participant_share`: the metrics' agreement with one group) is the ratio of the
  participants' summed hits to their summed votes; its interval redraws participants, as the boards do.
- Raking (`rake`): targets are margins, each over one question or a combination of questions (a
  census's gender x age bands is one margin over two questions), with a share per cell. A
  participant takes part when every margin's cell they fall in has a target share; the rest (no
  answer, "prefer not to say" where the target does not name it) get weight 0 and are counted in
  `excluded`. A target cell without participants cannot be matched: it is reported in `empty_cells`
  and its margin's other shares are scaled up to sum to 1. Iterative proportional fitting scales the
  weights to each margin in turn; after every pass weights are capped at `cap` times the mean weight
  (trimmed exactly: the capped share is solved for, not clipped once) and rescaled to mean 1. It
  stops when a pass changes no weight by more than `tol`; `converged` says whether every margin was
  then met within `tol` (a binding cap can keep it from being met, and the report shows the achieved
  shares). The effective sample size is Kish's (sum w)^2 / sum w^2.
- The weighted board fits the weighted counts (each participant's votes times their weight); its
  intervals re-rake every bootstrap round on the redrawn participants, so they carry the weights'
  own uncertainty.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from arena.batched_fits import fit_many
from arena.ranking import (
    DEFAULT_LEVEL,
    FIRST_WINS,
    SECOND_WINS,
    TIE,
    Leaderboard,
    PairCounts,
    fit_ratings,
    rank_from_intervals,
)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

# `Leaderboard.intervals` of every board made here.
INTERVALS_PARTICIPANTS = "participant bootstrap"

DEFAULT_ROUNDS = 200
DEFAULT_PERMUTATIONS = 199
DEFAULT_CAP = 5.0
DEFAULT_TOL = 1e-6
DEFAULT_MAX_ITER = 200
# Multi-question cells are written "value|value" in the targets' JSON.
CELL_SEPARATOR = "|"

OUTCOMES = {"first": FIRST_WINS, "second": SECOND_WINS, "tie": TIE}


class GroupsError(ValueError):
    """Input the group computations cannot use: the message says what is wrong."""


@dataclass(frozen=True, eq=False)
class ParticipantVotes:
    """Every counted vote with its participant: `participant[v]` indexes `participants`, `first[v]`/`second[v]`
    index `names`, `outcome[v]` is arena.ranking's FIRST_WINS / SECOND_WINS / TIE (both_bad as a tie)."""

    names: tuple[str, ...]
    participants: tuple[str, ...]
    participant: IntArray
    first: IntArray
    second: IntArray
    outcome: IntArray

    def __post_init__(self) -> None:
        arrays = [np.asarray(a, dtype=np.int64) for a in (self.participant, self.first, self.second, self.outcome)]
        if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
            raise GroupsError("participant, first, second and outcome must be one-dimensional and of one length")
        p, a, b, o = arrays
        k, n = len(self.names), len(self.participants)
        if len(set(self.names)) != k or len(set(self.participants)) != n:
            raise GroupsError("generator names and participant ids must be unique")
        if p.size and (p.min() < 0 or p.max() >= n):
            raise GroupsError("participant index out of range")
        if a.size and (min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= k):
            raise GroupsError("generator index out of range")
        if np.any(a == b):
            raise GroupsError("a vote compares a generator with itself")
        if np.any((o < FIRST_WINS) | (o > TIE)):
            raise GroupsError("outcome codes are FIRST_WINS (0), SECOND_WINS (1) or TIE (2)")
        for name, value in zip(("participant", "first", "second", "outcome"), arrays, strict=True):
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "participants", tuple(self.participants))

    @classmethod
    def from_rows(cls, names: Sequence[str], rows: Iterable[tuple[Any, str, str, int]]) -> ParticipantVotes:
        """From `(participant_id, first_generator, second_generator, outcome)` rows; participants in sorted id order."""
        index = {name: i for i, name in enumerate(names)}
        people: list[str] = []
        first: list[int] = []
        second: list[int] = []
        outcome: list[int] = []
        for who, a, b, o in rows:
            if a not in index or b not in index:
                raise GroupsError(f"unknown generator in vote ({a!r}, {b!r})")
            people.append(str(who))
            first.append(index[a])
            second.append(index[b])
            outcome.append(int(o))
        ids = sorted(set(people))
        position = {who: i for i, who in enumerate(ids)}
        return cls(
            tuple(names),
            tuple(ids),
            np.array([position[w] for w in people], dtype=np.int64),
            np.array(first, dtype=np.int64),
            np.array(second, dtype=np.int64),
            np.array(outcome, dtype=np.int64),
        )

    @property
    def size(self) -> int:
        """Participants."""
        return len(self.participants)

    @cached_property
    def votes_per_participant(self) -> IntArray:
        return np.bincount(self.participant, minlength=self.size).astype(np.int64)

    @cached_property
    def _table(self) -> Any:
        """Participants x (K*K decisive cells, then K*K tie cells): each participant's own counts, sparse."""
        from scipy.sparse import csr_matrix  # the web process pays for scipy.sparse only when a group board is asked

        k = len(self.names)
        decisive = self.outcome != TIE
        winner = np.where(self.outcome == FIRST_WINS, self.first, self.second)
        loser = np.where(self.outcome == FIRST_WINS, self.second, self.first)
        low, high = np.minimum(self.first, self.second), np.maximum(self.first, self.second)
        column = np.where(decisive, winner * k + loser, k * k + low * k + high)
        ones = np.ones(len(column))
        return csr_matrix((ones, (self.participant, column)), shape=(self.size, 2 * k * k))

    def counts(self, multiplicity: FloatArray | None = None) -> PairCounts:
        """Pair counts of the participants weighted by `multiplicity` (per participant; None: everyone once)."""
        m = np.ones(self.size) if multiplicity is None else np.asarray(multiplicity, dtype=np.float64)
        return self.counts_many(m[None, :])[0]

    def matrices_many(self, multiplicities: FloatArray) -> FloatArray:
        """The tables the model is fitted on (wins, each tie half a win each way: `PairCounts.matrix`), one per row
        of `multiplicities` (rows x participants): rows x K x K, in one sparse product."""
        k = len(self.names)
        flat = np.asarray((self._table.T @ np.asarray(multiplicities, dtype=np.float64).T).T)
        wins = flat[:, : k * k].reshape(-1, k, k)
        tied = flat[:, k * k :].reshape(-1, k, k)
        return np.asarray(wins + (tied + tied.transpose(0, 2, 1)) / 2, dtype=np.float64)

    def counts_many(self, multiplicities: FloatArray) -> list[PairCounts]:
        """One PairCounts per row of `multiplicities` (rows x participants), in one sparse product."""
        k = len(self.names)
        flat = np.asarray((self._table.T @ np.asarray(multiplicities, dtype=np.float64).T).T)
        out = []
        for row in flat:
            wins = row[: k * k].reshape(k, k)
            tied = row[k * k :].reshape(k, k)
            out.append(PairCounts(self.names, wins, tied + tied.T))
        return out


@dataclass(frozen=True)
class GroupBoard:
    """One group's board: its participants, their votes, and the fit with participant-bootstrap intervals."""

    label: str
    participants: int
    votes: int
    board: Leaderboard


@dataclass(frozen=True)
class RatingDifference:
    """A generator's rating in `group` minus its rating in `reference`, with its interval."""

    generator: str
    group: str
    reference: str
    difference: float
    ci_low: float
    ci_high: float

    def as_row(self) -> dict[str, Any]:
        return {
            "generator": self.generator,
            "group": self.group,
            "reference": self.reference,
            "difference": self.difference,
            "ci_low": self.ci_low if math.isfinite(self.ci_low) else None,
            "ci_high": self.ci_high if math.isfinite(self.ci_high) else None,
        }


@dataclass(frozen=True)
class GroupTest:
    """Whether groups rank the generators differently: the statistic, its permutation p-value, and what it compares."""

    statistic: float
    p_value: float
    permutations: int
    seed: int | None
    groups: tuple[GroupBoard, ...]
    reference: str
    differences: tuple[RatingDifference, ...]
    suppressed_groups: int
    min_size: int


def group_labels(votes: ParticipantVotes, labels: Mapping[str, str | None]) -> list[str | None]:
    """Labels aligned with `votes.participants` from a map of participant id -> label (absent: no group)."""
    return [labels.get(who) for who in votes.participants]


def board(
    votes: ParticipantVotes,
    *,
    members: Sequence[int] | IntArray | None = None,
    rounds: int = DEFAULT_ROUNDS,
    seed: int | None = 0,
    level: float = DEFAULT_LEVEL,
) -> Leaderboard:
    """The board of `members` (participant indices; None: everyone) with participant-bootstrap intervals."""
    chosen = np.arange(votes.size) if members is None else np.asarray(members, dtype=np.int64)
    _check(rounds=rounds, level=level)
    point = fit_ratings(votes.counts(_multiplicity(votes.size, chosen)), bootstrap=0)
    rng = np.random.default_rng(seed)
    samples = _resampled_ratings(votes, [chosen], None, rounds, rng)[:, 0, :]
    return _with_intervals(point, votes.names, samples, level, rounds, seed)


def compare_groups(
    votes: ParticipantVotes,
    labels: Sequence[str | None],
    *,
    min_size: int = 1,
    permutations: int = DEFAULT_PERMUTATIONS,
    rounds: int = DEFAULT_ROUNDS,
    seed: int | None = 0,
    level: float = DEFAULT_LEVEL,
) -> GroupTest:
    """Boards per group, the likelihood-ratio test of one fit against one per group, and differences between groups."""
    if len(labels) != votes.size:
        raise GroupsError(f"{len(labels)} labels for {votes.size} participants")
    if permutations < 1:
        raise GroupsError("permutations must be at least 1")
    if min_size < 1:
        raise GroupsError("the smallest group size shown must be at least 1")
    _check(rounds=rounds, level=level)
    sizes: dict[str, int] = {}
    for label in labels:
        if label is not None:
            sizes[label] = sizes.get(label, 0) + 1
    kept = sorted((label for label, n in sizes.items() if n >= min_size), key=lambda g: (-sizes[g], g))
    if len(kept) < 2:
        raise GroupsError(
            f"the test needs at least two groups of at least {min_size} participants; "
            f"{len(kept)} {'has' if len(kept) == 1 else 'have'} that many"
        )
    code_of = {label: g for g, label in enumerate(kept)}
    members = np.array([i for i, label in enumerate(labels) if label in code_of], dtype=np.int64)
    codes = np.array([code_of[label] for label in labels if label in code_of], dtype=np.int64)
    groups = len(kept)

    rng = np.random.default_rng(seed)
    # The observed split first, then the permutations; all fitted together (arena.batched_fits).
    assignments = [codes] + [rng.permutation(codes) for _ in range(permutations)]
    pooled_ll = fit_many(votes.matrices_many(_multiplicity(votes.size, members)[None, :]), votes.names).loglik[0]
    statistics = np.empty(len(assignments))
    per_chunk = _rows_per_chunk(groups * votes.size)
    for start in range(0, len(assignments), per_chunk):
        chunk = assignments[start : start + per_chunk]
        rows = np.zeros((len(chunk) * groups, votes.size))
        for q, assignment in enumerate(chunk):
            rows[q * groups + assignment, members] = 1.0
        split = fit_many(votes.matrices_many(rows), votes.names).loglik.reshape(len(chunk), groups).sum(axis=1)
        statistics[start : start + len(chunk)] = np.maximum(0.0, 2.0 * (split - pooled_ll))
    observed = float(statistics[0])
    # A relative tolerance: a permutation that reproduces the observed split must count as "as extreme".
    exceed = int(np.sum(statistics[1:] >= observed - 1e-9 * max(1.0, observed)))
    p_value = (1 + exceed) / (1 + permutations)
    observed_rows = np.zeros((groups, votes.size))
    observed_rows[codes, members] = 1.0
    fits = [fit_ratings(c, bootstrap=0) for c in votes.counts_many(observed_rows)]

    strata = [members[codes == g] for g in range(groups)]
    samples = _resampled_ratings(votes, strata, None, rounds, rng)
    boards = tuple(
        GroupBoard(
            label=label,
            participants=len(strata[g]),
            votes=int(votes.votes_per_participant[strata[g]].sum()),
            board=_with_intervals(fits[g], votes.names, samples[:, g, :], level, rounds, seed),
        )
        for g, label in enumerate(kept)
    )
    differences = []
    reference = fits[0].ratings()
    for g in range(1, groups):
        ratings = fits[g].ratings()
        for i, name in enumerate(votes.names):
            shift = samples[:, g, i] - samples[:, 0, i]
            low, high = _percentiles(shift, level)
            point = ratings[name] - reference[name]
            rated = fits[g].by_name(name).rated and fits[0].by_name(name).rated
            differences.append(
                RatingDifference(
                    generator=name,
                    group=kept[g],
                    reference=kept[0],
                    difference=point if rated else math.nan,
                    ci_low=min(low, point) if rated else -math.inf,
                    ci_high=max(high, point) if rated else math.inf,
                )
            )
    return GroupTest(
        statistic=observed,
        p_value=p_value,
        permutations=permutations,
        seed=seed,
        groups=boards,
        reference=kept[0],
        differences=tuple(differences),
        suppressed_groups=len(sizes) - len(kept),
        min_size=min_size,
    )


@dataclass(frozen=True)
class Margin:
    """A target over one question or a combination: `shares[(value, ...)]`, one value per question, summing to 1."""

    questions: tuple[str, ...]
    shares: Mapping[tuple[str, ...], float]

    def __post_init__(self) -> None:
        if not self.questions or len(set(self.questions)) != len(self.questions):
            raise GroupsError("a margin names one or more distinct questions")
        if not self.shares:
            raise GroupsError(f"the margin over {' x '.join(self.questions)} has no cells")
        for cell, share in self.shares.items():
            if len(cell) != len(self.questions):
                raise GroupsError(f"cell {cell!r} does not give one value for each of {', '.join(self.questions)}")
            if not (isinstance(share, int | float) and math.isfinite(share) and share >= 0):
                raise GroupsError(f"the share of {CELL_SEPARATOR.join(cell)!r} must be a number >= 0, not {share!r}")
        total = float(sum(self.shares.values()))
        if abs(total - 1.0) > 1e-3:
            raise GroupsError(f"the shares over {' x '.join(self.questions)} sum to {total:g}, not 1")
        object.__setattr__(self, "questions", tuple(self.questions))
        object.__setattr__(self, "shares", {tuple(c): float(s) / total for c, s in self.shares.items()})

    @property
    def name(self) -> str:
        return " x ".join(self.questions)


@dataclass(frozen=True)
class Targets:
    """A target population: its margins and the weight cap (times the mean weight)."""

    margins: tuple[Margin, ...]
    cap: float = DEFAULT_CAP


def parse_targets(data: object) -> Targets:
    """Targets from JSON: `{"margins": [{"questions": ["gender", "age"], "shares": {"woman|18-34": 0.14, ...}}],
    "cap": 5}` ("cap" optional, default 5). A cell over several questions joins their values with "|", in the
    order of "questions"; a question belongs to one margin at most.
    """
    if not isinstance(data, dict) or not isinstance(data.get("margins"), list) or not data["margins"]:
        raise GroupsError('targets must be {"margins": [{"questions": [...], "shares": {...}}, ...], "cap": 5}')
    if unknown := set(data) - {"margins", "cap"}:
        raise GroupsError(f"targets have unknown keys: {', '.join(sorted(map(str, unknown)))}")
    cap = data.get("cap", DEFAULT_CAP)
    if isinstance(cap, bool) or not isinstance(cap, int | float) or not (math.isfinite(cap) and cap >= 1):
        raise GroupsError(f"cap must be a number >= 1 (the largest weight, times the mean weight), not {cap!r}")
    margins = []
    seen: set[str] = set()
    for n, item in enumerate(data["margins"]):
        where = f"margins[{n}]"
        if not isinstance(item, dict) or set(item) != {"questions", "shares"}:
            raise GroupsError(f'{where} must have exactly "questions" and "shares"')
        questions, shares = item["questions"], item["shares"]
        if not isinstance(questions, list) or not all(isinstance(q, str) and q for q in questions):
            raise GroupsError(f"{where}.questions must be a list of question keys")
        if not isinstance(shares, dict):
            raise GroupsError(f"{where}.shares must map cells to shares")
        for question in questions:
            if question in seen:
                raise GroupsError(f"{where}: question {question!r} is already in another margin")
            seen.add(question)
        try:
            margins.append(
                Margin(
                    tuple(questions), {tuple(str(cell).split(CELL_SEPARATOR)): share for cell, share in shares.items()}
                )
            )
        except GroupsError as exc:
            raise GroupsError(f"{where}: {exc}") from None
    return Targets(tuple(margins), float(cap))


@dataclass(frozen=True)
class CellShare:
    """One target cell: its target share, the sample's share (unweighted) and the raked share, and its participants."""

    margin: str
    cell: tuple[str, ...]
    target: float
    sample: float
    weighted: float
    participants: int


@dataclass(frozen=True)
class Raking:
    """Participant weights (mean 1 over those taking part, 0 for the rest) and how well they meet the targets."""

    weights: FloatArray
    cells: tuple[CellShare, ...]
    empty_cells: tuple[tuple[str, tuple[str, ...]], ...]
    excluded: int
    effective_size: float
    converged: bool
    iterations: int
    cap: float
    at_cap: int = field(default=0)

    @property
    def included(self) -> int:
        return int((self.weights > 0).sum())


def rake(
    answers: Sequence[Mapping[str, str] | None],
    margins: Sequence[Margin],
    *,
    cap: float = DEFAULT_CAP,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
) -> Raking:
    """Weights for participants (answers as labels per question) that match `margins`: see the module docstring."""
    if not margins:
        raise GroupsError("raking needs at least one margin")
    if not (math.isfinite(cap) and cap >= 1.0):
        raise GroupsError(f"the weight cap must be a number >= 1 (times the mean weight), not {cap!r}")
    codes, cells = _cell_codes(answers, margins)
    included = np.all(codes >= 0, axis=0)
    n = len(answers)
    weights = np.zeros(n)
    counts = [np.bincount(c[included], minlength=len(cs)) for c, cs in zip(codes, cells, strict=True)]
    targets = [np.array([m.shares[cell] for cell in cs]) for m, cs in zip(margins, cells, strict=True)]
    empty = tuple(
        (m.name, cell)
        for m, cs, k in zip(margins, cells, counts, strict=True)
        for cell, c in zip(cs, k, strict=True)
        if c == 0 and m.shares[cell] > 0
    )
    iterations, converged = 0, False
    if included.any():
        inner, iterations, converged = _rake_codes(codes[:, included], targets, cap, tol, max_iter)
        weights[included] = inner
    total = weights.sum()
    rows = []
    for m, cs, c, target, k in zip(margins, cells, codes, targets, counts, strict=True):
        weighted = (
            np.bincount(c[included], weights=weights[included], minlength=len(cs)) / total if total else 0 * target
        )
        for i, cell in enumerate(cs):
            rows.append(
                CellShare(
                    margin=m.name,
                    cell=cell,
                    target=float(target[i]),
                    sample=float(k[i] / max(1, k.sum())),
                    weighted=float(weighted[i]),
                    participants=int(k[i]),
                )
            )
    square = float((weights**2).sum())
    return Raking(
        weights=weights,
        cells=tuple(rows),
        empty_cells=empty,
        excluded=int(n - included.sum()),
        effective_size=total**2 / square if square else 0.0,
        converged=converged,
        iterations=iterations,
        cap=cap,
        at_cap=int(np.sum(weights >= cap * (1 - 1e-9))) if included.any() else 0,
    )


@dataclass(frozen=True)
class WeightedBoard:
    """The board raked to the targets beside the unweighted one, both with participant-bootstrap intervals."""

    weighted: Leaderboard
    unweighted: Leaderboard
    raking: Raking


def weighted_board(
    votes: ParticipantVotes,
    answers: Sequence[Mapping[str, str] | None],
    margins: Sequence[Margin],
    *,
    cap: float = DEFAULT_CAP,
    rounds: int = DEFAULT_ROUNDS,
    seed: int | None = 0,
    level: float = DEFAULT_LEVEL,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
) -> WeightedBoard:
    """Rake the participants to `margins`, fit the weighted counts, bootstrap participants (re-raking each round)."""
    if len(answers) != votes.size:
        raise GroupsError(f"{len(answers)} answer sets for {votes.size} participants")
    _check(rounds=rounds, level=level)
    raking = rake(answers, margins, cap=cap, tol=tol, max_iter=max_iter)
    unweighted = board(votes, rounds=rounds, seed=seed, level=level)
    if raking.included == 0:
        raise GroupsError("no participant answered every question the targets name with a value they give a share")
    codes, cells = _cell_codes(answers, margins)
    members = np.flatnonzero(raking.weights > 0)
    targets = [np.array([m.shares[cell] for cell in cs]) for m, cs in zip(margins, cells, strict=True)]

    def weigh(drawn: IntArray) -> FloatArray:
        return _rake_codes(codes[:, drawn], targets, cap, tol, max_iter)[0]

    point = fit_ratings(votes.counts(raking.weights), bootstrap=0)
    rng = np.random.default_rng(seed)
    samples = _resampled_ratings(votes, [members], weigh, rounds, rng)[:, 0, :]
    return WeightedBoard(
        weighted=_with_intervals(point, votes.names, samples, level, rounds, seed), unweighted=unweighted, raking=raking
    )


@dataclass(frozen=True)
class Share:
    """A share of votes over participants: sum of hits / sum of votes, with its participant-bootstrap interval
    (None where there are no votes)."""

    hits: int
    votes: int
    participants: int
    share: float | None
    ci_low: float | None
    ci_high: float | None


def participant_share(
    hits: Sequence[float] | FloatArray,
    votes: Sequence[float] | FloatArray,
    *,
    rounds: int = DEFAULT_ROUNDS,
    seed: int | None = 0,
    level: float = DEFAULT_LEVEL,
) -> Share:
    """The share of `votes` that are hits, pooled over participants (one entry of each per participant), with a
    percentile interval from the participant bootstrap: each round redraws the participants with replacement and
    takes the ratio of their sums (rounds whose participants have no votes are left out), widened to contain the
    point, as the boards' intervals are. Participants with no votes count for nothing and are not counted."""
    _check(rounds=rounds, level=level)
    h = np.asarray(hits, dtype=np.float64)
    v = np.asarray(votes, dtype=np.float64)
    if h.shape != v.shape or h.ndim != 1:
        raise GroupsError("hits and votes must be one number per participant, of one length")
    if np.any(h < 0) or np.any(h > v):
        raise GroupsError("each participant's hits must be between 0 and their votes")
    voted = v > 0
    h, v = h[voted], v[voted]
    total = float(v.sum())
    if total == 0:
        return Share(0, 0, 0, None, None, None)
    point = float(h.sum()) / total
    low = high = point
    if rounds:
        rng = np.random.default_rng(seed)
        n = len(v)
        ratios = []
        per_chunk = _rows_per_chunk(n)
        for start in range(0, rounds, per_chunk):
            drawn = rng.integers(0, n, (min(per_chunk, rounds - start), n))
            ratios.append(h[drawn].sum(axis=1) / v[drawn].sum(axis=1))
        lo, hi = _percentiles(np.concatenate(ratios), level)
        low, high = min(lo, point), max(hi, point)
    return Share(int(round(h.sum())), int(round(total)), len(v), point, low, high)


def effective_size(weights: FloatArray) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2 (0 for no weight)."""
    w = np.asarray(weights, dtype=np.float64)
    square = float((w**2).sum())
    return float(w.sum()) ** 2 / square if square else 0.0


def _check(*, rounds: int, level: float) -> None:
    if rounds < 0:
        raise GroupsError("bootstrap rounds must be >= 0")
    if not 0 < level < 1:
        raise GroupsError("level must be between 0 and 1")


def _multiplicity(size: int, members: IntArray) -> FloatArray:
    return np.bincount(members, minlength=size).astype(np.float64)


def _resampled_ratings(
    votes: ParticipantVotes,
    strata: list[IntArray],
    weigh: Callable[[IntArray], FloatArray] | None,
    rounds: int,
    rng: np.random.Generator,
) -> FloatArray:
    """Ratings (rounds x strata x generators) refitted on participants redrawn in each stratum; NaN where unrated.

    The draws come round by round, stratum by stratum; the fits in batches (arena.batched_fits)."""
    k, count = len(votes.names), len(strata)
    out = np.full((rounds, count, k), np.nan)
    per_chunk = _rows_per_chunk(count * votes.size)
    for start in range(0, rounds, per_chunk):
        chunk = min(per_chunk, rounds - start)
        rows = np.zeros((chunk * count, votes.size))
        for r in range(chunk):
            for s, members in enumerate(strata):
                if len(members) == 0:
                    continue
                drawn = members[rng.integers(0, len(members), len(members))]
                weights = None if weigh is None else weigh(drawn)
                rows[r * count + s] = np.bincount(drawn, weights=weights, minlength=votes.size)
        fits = fit_many(votes.matrices_many(rows), votes.names)
        out[start : start + chunk] = fits.ratings().reshape(chunk, count, k)
    return out


# Rows of participant multiplicities built at once (rows x participants floats): about 32 MB.
_CHUNK_CELLS = 4_000_000


def _rows_per_chunk(cells_per_item: int) -> int:
    return max(1, _CHUNK_CELLS // max(1, cells_per_item))


def _percentiles(samples: FloatArray, level: float) -> tuple[float, float]:
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return math.inf, -math.inf  # widened to the point by the caller
    tail = 100 * (1 - level) / 2
    return float(np.percentile(finite, tail)), float(np.percentile(finite, 100 - tail))


def _with_intervals(
    point: Leaderboard, columns: Sequence[str], samples: FloatArray, level: float, rounds: int, seed: int | None
) -> Leaderboard:
    """`point` (a fit without intervals) with percentile intervals from `samples` and ranks from them.

    `samples` is rounds x generators, one column per name in `columns`.
    """
    by_name = {s.name: s for s in point.standings}
    low, high = [], []
    for column, name in enumerate(columns):
        standing = by_name[name]
        if not standing.rated:
            low.append(-math.inf)
            high.append(math.inf)
            continue
        lo, hi = _percentiles(samples[:, column], level) if rounds else (math.inf, -math.inf)
        low.append(min(lo, standing.rating))
        high.append(max(hi, standing.rating))
    ranks = rank_from_intervals(low, high, [by_name[name].part for name in columns])
    standings = [
        replace(by_name[name], ci_low=float(low[i]), ci_high=float(high[i]), rank=int(ranks[i]))
        for i, name in enumerate(columns)
    ]
    standings.sort(key=lambda s: (s.part, s.rank, -s.rating, s.name))
    return replace(
        point,
        standings=tuple(standings),
        intervals=INTERVALS_PARTICIPANTS,
        bootstrap_rounds=rounds,
        seed=seed,
        level=level,
    )


def _cell_codes(
    answers: Sequence[Mapping[str, str] | None], margins: Sequence[Margin]
) -> tuple[IntArray, list[list[tuple[str, ...]]]]:
    """Per margin and participant the index of their cell among the margin's cells (-1: none that has a share)."""
    cells = [[cell for cell, share in m.shares.items() if share > 0] for m in margins]
    codes = np.full((len(margins), len(answers)), -1, dtype=np.int64)
    for j, (m, cs) in enumerate(zip(margins, cells, strict=True)):
        index = {cell: i for i, cell in enumerate(cs)}
        for p, given in enumerate(answers):
            if given is None:
                continue
            cell = tuple(given.get(q) for q in m.questions)
            if all(v is not None for v in cell):
                codes[j, p] = index.get(cell, -1)  # type: ignore[arg-type]
    return codes, cells


def _rake_codes(
    codes: IntArray, targets: list[FloatArray], cap: float, tol: float, max_iter: int
) -> tuple[FloatArray, int, bool]:
    """IPF with trimming on cell codes (margins x participants, all >= 0): weights (mean 1), iterations, converged."""
    n = codes.shape[1]
    w = np.ones(n)
    present = []
    for c, target in zip(codes, targets, strict=True):
        seen = np.bincount(c, minlength=len(target)) > 0
        goal = np.where(seen, target, 0.0)
        present.append(goal / goal.sum())
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 (the count is returned)
        before = w.copy()
        for c, goal in zip(codes, present, strict=True):
            current = np.bincount(c, weights=w, minlength=len(goal)) / w.sum()
            factor = np.divide(goal, current, out=np.zeros_like(goal), where=current > 0)
            w = w * factor[c]
        w = _trim(w * (n / w.sum()), cap)
        if np.max(np.abs(w - before)) <= tol:
            break
    met = all(
        np.max(np.abs(np.bincount(c, weights=w, minlength=len(goal)) / w.sum() - goal)) <= max(tol, 1e-9) * 10
        for c, goal in zip(codes, present, strict=True)
    )
    return w, iterations, bool(met)


def _trim(w: FloatArray, cap: float) -> FloatArray:
    """Weights (mean 1) with none above `cap` times the mean, the excess spread proportionally over the others.

    With C the capped participants and U the others' total, the capped value y solves y = cap (U + |C| y) / n,
    so y = cap U / (n - cap |C|); a participant pushed over y by the rescaling joins C and it is solved again.
    """
    n = len(w)
    if n == 0 or w.max() <= cap * (1 + 1e-12):
        return w
    order = np.argsort(-w)
    capped = 0
    total = float(w.sum())
    while capped < n:
        capped += 1
        free = total - float(w[order[:capped]].sum())
        if n - cap * capped <= 0 or free <= 0:
            return np.ones(n)  # the cap cannot hold with so few: equal weights are the only weights under it
        y = cap * free / (n - cap * capped)
        if capped == n or w[order[capped]] <= y:
            out = w.copy()
            out[order[:capped]] = y
            return out * (n / out.sum())
    return np.ones(n)
