"""Pure quality scoring of crowd votes: gold, repeats, position bias, speed, patterns, agreement, flags. No Django.

The Django side turns rows into the frozen input records below and calls `assess_participants`
(one `QualityReport` per participant, with `as_row()` for the CSV), `campaign_position_bias` and
`agreement_by_criterion`. Every choice is the side *as displayed*: "left", "right", "tie" or
"both_bad".

Conventions, so the numbers can be read without the code:

- **Gold**: an answer is correct only when the choice is the known correct side. A "tie" or
  "both_bad" on a gold comparison counts as wrong, because gold comparisons are built so that one
  side is plainly broken. Accuracy is per answer (one per criterion); a failed *check* is a gold
  comparison with at least one wrong answer, so a participant who misses one gold comparison on
  three criteria has failed one check, not three (Prolific asks for two failed checks).
- **Side-swapped repeats**: consistent when the repeat is the mirror of the original
  (left <-> right, tie -> tie, both_bad -> both_bad).
- **Position bias**: the share of "left" among decisive (left/right) votes, with a two-sided exact
  binomial test against 0.5. Per participant it is tested per criterion, because one comparison's
  answers to several criteria are not independent: pooling them would count one look at the
  screen several times and overstate significance. The participant's signal is the criterion with
  the smallest p-value, Bonferroni-adjusted over the criteria tested.
- **Speed**: counted per *submission* (one participant's answers to one comparison, sent together
  with one dwell time), not per vote row, so that campaigns with more criteria do not look faster
  or burstier. A submission is fast when its dwell time is strictly below the floor.
- **Straight-lining**: the longest run of identical choices within one criterion in time order,
  and the share of the most common choice over all votes.
- **Agreement**: Krippendorff's alpha for nominal data from the coincidence matrix. With fewer than
  two pairable values alpha is None with a reason. When every pairable value is the same, observed
  and expected disagreement are both zero: alpha is 0/0 and reported as None ("undefined"), not
  1.0, since data without variation say nothing about reliability (Krippendorff 2011); the
  `observed_agreement` of 1.0 is still given. The `krippendorff` package returns NaN or raises in
  these cases.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, TypeAlias

import numpy as np
from numpy.typing import NDArray
from scipy.stats import binomtest

from core.choices import CHOICES, MIRROR, SIDES, Choice, Side

CsvValue: TypeAlias = str | int | float | bool | None


DEFAULT_DWELL_FLOOR_MS: Final = 1500
DEFAULT_BURST_WINDOW_S: Final = 10.0


def _check_choice(choice: str, what: str) -> None:
    # Literal types only bind callers that mypy checks; rows from the database arrive as plain str.
    if choice not in MIRROR:
        raise ValueError(f"{what} {choice!r} is not one of {', '.join(CHOICES)}")


# ---------------------------------------------------------------------------------------------
# Inputs: one frozen record per row the Django side reads.


@dataclass(frozen=True, slots=True)
class ScoredVote:
    """One vote: a participant's answer to one criterion of one comparison."""

    participant: Hashable
    comparison: Hashable
    criterion: str
    choice: Choice
    dwell_ms: int
    cast_at: datetime

    def __post_init__(self) -> None:
        _check_choice(self.choice, "choice")
        if self.dwell_ms < 0:
            raise ValueError(f"dwell_ms must be non-negative, got {self.dwell_ms}")


@dataclass(frozen=True, slots=True)
class GoldAnswer:
    """One answer to one criterion of a gold comparison, whose correct side (as displayed) is known."""

    participant: Hashable
    comparison: Hashable
    criterion: str
    choice: Choice
    correct_side: Side

    def __post_init__(self) -> None:
        _check_choice(self.choice, "choice")
        if self.correct_side not in SIDES:
            raise ValueError(f"correct_side {self.correct_side!r} must be 'left' or 'right'")

    @property
    def is_correct(self) -> bool:
        return self.choice == self.correct_side


@dataclass(frozen=True, slots=True)
class RepeatPair:
    """A participant's answers to one criterion of a comparison and of its side-swapped repeat."""

    participant: Hashable
    criterion: str
    original: Choice
    repeat: Choice

    def __post_init__(self) -> None:
        _check_choice(self.original, "original")
        _check_choice(self.repeat, "repeat")

    @property
    def is_consistent(self) -> bool:
        return self.repeat == MIRROR[self.original]


@dataclass(frozen=True, slots=True)
class UnitVote:
    """One coder's value for one unit (a pair of populations) and criterion, for agreement.

    `choice` is as displayed; `swapped` says the unit's second population was shown on the left,
    so that `canonical_choice` ("left" = the unit's first population) is comparable across coders.
    """

    unit: Hashable
    criterion: str
    coder: Hashable
    choice: Choice
    swapped: bool = False

    def __post_init__(self) -> None:
        _check_choice(self.choice, "choice")

    @property
    def canonical_choice(self) -> Choice:
        return MIRROR[self.choice] if self.swapped else self.choice


# ---------------------------------------------------------------------------------------------
# Gold accuracy and repeat consistency.


@dataclass(frozen=True, slots=True)
class GoldSummary:
    """Gold results of one participant: answers (per criterion) and checks (per gold comparison)."""

    n_answers: int = 0
    n_correct: int = 0
    n_checks: int = 0
    n_failed_checks: int = 0

    @property
    def n_wrong(self) -> int:
        return self.n_answers - self.n_correct

    @property
    def accuracy(self) -> float | None:
        return self.n_correct / self.n_answers if self.n_answers else None


def summarize_gold(answers: Iterable[GoldAnswer]) -> GoldSummary:
    """Counts and accuracy over one participant's gold answers; ties and both_bad count as wrong."""
    n_answers = n_correct = 0
    check_passed: dict[Hashable, bool] = {}
    for answer in answers:
        n_answers += 1
        n_correct += answer.is_correct
        check_passed[answer.comparison] = check_passed.get(answer.comparison, True) and answer.is_correct
    failed = sum(not passed for passed in check_passed.values())
    return GoldSummary(n_answers=n_answers, n_correct=n_correct, n_checks=len(check_passed), n_failed_checks=failed)


@dataclass(frozen=True, slots=True)
class RepeatSummary:
    """Side-swapped repeat consistency of one participant, one pair per criterion answered twice."""

    n_pairs: int = 0
    n_consistent: int = 0

    @property
    def rate(self) -> float | None:
        return self.n_consistent / self.n_pairs if self.n_pairs else None


def summarize_repeats(pairs: Iterable[RepeatPair]) -> RepeatSummary:
    """Share of repeats whose answer is the mirror of the original one."""
    n_pairs = n_consistent = 0
    for pair in pairs:
        n_pairs += 1
        n_consistent += pair.is_consistent
    return RepeatSummary(n_pairs=n_pairs, n_consistent=n_consistent)


# ---------------------------------------------------------------------------------------------
# Position bias.


@dataclass(frozen=True, slots=True)
class PositionBias:
    """Left/right balance of decisive votes, with a two-sided exact binomial test against 0.5."""

    criterion: str | None
    n_left: int
    n_right: int
    p_value: float | None  # None without decisive votes: nothing to test

    @property
    def n_decisive(self) -> int:
        return self.n_left + self.n_right

    @property
    def left_share(self) -> float | None:
        return self.n_left / self.n_decisive if self.n_decisive else None


def position_bias(choices: Iterable[Choice], *, criterion: str | None = None) -> PositionBias:
    """Share of "left" among left/right choices and its binomial p-value; ties and both_bad are left out."""
    counts = Counter(choices)
    n_left, n_right = counts["left"], counts["right"]
    n = n_left + n_right
    p_value = float(binomtest(n_left, n, 0.5, alternative="two-sided").pvalue) if n else None
    return PositionBias(criterion=criterion, n_left=n_left, n_right=n_right, p_value=p_value)


def _bias_by_criterion(votes: Iterable[ScoredVote]) -> tuple[PositionBias, ...]:
    by_criterion: dict[str, list[Choice]] = defaultdict(list)
    for vote in votes:
        by_criterion[vote.criterion].append(vote.choice)
    return tuple(position_bias(by_criterion[c], criterion=c) for c in sorted(by_criterion))


def campaign_position_bias(votes: Iterable[ScoredVote]) -> tuple[PositionBias, ...]:
    """Campaign-level left/right balance per criterion, sorted by criterion.

    With displayed sides randomised this should sit near 0.5. The p-value treats every vote as
    independent; votes from one participant are not, so read it as a screening number.
    """
    return _bias_by_criterion(votes)


@dataclass(frozen=True, slots=True)
class PositionSignals:
    """One participant's position bias per criterion (sorted by criterion)."""

    by_criterion: tuple[PositionBias, ...] = ()

    @property
    def n_tests(self) -> int:
        """Criteria with at least one decisive vote: the Bonferroni factor."""
        return sum(bias.p_value is not None for bias in self.by_criterion)

    def adjusted_p(self, bias: PositionBias) -> float | None:
        """Bonferroni over the criteria tested, capped at 1."""
        if bias.p_value is None:
            return None
        return min(1.0, bias.p_value * self.n_tests)

    @property
    def worst(self) -> PositionBias | None:
        """The criterion with the smallest p-value (the larger sample on a tie), or None if nothing was tested."""
        tested = [bias for bias in self.by_criterion if bias.p_value is not None]
        if not tested:
            return None
        return min(tested, key=lambda bias: (bias.p_value or 0.0, -bias.n_decisive))


def position_signals(votes: Iterable[ScoredVote]) -> PositionSignals:
    """Position bias of one participant's votes, tested per criterion."""
    return PositionSignals(by_criterion=_bias_by_criterion(votes))


# ---------------------------------------------------------------------------------------------
# Speed, bursts and straight-lining.


@dataclass(frozen=True, slots=True)
class SpeedSignals:
    """Dwell times and bursts over one participant's submissions (one per comparison answered)."""

    n_submissions: int = 0
    n_fast: int = 0
    dwell_floor_ms: int = DEFAULT_DWELL_FLOOR_MS
    median_dwell_ms: float | None = None
    burst_max: int = 0  # most submissions within any span of burst_window_s seconds
    burst_window_s: float = DEFAULT_BURST_WINDOW_S

    @property
    def fast_share(self) -> float | None:
        return self.n_fast / self.n_submissions if self.n_submissions else None


def max_in_window(times_s: Iterable[float], window_s: float) -> int:
    """Most timestamps (seconds) that fit in one closed span of `window_s` seconds."""
    ordered = sorted(times_s)
    best = start = 0
    for end, t in enumerate(ordered):
        while t - ordered[start] > window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


def speed_signals(
    votes: Iterable[ScoredVote],
    *,
    dwell_floor_ms: int = DEFAULT_DWELL_FLOOR_MS,
    burst_window_s: float = DEFAULT_BURST_WINDOW_S,
) -> SpeedSignals:
    """Share of submissions faster than `dwell_floor_ms`, median dwell, and the largest burst."""
    if dwell_floor_ms < 0 or burst_window_s < 0:
        raise ValueError("dwell_floor_ms and burst_window_s must be non-negative")
    dwell: dict[Hashable, int] = {}
    first_at: dict[Hashable, float] = {}
    for vote in votes:
        # A submission's rows share one dwell time; if they ever differ, the longest wins so that a
        # participant is never called fast because of one row.
        dwell[vote.comparison] = max(dwell.get(vote.comparison, 0), vote.dwell_ms)
        at = vote.cast_at.timestamp()
        first_at[vote.comparison] = min(first_at.get(vote.comparison, at), at)
    dwells = list(dwell.values())
    return SpeedSignals(
        n_submissions=len(dwells),
        n_fast=sum(d < dwell_floor_ms for d in dwells),
        dwell_floor_ms=dwell_floor_ms,
        median_dwell_ms=float(statistics.median(dwells)) if dwells else None,
        burst_max=max_in_window(first_at.values(), burst_window_s),
        burst_window_s=burst_window_s,
    )


@dataclass(frozen=True, slots=True)
class PatternSignals:
    """Straight-lining: identical choices in a row (within a criterion) and the most common choice overall."""

    n_votes: int = 0
    longest_run: int = 0
    longest_run_choice: Choice | None = None
    longest_run_criterion: str | None = None
    top_choice: Choice | None = None
    top_choice_count: int = 0

    @property
    def top_choice_share(self) -> float | None:
        return self.top_choice_count / self.n_votes if self.n_votes else None


def longest_run(choices: Sequence[Choice]) -> tuple[int, Choice | None]:
    """Length and value of the longest run of identical consecutive choices (the first one on a tie)."""
    best, best_choice = 0, None
    run = 0
    for i, choice in enumerate(choices):
        run = run + 1 if i and choice == choices[i - 1] else 1
        if run > best:
            best, best_choice = run, choice
    return best, best_choice


def pattern_signals(votes: Iterable[ScoredVote]) -> PatternSignals:
    """Straight-lining signals of one participant's votes, runs taken per criterion in `cast_at` order."""
    # Runs are per criterion: answering "left" to every criterion of one comparison is an opinion,
    # not straight-lining. The sort is stable, so equal timestamps keep the input order.
    ordered = sorted(votes, key=lambda vote: vote.cast_at)
    by_criterion: dict[str, list[Choice]] = defaultdict(list)
    for vote in ordered:
        by_criterion[vote.criterion].append(vote.choice)
    run, run_choice, run_criterion = 0, None, None
    for criterion in sorted(by_criterion):
        length, choice = longest_run(by_criterion[criterion])
        if length > run:
            run, run_choice, run_criterion = length, choice, criterion
    counts = Counter(vote.choice for vote in ordered)
    top, top_count = counts.most_common(1)[0] if counts else (None, 0)
    return PatternSignals(
        n_votes=len(ordered),
        longest_run=run,
        longest_run_choice=run_choice,
        longest_run_criterion=run_criterion,
        top_choice=top,
        top_choice_count=top_count,
    )


# ---------------------------------------------------------------------------------------------
# Agreement: Krippendorff's alpha, nominal.


@dataclass(frozen=True, slots=True)
class Agreement:
    """Krippendorff's alpha (nominal) and what it was computed from; alpha is None with a reason when undefined."""

    alpha: float | None
    n_units: int  # units with at least two values (pairable)
    n_values: int  # values in those units
    observed_agreement: float | None  # share of agreeing pairable pairs, i.e. 1 - observed disagreement
    reason: str | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Coincidences:
    """The coincidence matrix of nominal values: `matrix[c, k]` = sum over units of c-k pairs / (m_u - 1)."""

    values: tuple[Hashable, ...]
    matrix: NDArray[np.float64] = field(repr=False)
    totals: tuple[int, ...]  # n_c: pairable values of each category

    @property
    def n(self) -> int:
        return sum(self.totals)


def coincidence_matrix(units: Iterable[Iterable[Hashable]]) -> tuple[Coincidences, int]:
    """Coincidences over the units with two or more values, and how many such units there were.

    Each unit lists the values its coders gave (missing values simply absent). Categories appear in
    the order first seen in a pairable unit.
    """
    index: dict[Hashable, int] = {}
    unit_counts: list[Counter[int]] = []
    for unit in units:
        values = list(unit)
        if len(values) < 2:
            continue  # unpairable: a lone value has nothing to agree or disagree with
        unit_counts.append(Counter(index.setdefault(v, len(index)) for v in values))
    k = len(index)
    matrix = np.zeros((k, k), dtype=np.float64)
    totals = np.zeros(k, dtype=np.int64)
    for counts in unit_counts:
        n_u = np.zeros(k, dtype=np.float64)
        for c, count in counts.items():
            n_u[c] = count
        m_u = n_u.sum()
        matrix += (np.outer(n_u, n_u) - np.diag(n_u)) / (m_u - 1)
        totals += n_u.astype(np.int64)
    matrix.setflags(write=False)
    return Coincidences(values=tuple(index), matrix=matrix, totals=tuple(int(t) for t in totals)), len(unit_counts)


def krippendorff_alpha_nominal(units: Iterable[Iterable[Hashable]]) -> Agreement:
    """Krippendorff's alpha for nominal data: 1 - (n - 1) * sum_{c!=k} o_ck / sum_{c!=k} n_c n_k.

    `units` holds, per unit, the values its coders gave; units with fewer than two values are
    unpairable and ignored, as in Krippendorff's definition.
    """
    coincidences, n_units = coincidence_matrix(units)
    n = coincidences.n
    if n < 2:
        return Agreement(
            alpha=None,
            n_units=n_units,
            n_values=n,
            observed_agreement=None,
            reason="fewer than 2 pairable values: no unit was coded by two or more coders",
        )
    observed_disagreement = float(coincidences.matrix.sum() - np.trace(coincidences.matrix))
    # Integer arithmetic keeps "no variation" an exact zero rather than a rounding accident.
    expected_pairs = n * n - sum(t * t for t in coincidences.totals)
    observed_agreement = 1.0 - observed_disagreement / n
    if expected_pairs == 0:
        return Agreement(
            alpha=None,
            n_units=n_units,
            n_values=n,
            observed_agreement=observed_agreement,
            reason=f"all {n} pairable values are {coincidences.values[0]!r}: no variation, alpha is 0/0 (undefined)",
        )
    alpha = 1.0 - (n - 1) * observed_disagreement / expected_pairs
    return Agreement(alpha=alpha, n_units=n_units, n_values=n, observed_agreement=observed_agreement)


def agreement_by_criterion(votes: Iterable[UnitVote]) -> dict[str, Agreement]:
    """Krippendorff's alpha (nominal) per criterion over units, on canonical (side-corrected) choices.

    A coder counts once per unit: later values from the same coder (such as a side-swapped repeat)
    are ignored, so pass votes in time order. Gold comparisons have a known answer and are best
    left out by the caller.
    """
    units: dict[str, dict[Hashable, dict[Hashable, Choice]]] = defaultdict(lambda: defaultdict(dict))
    for vote in votes:
        units[vote.criterion][vote.unit].setdefault(vote.coder, vote.canonical_choice)
    return {
        criterion: krippendorff_alpha_nominal(list(coded.values()) for coded in units[criterion].values())
        for criterion in sorted(units)
    }


# ---------------------------------------------------------------------------------------------
# Flagging.


@dataclass(frozen=True, slots=True)
class FlagRule:
    """Thresholds for flagging a participant; a threshold of None switches that check off.

    The default flags a participant on any of: 2 or more failed gold checks; gold accuracy below
    0.6 with at least 5 gold answers; repeat consistency below 0.5 with at least 4 repeats;
    position bias with Bonferroni-adjusted p below 0.001 on a criterion with at least 20 decisive
    votes; more than half of at least 10 submissions under 1500 ms. Bursts and straight-lining
    are reported but do not flag unless their thresholds are set.
    """

    failed_gold_checks: int | None = 2
    min_gold_accuracy: float | None = 0.6
    min_gold_answers: int = 5
    min_repeat_consistency: float | None = 0.5
    min_repeat_pairs: int = 4
    max_position_p: float | None = 0.001
    min_decisive_votes: int = 20
    max_fast_share: float | None = 0.5
    min_submissions_for_speed: int = 10
    dwell_floor_ms: int = DEFAULT_DWELL_FLOOR_MS
    burst_window_s: float = DEFAULT_BURST_WINDOW_S
    max_burst: int | None = None  # most submissions allowed within burst_window_s
    max_longest_run: int | None = None  # longest run of one choice allowed within a criterion
    max_top_choice_share: float | None = None
    min_votes_for_pattern: int = 20

    def __post_init__(self) -> None:
        for name in ("min_gold_accuracy", "min_repeat_consistency", "max_position_p", "max_fast_share"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.max_top_choice_share is not None and not 0.0 <= self.max_top_choice_share <= 1.0:
            raise ValueError(f"max_top_choice_share must be between 0 and 1, got {self.max_top_choice_share}")
        counts = ("min_gold_answers", "min_repeat_pairs", "min_decisive_votes", "min_submissions_for_speed")
        for name in (*counts, "min_votes_for_pattern", "dwell_floor_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative")
        if self.burst_window_s < 0:
            raise ValueError("burst_window_s must be non-negative")
        for name in ("failed_gold_checks", "max_burst", "max_longest_run"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 or None")


DEFAULT_FLAG_RULE: Final = FlagRule()


@dataclass(frozen=True, slots=True)
class ParticipantSignals:
    """Every quality signal of one participant."""

    participant: Hashable
    gold: GoldSummary = GoldSummary()
    repeats: RepeatSummary = RepeatSummary()
    position: PositionSignals = PositionSignals()
    speed: SpeedSignals = SpeedSignals()
    pattern: PatternSignals = PatternSignals()


def compute_signals(
    participant: Hashable,
    *,
    votes: Sequence[ScoredVote] = (),
    gold: Iterable[GoldAnswer] = (),
    repeats: Iterable[RepeatPair] = (),
    dwell_floor_ms: int = DEFAULT_DWELL_FLOOR_MS,
    burst_window_s: float = DEFAULT_BURST_WINDOW_S,
) -> ParticipantSignals:
    """All signals from one participant's votes, gold answers and repeat pairs."""
    return ParticipantSignals(
        participant=participant,
        gold=summarize_gold(gold),
        repeats=summarize_repeats(repeats),
        position=position_signals(votes),
        speed=speed_signals(votes, dwell_floor_ms=dwell_floor_ms, burst_window_s=burst_window_s),
        pattern=pattern_signals(votes),
    )


def _share(value: float) -> str:
    return f"{value:.2f}"


def flag_participant(signals: ParticipantSignals, rule: FlagRule = DEFAULT_FLAG_RULE) -> tuple[bool, list[str]]:
    """Whether the participant fails the rule, and one human-readable reason per failed check."""
    reasons: list[str] = []
    gold = signals.gold
    if rule.failed_gold_checks is not None and gold.n_failed_checks >= rule.failed_gold_checks:
        reasons.append(
            f"failed {gold.n_failed_checks} of {gold.n_checks} gold checks (flag at {rule.failed_gold_checks})"
        )
    if (
        rule.min_gold_accuracy is not None
        and gold.accuracy is not None
        and gold.n_answers >= rule.min_gold_answers
        and gold.accuracy < rule.min_gold_accuracy
    ):
        reasons.append(
            f"gold accuracy {_share(gold.accuracy)} ({gold.n_correct} of {gold.n_answers} answers correct)"
            f" below {rule.min_gold_accuracy}"
        )
    repeats = signals.repeats
    if (
        rule.min_repeat_consistency is not None
        and repeats.rate is not None
        and repeats.n_pairs >= rule.min_repeat_pairs
        and repeats.rate < rule.min_repeat_consistency
    ):
        reasons.append(
            f"repeat consistency {_share(repeats.rate)} ({repeats.n_consistent} of {repeats.n_pairs}"
            f" side-swapped repeats consistent) below {rule.min_repeat_consistency}"
        )
    if rule.max_position_p is not None:
        position = signals.position
        for bias in position.by_criterion:
            adjusted = position.adjusted_p(bias)
            if adjusted is None or bias.left_share is None or bias.n_decisive < rule.min_decisive_votes:
                continue
            if adjusted < rule.max_position_p:
                side, count = ("left", bias.n_left) if bias.n_left >= bias.n_right else ("right", bias.n_right)
                reasons.append(
                    f"position bias on {bias.criterion!r}: {count} of {bias.n_decisive} decisive votes {side}"
                    f" (left share {_share(bias.left_share)}), p = {adjusted:.2g}"
                    f" (Bonferroni over {position.n_tests} {'criterion' if position.n_tests == 1 else 'criteria'})"
                    f" below {rule.max_position_p}"
                )
    speed = signals.speed
    if (
        rule.max_fast_share is not None
        and speed.fast_share is not None
        and speed.n_submissions >= rule.min_submissions_for_speed
        and speed.fast_share > rule.max_fast_share
    ):
        reasons.append(
            f"{speed.n_fast} of {speed.n_submissions} submissions ({_share(speed.fast_share)}) faster than"
            f" {speed.dwell_floor_ms} ms, above {rule.max_fast_share}"
        )
    if rule.max_burst is not None and speed.burst_max > rule.max_burst:
        reasons.append(
            f"burst of {speed.burst_max} submissions within {speed.burst_window_s:g} s, above {rule.max_burst}"
        )
    pattern = signals.pattern
    enough_for_pattern = pattern.n_votes >= rule.min_votes_for_pattern
    if rule.max_longest_run is not None and enough_for_pattern and pattern.longest_run > rule.max_longest_run:
        reasons.append(
            f"straight-lining: {pattern.longest_run} {pattern.longest_run_choice!r} votes in a row on"
            f" {pattern.longest_run_criterion!r}, above {rule.max_longest_run}"
        )
    if (
        rule.max_top_choice_share is not None
        and enough_for_pattern
        and pattern.top_choice_share is not None
        and pattern.top_choice_share > rule.max_top_choice_share
    ):
        reasons.append(
            f"straight-lining: {pattern.top_choice_count} of {pattern.n_votes} votes"
            f" ({_share(pattern.top_choice_share)}) are {pattern.top_choice!r}, above {rule.max_top_choice_share}"
        )
    return bool(reasons), reasons


# ---------------------------------------------------------------------------------------------
# Reports.

QUALITY_CSV_FIELDS: Final[tuple[str, ...]] = (
    "participant",
    "flagged",
    "reasons",
    "gold_answers",
    "gold_correct",
    "gold_accuracy",
    "gold_checks",
    "gold_failed_checks",
    "repeat_pairs",
    "repeat_consistent",
    "repeat_consistency",
    "position_criterion",
    "position_left",
    "position_right",
    "position_left_share",
    "position_p_value",
    "position_p_adjusted",
    "submissions",
    "fast_submissions",
    "fast_share",
    "dwell_floor_ms",
    "median_dwell_ms",
    "burst_max",
    "burst_window_s",
    "votes",
    "longest_run",
    "longest_run_choice",
    "longest_run_criterion",
    "top_choice",
    "top_choice_share",
)

# The quality page's column headings, one per CSV column, in words a reader of the page understands.
QUALITY_COLUMN_LABELS: Final[dict[str, str]] = {
    "participant": "Participant",
    "flagged": "Flagged",
    "reasons": "Reasons",
    "gold_answers": "Gold answers",
    "gold_correct": "Gold correct",
    "gold_accuracy": "Gold accuracy",
    "gold_checks": "Gold checks",
    "gold_failed_checks": "Gold checks failed",
    "repeat_pairs": "Repeats",
    "repeat_consistent": "Repeats consistent",
    "repeat_consistency": "Repeat consistency",
    "position_criterion": "Most side-biased criterion",
    "position_left": "Left picks",
    "position_right": "Right picks",
    "position_left_share": "Left share",
    "position_p_value": "Side bias p",
    "position_p_adjusted": "Side bias p (adjusted)",
    "submissions": "Submissions",
    "fast_submissions": "Fast submissions",
    "fast_share": "Fast share",
    "dwell_floor_ms": "Fast below (ms)",
    "median_dwell_ms": "Median time (ms)",
    "burst_max": "Most votes in a burst",
    "burst_window_s": "Burst window (s)",
    "votes": "Votes",
    "longest_run": "Longest run of one answer",
    "longest_run_choice": "Its answer",
    "longest_run_criterion": "Its criterion",
    "top_choice": "Commonest answer",
    "top_choice_share": "Commonest answer share",
}


@dataclass(frozen=True, slots=True)
class QualityReport:
    """One participant's signals and the verdict of a `FlagRule`."""

    signals: ParticipantSignals
    flagged: bool
    reasons: tuple[str, ...]

    @property
    def participant(self) -> Hashable:
        return self.signals.participant

    def as_row(self) -> dict[str, CsvValue]:
        """A flat row keyed by `QUALITY_CSV_FIELDS`; None for a signal without data (an empty CSV cell).

        Position columns describe the participant's most biased criterion.
        """
        s = self.signals
        worst = s.position.worst
        row: dict[str, CsvValue] = {
            "participant": str(s.participant),
            "flagged": self.flagged,
            "reasons": "; ".join(self.reasons),
            "gold_answers": s.gold.n_answers,
            "gold_correct": s.gold.n_correct,
            "gold_accuracy": s.gold.accuracy,
            "gold_checks": s.gold.n_checks,
            "gold_failed_checks": s.gold.n_failed_checks,
            "repeat_pairs": s.repeats.n_pairs,
            "repeat_consistent": s.repeats.n_consistent,
            "repeat_consistency": s.repeats.rate,
            "position_criterion": worst.criterion if worst else None,
            "position_left": worst.n_left if worst else None,
            "position_right": worst.n_right if worst else None,
            "position_left_share": worst.left_share if worst else None,
            "position_p_value": worst.p_value if worst else None,
            "position_p_adjusted": s.position.adjusted_p(worst) if worst else None,
            "submissions": s.speed.n_submissions,
            "fast_submissions": s.speed.n_fast,
            "fast_share": s.speed.fast_share,
            "dwell_floor_ms": s.speed.dwell_floor_ms,
            "median_dwell_ms": s.speed.median_dwell_ms,
            "burst_max": s.speed.burst_max,
            "burst_window_s": s.speed.burst_window_s,
            "votes": s.pattern.n_votes,
            "longest_run": s.pattern.longest_run,
            "longest_run_choice": s.pattern.longest_run_choice,
            "longest_run_criterion": s.pattern.longest_run_criterion,
            "top_choice": s.pattern.top_choice,
            "top_choice_share": s.pattern.top_choice_share,
        }
        return row


def assess_participants(
    *,
    votes: Iterable[ScoredVote] = (),
    gold: Iterable[GoldAnswer] = (),
    repeats: Iterable[RepeatPair] = (),
    rule: FlagRule = DEFAULT_FLAG_RULE,
) -> list[QualityReport]:
    """One report per participant seen in any input, in order of first appearance (votes, then gold, then repeats).

    The rule's dwell floor and burst window are used to compute the speed signals.
    """
    order: dict[Hashable, None] = {}
    votes_of: dict[Hashable, list[ScoredVote]] = defaultdict(list)
    gold_of: dict[Hashable, list[GoldAnswer]] = defaultdict(list)
    repeats_of: dict[Hashable, list[RepeatPair]] = defaultdict(list)
    for vote in votes:
        order.setdefault(vote.participant)
        votes_of[vote.participant].append(vote)
    for answer in gold:
        order.setdefault(answer.participant)
        gold_of[answer.participant].append(answer)
    for pair in repeats:
        order.setdefault(pair.participant)
        repeats_of[pair.participant].append(pair)
    reports = []
    for participant in order:
        signals = compute_signals(
            participant,
            votes=votes_of[participant],
            gold=gold_of[participant],
            repeats=repeats_of[participant],
            dwell_floor_ms=rule.dwell_floor_ms,
            burst_window_s=rule.burst_window_s,
        )
        flagged, reasons = flag_participant(signals, rule)
        reports.append(QualityReport(signals=signals, flagged=flagged, reasons=tuple(reasons)))
    return reports
