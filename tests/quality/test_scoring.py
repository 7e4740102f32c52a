"""Quality control signals, Krippendorff's alpha and the flagging rule, on plain inputs without a database."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import krippendorff
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.choices import CHOICES, Choice, parse_side
from quality.scoring import (
    DEFAULT_FLAG_RULE,
    QUALITY_CSV_FIELDS,
    FlagRule,
    GoldAnswer,
    GoldSummary,
    ParticipantSignals,
    PatternSignals,
    PositionSignals,
    RepeatPair,
    RepeatSummary,
    ScoredVote,
    SpeedSignals,
    UnitVote,
    agreement_by_criterion,
    assess_participants,
    campaign_position_bias,
    coincidence_matrix,
    flag_participant,
    krippendorff_alpha_nominal,
    longest_run,
    max_in_window,
    pattern_signals,
    position_bias,
    position_signals,
    speed_signals,
    summarize_gold,
    summarize_repeats,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def votes_of(
    choices: Sequence[Choice],
    *,
    participant: str | int = "p1",
    criterion: str = "quality",
    dwell_ms: int = 4000,
    every_s: float = 5.0,
    first_comparison: int = 0,
) -> list[ScoredVote]:
    """One vote per comparison on one criterion, `every_s` seconds apart."""
    return [
        ScoredVote(
            participant=participant,
            comparison=first_comparison + i,
            criterion=criterion,
            choice=choice,
            dwell_ms=dwell_ms,
            cast_at=T0 + timedelta(seconds=i * every_s),
        )
        for i, choice in enumerate(choices)
    ]


def many(choice: Choice, n: int) -> list[Choice]:
    return [choice] * n


def gold(comparison: int, choice: Choice, correct: str = "left", criterion: str = "quality") -> GoldAnswer:
    return GoldAnswer(
        participant="p1", comparison=comparison, criterion=criterion, choice=choice, correct_side=parse_side(correct)
    )


def test_records_reject_unknown_choices_and_negative_dwell() -> None:
    with pytest.raises(ValueError, match="choice 'middle'"):
        ScoredVote("p", 1, "quality", "middle", 100, T0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dwell_ms"):
        ScoredVote("p", 1, "quality", "left", -1, T0)
    with pytest.raises(ValueError, match="correct_side 'tie'"):
        GoldAnswer("p", 1, "quality", "left", "tie")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="repeat 'sideways'"):
        RepeatPair("p", "quality", "left", "sideways")  # type: ignore[arg-type]


# --- gold and repeats ----------------------------------------------------------------------------


def test_gold_counts_only_the_correct_side_as_correct() -> None:
    answers = [
        gold(1, "left"),
        gold(2, "right", correct="right"),
        gold(3, "tie"),
        gold(4, "both_bad"),
        gold(5, "right"),
    ]

    summary = summarize_gold(answers)

    assert (summary.n_answers, summary.n_correct, summary.n_wrong) == (5, 2, 3)
    assert summary.accuracy == pytest.approx(0.4)
    assert (summary.n_checks, summary.n_failed_checks) == (5, 3)


def test_a_gold_comparison_missed_on_several_criteria_is_one_failed_check() -> None:
    answers = [gold(1, "right", criterion="quality"), gold(1, "right", criterion="diversity"), gold(2, "left")]

    summary = summarize_gold(answers)

    assert (summary.n_answers, summary.n_correct) == (3, 1)
    assert (summary.n_checks, summary.n_failed_checks) == (2, 1)


def test_no_gold_answers_gives_no_accuracy() -> None:
    assert summarize_gold([]) == GoldSummary()
    assert summarize_gold([]).accuracy is None


@pytest.mark.parametrize(
    ("original", "repeat", "consistent"),
    [
        ("left", "right", True),
        ("right", "left", True),
        ("tie", "tie", True),
        ("both_bad", "both_bad", True),
        ("left", "left", False),
        ("right", "right", False),
        ("tie", "left", False),
        ("both_bad", "tie", False),
    ],
)
def test_repeat_is_consistent_only_when_it_mirrors_the_original(
    original: Choice, repeat: Choice, consistent: bool
) -> None:
    assert RepeatPair("p", "quality", original, repeat).is_consistent is consistent


def test_repeat_consistency_rate() -> None:
    pairs = [RepeatPair("p", "quality", "left", "right")] * 3 + [RepeatPair("p", "quality", "left", "left")]

    summary = summarize_repeats(pairs)

    assert (summary.n_pairs, summary.n_consistent, summary.rate) == (4, 3, 0.75)
    assert summarize_repeats([]).rate is None


# --- position bias -------------------------------------------------------------------------------


def test_position_bias_is_an_exact_two_sided_binomial_test_on_decisive_votes() -> None:
    # 9 left of 10 decisive: P(X >= 9) = (10 + 1) / 2**10, doubled for two sides. Ties are not decisive.
    bias = position_bias([*many("left", 9), "right", "tie", "both_bad", "tie"])

    assert (bias.n_left, bias.n_right, bias.n_decisive) == (9, 1, 10)
    assert bias.left_share == pytest.approx(0.9)
    assert bias.p_value == pytest.approx(22 / 1024)


def test_position_bias_without_decisive_votes_is_untested() -> None:
    bias = position_bias(["tie", "both_bad"])

    assert (bias.n_decisive, bias.left_share, bias.p_value) == (0, None, None)


def test_balanced_votes_have_p_value_one() -> None:
    assert position_bias(["left", "right"] * 10).p_value == pytest.approx(1.0)


def test_participant_position_bias_is_tested_per_criterion_with_bonferroni() -> None:
    votes = votes_of([*many("left", 10), *many("right", 2)], criterion="quality")
    votes += votes_of(["left", "right", "left", "right", "left", "right", "tie"], criterion="diversity")

    signals = position_signals(votes)

    assert [b.criterion for b in signals.by_criterion] == ["diversity", "quality"]
    assert signals.n_tests == 2
    worst = signals.worst
    assert worst is not None
    assert worst.criterion == "quality"
    assert worst.p_value is not None
    assert signals.adjusted_p(worst) == pytest.approx(2 * worst.p_value)


def test_campaign_position_bias_pools_participants_per_criterion() -> None:
    votes = votes_of(["left"] * 6, participant="a") + votes_of(["right"] * 4, participant="b")
    votes += votes_of(["right"] * 3, participant="a", criterion="diversity")

    balance = {b.criterion: b for b in campaign_position_bias(votes)}

    assert (balance["quality"].n_left, balance["quality"].n_right) == (6, 4)
    assert balance["quality"].left_share == pytest.approx(0.6)
    assert (balance["diversity"].n_left, balance["diversity"].n_right) == (0, 3)


# --- speed, bursts, patterns ---------------------------------------------------------------------


def test_fast_share_counts_submissions_strictly_below_the_floor() -> None:
    votes = [
        ScoredVote("p", i, "quality", "left", dwell, T0 + timedelta(minutes=i))
        for i, dwell in enumerate([1499, 1500, 300, 8000])
    ]

    speed = speed_signals(votes, dwell_floor_ms=1500)

    assert (speed.n_submissions, speed.n_fast, speed.fast_share) == (4, 2, 0.5)
    assert speed.median_dwell_ms == pytest.approx((1499 + 1500) / 2)


def test_a_submission_with_several_criteria_counts_once_for_speed() -> None:
    # Two criteria answered together share one dwell time and one moment.
    votes = [
        ScoredVote("p", comparison, criterion, "left", 900, T0 + timedelta(seconds=comparison))
        for comparison in range(3)
        for criterion in ("quality", "diversity")
    ]

    speed = speed_signals(votes, burst_window_s=10.0)

    assert (speed.n_submissions, speed.n_fast, speed.burst_max) == (3, 3, 3)


def test_burst_is_the_most_submissions_in_one_window() -> None:
    times = [0.0, 100.0, 101.0, 103.5, 104.0, 200.0]

    assert max_in_window(times, 4.0) == 4  # 100 .. 104, the window is closed
    assert max_in_window(times, 3.9) == 3
    assert max_in_window([], 10.0) == 0
    votes = votes_of(["left"] * 8, every_s=2.0)
    assert speed_signals(votes, burst_window_s=10.0).burst_max == 6  # 0, 2, ..., 10 s


def test_longest_run_finds_the_longest_identical_stretch() -> None:
    assert longest_run(["left", "left", "right", "right", "right", "tie"]) == (3, "right")
    assert longest_run(["tie", "tie", "left", "left"]) == (2, "tie")
    assert longest_run([]) == (0, None)


def test_runs_are_per_criterion_in_time_order() -> None:
    # Interleaved criteria: "left" 3 times in a row on quality; pooled in time order it would be 6.
    quality = votes_of(["left", "left", "left", "right"], criterion="quality")
    diversity = votes_of(["left", "left", "left", "right"], criterion="diversity")
    shuffled = list(reversed(quality + diversity))

    pattern = pattern_signals(shuffled)

    assert (pattern.longest_run, pattern.longest_run_choice) == (3, "left")
    assert pattern.longest_run_criterion == "diversity"  # first by name on a tie
    assert (pattern.top_choice, pattern.top_choice_count, pattern.n_votes) == ("left", 6, 8)
    assert pattern.top_choice_share == pytest.approx(0.75)


def test_no_votes_give_empty_pattern_and_speed_signals() -> None:
    assert pattern_signals([]) == PatternSignals()
    assert speed_signals([]).fast_share is None


# --- Krippendorff's alpha ------------------------------------------------------------------------

NA = None
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers, 12 units.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NA, NA, NA],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NA, 3],
    [NA, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NA],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NA],
]


def units_from(rows: Sequence[Sequence[object]]) -> list[list[object]]:
    """Reliability data (coders x units, None missing) as one list of values per unit."""
    return [[row[u] for row in rows if row[u] is not None] for u in range(len(rows[0]))]


def test_alpha_on_krippendorffs_worked_example() -> None:
    # By hand: the pairable values are n_c = 9, 13, 10, 5, 3 of values 1..5 (n = 40; unit 12 has one
    # value). Only units 2 (2,2,2,3), 6 (1,2,3,4) and 8 (1,1,1,2) disagree; each has m_u = 4 and 6, 12
    # and 6 ordered mismatched pairs, so sum_{c!=k} o_ck = (6 + 12 + 6) / 3 = 8. Then
    # alpha = 1 - (n - 1) * 8 / (n^2 - sum n_c^2) = 1 - 39 * 8 / (1600 - 384) = 113 / 152 = 0.743.
    agreement = krippendorff_alpha_nominal(units_from(KRIPPENDORFF_2011))

    assert agreement.alpha is not None
    assert agreement.alpha == pytest.approx(113 / 152, abs=1e-12)
    assert round(agreement.alpha, 3) == 0.743  # the value printed in the paper
    assert (agreement.n_units, agreement.n_values) == (11, 40)
    assert agreement.observed_agreement == pytest.approx(1 - 8 / 40)
    assert agreement.reason is None


def test_coincidence_matrix_of_the_worked_example() -> None:
    coincidences, n_units = coincidence_matrix(units_from(KRIPPENDORFF_2011))
    order = [coincidences.values.index(v) for v in (1, 2, 3, 4, 5)]
    matrix = coincidences.matrix[np.ix_(order, order)]

    # Counted by hand, e.g. o_11 = 3*2/2 (unit 1) + 3*2/3 (unit 8) + 2*1/1 (unit 11) = 7 and
    # o_12 = 1*1/3 (unit 6) + 3*1/3 (unit 8) = 4/3.
    expected = np.array(
        [
            [7, 4 / 3, 1 / 3, 1 / 3, 0],
            [4 / 3, 10, 4 / 3, 1 / 3, 0],
            [1 / 3, 4 / 3, 8, 1 / 3, 0],
            [1 / 3, 1 / 3, 1 / 3, 4, 0],
            [0, 0, 0, 0, 3],
        ]
    )
    np.testing.assert_allclose(matrix, expected, atol=1e-12)
    assert [coincidences.totals[i] for i in order] == [9, 13, 10, 5, 3]
    assert n_units == 11


def test_alpha_on_the_krippendorff_package_docstring_example() -> None:
    rows = [
        [NA, NA, NA, NA, NA, 3, 4, 1, 2, 1, 1, 3, 3, NA, 3],
        [1, NA, 2, 1, 3, 3, 4, 3, NA, NA, NA, NA, NA, NA, NA],
        [NA, NA, 2, 1, 3, 4, 4, NA, 2, 1, 1, 3, 3, NA, 4],
    ]

    agreement = krippendorff_alpha_nominal(units_from(rows))

    assert agreement.alpha is not None
    assert round(agreement.alpha, 6) == 0.691358


def test_perfect_disagreement_within_units_is_below_zero() -> None:
    # Two coders, two units, always disagreeing: o = [[0, 2], [2, 0]], n = 4, alpha = 1 - 3 * 4 / 8.
    agreement = krippendorff_alpha_nominal([["left", "right"], ["right", "left"]])

    assert agreement.alpha == pytest.approx(-0.5)
    assert agreement.observed_agreement == 0.0


def test_alpha_needs_two_pairable_values() -> None:
    agreement = krippendorff_alpha_nominal([["left"], ["right"], []])

    assert agreement.alpha is None
    assert (agreement.n_units, agreement.n_values) == (0, 0)
    assert agreement.reason is not None
    assert "fewer than 2 pairable values" in agreement.reason


def test_alpha_is_undefined_when_all_pairable_values_are_identical() -> None:
    # The lone "right" is unpairable, so the data show no variation at all.
    agreement = krippendorff_alpha_nominal([["tie", "tie", "tie"], ["tie", "tie"], ["right"]])

    assert agreement.alpha is None
    assert agreement.observed_agreement == 1.0
    assert agreement.reason is not None
    assert "no variation" in agreement.reason
    with pytest.warns(RuntimeWarning):
        package_alpha = krippendorff.alpha(
            reliability_data=np.array([[1, 1, 2], [1, 1, np.nan]]), level_of_measurement="nominal"
        )
    assert math.isnan(package_alpha)


def reference_alpha(rows: Sequence[Sequence[object]]) -> float | None:
    """The krippendorff package on the same data; None where it refuses (raises) or returns NaN."""
    data = np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)
    try:
        with np.errstate(invalid="ignore", divide="ignore"):
            value = float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
    except ValueError:
        return None
    return None if math.isnan(value) else value


reliability_rows = st.integers(min_value=2, max_value=6).flatmap(
    lambda coders: st.integers(min_value=1, max_value=12).flatmap(
        lambda units: st.lists(
            st.lists(st.one_of(st.none(), st.integers(0, 3)), min_size=units, max_size=units),
            min_size=coders,
            max_size=coders,
        )
    )
)


@settings(max_examples=300, deadline=None)
@given(reliability_rows)
def test_alpha_equals_the_krippendorff_package(rows: list[list[int | None]]) -> None:
    ours = krippendorff_alpha_nominal(units_from(rows)).alpha
    theirs = reference_alpha(rows)

    if theirs is None:
        assert ours is None
    else:
        assert ours == pytest.approx(theirs, abs=1e-10)


@pytest.mark.parametrize("seed", range(5))
def test_alpha_equals_the_package_on_large_sparse_crowd_data(seed: int) -> None:
    # Crowd shape: many coders, each seeing a few units; values are the four choices as strings.
    rng = np.random.default_rng(seed)
    coders, units = 40, 60
    values = rng.choice(np.array(CHOICES), size=(coders, units), p=[0.4, 0.35, 0.15, 0.1])
    missing = rng.random((coders, units)) < 0.85
    data = np.where(missing, "nan", values)

    ours = krippendorff_alpha_nominal([[v for v in data[:, u] if v != "nan"] for u in range(units)])
    theirs = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")

    assert ours.alpha == pytest.approx(float(theirs), abs=1e-10)


def test_agreement_by_criterion_compares_sides_as_populations_and_counts_each_coder_once() -> None:
    # Unit "AB": coder 1 saw A on the left and chose it; coder 2 saw B on the left and chose A (right).
    # Coder 1's side-swapped repeat of "AB" must not count as a third coder.
    votes = [
        UnitVote("AB", "quality", 1, "left"),
        UnitVote("AB", "quality", 2, "right", swapped=True),
        UnitVote("AB", "quality", 1, "left", swapped=True),
        UnitVote("CD", "quality", 1, "right"),
        UnitVote("CD", "quality", 2, "left", swapped=True),
        UnitVote("CD", "diversity", 1, "tie"),
    ]

    agreement = agreement_by_criterion(votes)

    assert list(agreement) == ["diversity", "quality"]
    assert agreement["quality"].n_values == 4
    assert agreement["quality"].observed_agreement == 1.0
    assert agreement["quality"].alpha == pytest.approx(1.0)
    assert agreement["diversity"].alpha is None


# --- flagging ------------------------------------------------------------------------------------


def clean(**changes: Any) -> ParticipantSignals:
    """Signals of a participant with no data, but for `changes`."""
    return replace(ParticipantSignals(participant="p1"), **changes)


def test_a_participant_with_no_data_is_not_flagged() -> None:
    assert flag_participant(ParticipantSignals("p1")) == (False, [])


def test_two_failed_gold_checks_flag() -> None:
    one = clean(gold=GoldSummary(n_answers=4, n_correct=3, n_checks=4, n_failed_checks=1))
    two = clean(gold=GoldSummary(n_answers=4, n_correct=2, n_checks=4, n_failed_checks=2))

    assert flag_participant(one) == (False, [])
    flagged, reasons = flag_participant(two)
    assert flagged
    assert reasons == ["failed 2 of 4 gold checks (flag at 2)"]


def test_low_gold_accuracy_flags_only_with_enough_answers() -> None:
    rule = FlagRule(failed_gold_checks=None)
    below = clean(gold=GoldSummary(n_answers=5, n_correct=2, n_checks=5, n_failed_checks=3))
    at_threshold = clean(gold=GoldSummary(n_answers=5, n_correct=3, n_checks=5, n_failed_checks=2))
    too_few = clean(gold=GoldSummary(n_answers=4, n_correct=0, n_checks=4, n_failed_checks=4))

    assert flag_participant(below, rule) == (True, ["gold accuracy 0.40 (2 of 5 answers correct) below 0.6"])
    assert flag_participant(at_threshold, rule) == (False, [])
    assert flag_participant(too_few, rule) == (False, [])


def test_low_repeat_consistency_flags_only_with_enough_repeats() -> None:
    low = clean(repeats=RepeatSummary(n_pairs=4, n_consistent=1))
    half = clean(repeats=RepeatSummary(n_pairs=4, n_consistent=2))
    too_few = clean(repeats=RepeatSummary(n_pairs=3, n_consistent=0))

    assert flag_participant(low) == (
        True,
        ["repeat consistency 0.25 (1 of 4 side-swapped repeats consistent) below 0.5"],
    )
    assert flag_participant(half) == (False, [])
    assert flag_participant(too_few) == (False, [])


def test_position_bias_flags_with_enough_decisive_votes() -> None:
    always_left = clean(position=position_signals(votes_of(["left"] * 20)))
    nineteen = clean(position=position_signals(votes_of(["left"] * 19)))

    flagged, reasons = flag_participant(always_left)
    assert flagged
    assert reasons == [
        "position bias on 'quality': 20 of 20 decisive votes left (left share 1.00), p = 1.9e-06"
        " (Bonferroni over 1 criterion) below 0.001"
    ]
    assert flag_participant(nineteen) == (False, [])


def test_answering_all_criteria_alike_does_not_double_the_evidence_for_position_bias() -> None:
    # 17 of 20 left on each of two criteria: p = 0.0026 each, 0.0052 after Bonferroni: not flagged.
    # Pooled as 34 of 40 it would be p = 1.1e-05 and flagged, counting each look twice.
    choices = [*many("left", 17), *many("right", 3)]
    votes = votes_of(choices, criterion="quality") + votes_of(choices, criterion="diversity")

    pooled = position_bias([*many("left", 34), *many("right", 6)]).p_value
    assert pooled is not None
    assert DEFAULT_FLAG_RULE.max_position_p is not None
    assert pooled < DEFAULT_FLAG_RULE.max_position_p
    assert flag_participant(clean(position=position_signals(votes))) == (False, [])


def test_mostly_fast_submissions_flag() -> None:
    fast = clean(speed=SpeedSignals(n_submissions=10, n_fast=6, dwell_floor_ms=1500))
    half = clean(speed=SpeedSignals(n_submissions=10, n_fast=5, dwell_floor_ms=1500))
    too_few = clean(speed=SpeedSignals(n_submissions=9, n_fast=9, dwell_floor_ms=1500))

    assert flag_participant(fast) == (True, ["6 of 10 submissions (0.60) faster than 1500 ms, above 0.5"])
    assert flag_participant(half) == (False, [])
    assert flag_participant(too_few) == (False, [])


def test_bursts_and_straight_lining_flag_only_when_the_rule_asks() -> None:
    signals = clean(
        speed=SpeedSignals(n_submissions=30, n_fast=0, burst_max=9, burst_window_s=10.0),
        pattern=PatternSignals(
            n_votes=30,
            longest_run=16,
            longest_run_choice="tie",
            longest_run_criterion="quality",
            top_choice="tie",
            top_choice_count=28,
        ),
    )
    strict = FlagRule(max_burst=6, max_longest_run=15, max_top_choice_share=0.9)

    assert flag_participant(signals) == (False, [])
    flagged, reasons = flag_participant(signals, strict)
    assert flagged
    assert reasons == [
        "burst of 9 submissions within 10 s, above 6",
        "straight-lining: 16 'tie' votes in a row on 'quality', above 15",
        "straight-lining: 28 of 30 votes (0.93) are 'tie', above 0.9",
    ]
    assert flag_participant(signals, FlagRule(max_longest_run=15, min_votes_for_pattern=31)) == (False, [])


def test_every_check_can_be_switched_off() -> None:
    bad = clean(
        gold=GoldSummary(n_answers=10, n_correct=0, n_checks=10, n_failed_checks=10),
        repeats=RepeatSummary(n_pairs=10, n_consistent=0),
        position=position_signals(votes_of(["left"] * 40)),
        speed=SpeedSignals(n_submissions=40, n_fast=40),
    )
    off = FlagRule(
        failed_gold_checks=None,
        min_gold_accuracy=None,
        min_repeat_consistency=None,
        max_position_p=None,
        max_fast_share=None,
    )

    assert len(flag_participant(bad)[1]) == 5
    assert flag_participant(bad, off) == (False, [])


@pytest.mark.parametrize(
    "changes",
    [{"min_gold_accuracy": 1.5}, {"max_position_p": -0.1}, {"min_gold_answers": -1}, {"failed_gold_checks": 0}],
)
def test_flag_rule_rejects_impossible_thresholds(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(changes))):
        FlagRule(**changes)  # type: ignore[arg-type]


# --- reports -------------------------------------------------------------------------------------


def test_assess_participants_groups_inputs_and_flags_with_reasons() -> None:
    # Given a careful participant and one who always clicks left, fast, and fails gold
    careful = votes_of(["left", "right", "tie", "right"] * 3, participant="careful")
    clicker = votes_of(["left"] * 24, participant="clicker", dwell_ms=400, every_s=1.0, first_comparison=100)
    gold_answers = [
        GoldAnswer("clicker", 100, "quality", "left", "right"),
        GoldAnswer("clicker", 101, "quality", "left", "right"),
        GoldAnswer("careful", 0, "quality", "left", "left"),
    ]
    repeats = [RepeatPair("late", "quality", "left", "right")]

    # When the default rule is applied
    reports = assess_participants(votes=careful + clicker, gold=gold_answers, repeats=repeats)

    # Then each participant gets one report, in order of first appearance, and only the clicker is flagged
    assert [r.participant for r in reports] == ["careful", "clicker", "late"]
    careful_report, clicker_report, late_report = reports
    assert not careful_report.flagged
    assert careful_report.reasons == ()
    assert careful_report.signals.gold.accuracy == 1.0
    assert clicker_report.flagged
    assert [reason.split(" ")[0] for reason in clicker_report.reasons] == ["failed", "position", "24"]
    assert clicker_report.signals.speed.burst_max == 11  # one a second within a closed 10 s window
    assert late_report.signals.repeats.rate == 1.0
    assert late_report.signals.speed.n_submissions == 0


def test_assess_participants_uses_the_rules_dwell_floor() -> None:
    votes = votes_of(["left", "right"] * 6, dwell_ms=2500)

    default = assess_participants(votes=votes)[0]
    slower_floor = assess_participants(votes=votes, rule=FlagRule(dwell_floor_ms=3000))[0]

    assert not default.flagged
    assert default.signals.speed.n_fast == 0
    assert slower_floor.flagged
    assert slower_floor.signals.speed.dwell_floor_ms == 3000
    assert slower_floor.reasons == ("12 of 12 submissions (1.00) faster than 3000 ms, above 0.5",)


def test_report_rows_are_flat_and_write_as_csv() -> None:
    reports = assess_participants(
        votes=votes_of(["left"] * 20, participant=7) + votes_of(["tie"], participant=8),
        gold=[GoldAnswer(7, 1, "quality", "right", "left"), GoldAnswer(7, 2, "quality", "tie", "left")],
    )
    rows = [report.as_row() for report in reports]

    assert all(tuple(row) == QUALITY_CSV_FIELDS for row in rows)
    assert all(value is None or isinstance(value, str | int | float) for row in rows for value in row.values())
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=QUALITY_CSV_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    parsed = list(csv.DictReader(io.StringIO(buffer.getvalue())))

    first, second = parsed
    assert first["participant"] == "7"
    assert first["flagged"] == "True"
    assert first["reasons"].startswith("failed 2 of 2 gold checks (flag at 2); position bias on 'quality'")
    assert (first["gold_accuracy"], first["position_left"], first["position_left_share"]) == ("0.0", "20", "1.0")
    assert (second["flagged"], second["reasons"], second["position_p_value"], second["gold_accuracy"]) == (
        "False",
        "",
        "",
        "",
    )


def test_empty_position_signals_have_no_worst_criterion() -> None:
    assert PositionSignals().worst is None
    assert position_signals(votes_of(["tie", "both_bad"])).worst is None


def test_the_burst_rule_allows_exactly_max_burst_and_flags_one_more() -> None:
    rule = FlagRule(max_burst=6)
    at_limit = clean(speed=SpeedSignals(n_submissions=30, burst_max=6, burst_window_s=10.0))
    one_over = clean(speed=SpeedSignals(n_submissions=30, burst_max=7, burst_window_s=10.0))

    assert flag_participant(at_limit, rule) == (False, [])
    assert flag_participant(one_over, rule) == (True, ["burst of 7 submissions within 10 s, above 6"])
    # From votes: submissions two seconds apart put six in a closed 10 s window; 1.5 s apart, seven.
    assert flag_participant(clean(speed=speed_signals(votes_of(["left"] * 9, every_s=2.0))), rule) == (False, [])
    seven = speed_signals(votes_of(["left"] * 9, every_s=1.5))
    assert flag_participant(clean(speed=seven), rule) == (True, ["burst of 7 submissions within 10 s, above 6"])


def test_a_submission_exactly_at_the_dwell_floor_is_not_fast_and_one_millisecond_under_is() -> None:
    at_floor = speed_signals(votes_of(["left"] * 10, dwell_ms=1500), dwell_floor_ms=1500)
    under = speed_signals(votes_of(["left"] * 10, dwell_ms=1499), dwell_floor_ms=1500)

    assert (at_floor.n_fast, under.n_fast) == (0, 10)
    rule = FlagRule(dwell_floor_ms=1500)
    assert flag_participant(clean(speed=at_floor), rule) == (False, [])
    assert flag_participant(clean(speed=under), rule) == (
        True,
        ["10 of 10 submissions (1.00) faster than 1500 ms, above 0.5"],
    )


# --- written against mutation testing (scripts/mutation scoring) ---------------------------------
# Each test tells a rule apart from a plausible slip in it: a boundary moved by one, a field not passed on,
# a message that no longer names what is wrong.


def test_a_refused_choice_is_named_with_its_field_and_the_choices_allowed() -> None:
    allowed = "left, right, tie, both_bad"
    cases = [
        (lambda: ScoredVote("p", 1, "quality", "middle", 100, T0), "choice"),
        (lambda: GoldAnswer("p", 1, "quality", "middle", "left"), "choice"),
        (lambda: RepeatPair("p", "quality", "middle", "left"), "original"),
        (lambda: RepeatPair("p", "quality", "left", "middle"), "repeat"),
        (lambda: UnitVote("u", "quality", "c", "middle"), "choice"),  # type: ignore[arg-type]
    ]
    for make, field_name in cases:
        with pytest.raises(ValueError, match=rf"^{field_name} 'middle' is not one of {allowed}$"):
            make()


def test_a_vote_of_zero_milliseconds_is_a_valid_record_and_counts_as_a_dwell_of_zero() -> None:
    votes = votes_of(["left"], dwell_ms=0)

    assert speed_signals(votes).median_dwell_ms == 0.0


def test_a_gold_comparison_wrong_on_one_criterion_fails_even_when_a_later_criterion_is_right() -> None:
    answers = [gold(1, "right", criterion="quality"), gold(1, "left", criterion="diversity")]

    assert (summarize_gold(answers).n_checks, summarize_gold(answers).n_failed_checks) == (1, 1)


def test_bonferroni_caps_the_adjusted_p_value_at_one() -> None:
    balanced = ["left", "right"] * 5  # p = 1 on each of two criteria: 2 x 1 is capped at 1
    signals = position_signals(votes_of(balanced, criterion="a") + votes_of(balanced, criterion="b"))

    assert [signals.adjusted_p(bias) for bias in signals.by_criterion] == [1.0, 1.0]


def test_speed_signals_accept_zero_and_fractional_limits_and_refuse_negative_ones_by_name() -> None:
    votes = votes_of(["left"] * 3, dwell_ms=10, every_s=0.25)

    assert speed_signals(votes, dwell_floor_ms=0).n_fast == 0
    assert speed_signals(votes, burst_window_s=0).burst_max == 1
    half_second = speed_signals(votes, burst_window_s=0.5)
    assert (half_second.burst_max, half_second.burst_window_s) == (3, 0.5)
    message = "^dwell_floor_ms and burst_window_s must be non-negative$"
    for limits in ({"dwell_floor_ms": -1}, {"burst_window_s": -0.5}):
        with pytest.raises(ValueError, match=message):
            speed_signals(votes, **limits)  # type: ignore[arg-type]


def test_a_submission_is_timed_by_its_longest_row_and_placed_in_time_by_its_first() -> None:
    # Comparison 1's rows: 2000 ms at 0 s, then 1000 ms at 20 s; comparison 2 at 5 s.
    rows = [
        ScoredVote("p", 1, "quality", "left", 2000, T0),
        ScoredVote("p", 2, "quality", "left", 3000, T0 + timedelta(seconds=5)),
        ScoredVote("p", 1, "diversity", "left", 1000, T0 + timedelta(seconds=20)),
    ]

    speed = speed_signals(rows, dwell_floor_ms=1500)

    assert (speed.n_submissions, speed.n_fast, speed.median_dwell_ms) == (2, 0, 2500.0)
    assert speed.burst_max == 2  # first rows at 0 s and 5 s share one 10 s window


def test_the_coincidence_matrix_handed_out_is_read_only() -> None:
    coincidences, _ = coincidence_matrix([["left", "right"], ["left", "left"]])

    with pytest.raises(ValueError, match="read-only"):
        coincidences.matrix[0, 0] = 9.0


def test_alpha_without_variation_or_pairable_values_reports_what_it_counted() -> None:
    lone = krippendorff_alpha_nominal([["left"], ["right"]])
    same = krippendorff_alpha_nominal([["tie", "tie", "tie"], ["tie", "tie"], ["right"]])

    assert lone.reason == "fewer than 2 pairable values: no unit was coded by two or more coders"
    assert (same.n_units, same.n_values) == (2, 5)
    assert same.reason == "all 5 pairable values are 'tie': no variation, alpha is 0/0 (undefined)"


def test_flag_rule_accepts_the_ends_of_every_range_and_refuses_what_lies_outside_by_name() -> None:
    FlagRule(min_gold_accuracy=0.0, min_repeat_consistency=1.0, max_position_p=0.0, max_fast_share=1.0)
    FlagRule(max_top_choice_share=0.0)
    FlagRule(max_top_choice_share=1.0)
    FlagRule(min_gold_answers=0, min_repeat_pairs=0, min_decisive_votes=0, min_submissions_for_speed=0)
    FlagRule(min_votes_for_pattern=0, dwell_floor_ms=0, burst_window_s=0.0)
    FlagRule(burst_window_s=0.5, failed_gold_checks=1, max_burst=1, max_longest_run=1)
    refused = [
        ({"max_top_choice_share": 1.5}, "^max_top_choice_share must be between 0 and 1, got 1.5$"),
        ({"burst_window_s": -1.0}, "^burst_window_s must be non-negative$"),
        ({"min_votes_for_pattern": -1}, "^min_votes_for_pattern must be non-negative$"),
        ({"max_burst": 0}, "^max_burst must be at least 1 or None$"),
    ]
    for changes, message in refused:
        with pytest.raises(ValueError, match=message):
            FlagRule(**changes)  # type: ignore[arg-type]


def test_assess_participants_applies_the_whole_rule_and_keeps_every_signal() -> None:
    # Submissions 2 s apart with the same answer throughout, and two failed gold checks.
    votes = votes_of(["tie"] * 20, every_s=2.0)
    gold_answers = [gold(1, "right"), gold(2, "right")]
    rule = FlagRule(failed_gold_checks=None, min_gold_accuracy=None, burst_window_s=4.0, max_burst=2)

    (report,) = assess_participants(votes=votes, gold=gold_answers, rule=rule)

    # Gold is not checked by this rule; a closed 4 s window holds three submissions 2 s apart.
    assert report.signals.speed.burst_window_s == 4.0
    assert report.signals.speed.burst_max == 3
    assert report.reasons == ("burst of 3 submissions within 4 s, above 2",)
    assert (report.signals.pattern.longest_run, report.signals.pattern.top_choice) == (20, "tie")


def test_position_checks_go_on_past_a_criterion_with_too_few_decisive_votes() -> None:
    votes = votes_of(["tie"] * 5, criterion="a") + votes_of(["right"] * 20, criterion="b", first_comparison=10)

    # With no floor on decisive votes, a criterion with none is skipped rather than tested.
    flagged, reasons = flag_participant(clean(position=position_signals(votes)), FlagRule(min_decisive_votes=0))

    assert flagged
    assert reasons == [
        "position bias on 'b': 20 of 20 decisive votes right (left share 0.00), p = 1.9e-06"
        " (Bonferroni over 1 criterion) below 0.001"
    ]
    few_first = votes_of(["left"] * 3, criterion="a") + votes_of(["right"] * 20, criterion="b", first_comparison=10)
    assert flag_participant(clean(position=position_signals(few_first)))[1] == [
        "position bias on 'b': 20 of 20 decisive votes right (left share 0.00), p = 3.8e-06"
        " (Bonferroni over 2 criteria) below 0.001"
    ]


def test_position_bias_must_be_strictly_below_the_threshold_to_flag() -> None:
    # 20 of 20 left: the two-sided binomial p-value is 2 x 0.5 ** 20 = 2 ** -19.
    always_left = clean(position=position_signals(votes_of(["left"] * 20)))

    assert flag_participant(always_left, FlagRule(max_position_p=2**-19)) == (False, [])
    assert flag_participant(always_left, FlagRule(max_position_p=2**-19 * 1.001))[0]


def test_straight_lining_boundaries_flag_only_beyond_the_limits_and_from_exactly_the_minimum_votes() -> None:
    signals = clean(
        pattern=PatternSignals(
            n_votes=20,
            longest_run=8,
            longest_run_choice="left",
            longest_run_criterion="quality",
            top_choice="left",
            top_choice_count=15,
        )
    )

    assert flag_participant(signals, FlagRule(max_longest_run=8, max_top_choice_share=0.75)) == (False, [])
    assert flag_participant(signals, FlagRule(max_longest_run=7, min_votes_for_pattern=20)) == (
        True,
        ["straight-lining: 8 'left' votes in a row on 'quality', above 7"],
    )


def test_report_rows_describe_the_most_side_biased_criterion() -> None:
    from math import comb

    # 15 of 20 right on 'b', balanced on 'a': two-sided p = 2 * P(X >= 15) for X ~ Binomial(20, 1/2).
    votes = votes_of(["left", "right"] * 10, criterion="a") + votes_of(
        [*many("right", 15), *many("left", 5)], criterion="b", first_comparison=50
    )
    p = 2 * sum(comb(20, k) for k in range(15, 21)) / 2**20

    row = assess_participants(votes=votes)[0].as_row()

    assert (row["position_criterion"], row["position_left"], row["position_right"]) == ("b", 5, 15)
    assert row["position_left_share"] == 0.25
    assert row["position_p_value"] == pytest.approx(p, rel=1e-9)
    assert row["position_p_adjusted"] == pytest.approx(2 * p, rel=1e-9)
