"""The vote vocabulary: parsed strictly, mirrored, and the same list wherever a choice is spelled."""

from __future__ import annotations

import pytest

from arena.battles import OUTCOMES as BATTLE_OUTCOMES
from arena.models import Vote
from core.choices import CHOICES, mirror_choice, parse_choice, parse_side, spoken, tally_counts
from exports.rows import OUTCOMES as EXPORT_OUTCOMES


def test_parse_choice_accepts_the_four_choices_and_rejects_anything_else() -> None:
    assert [parse_choice(c) for c in ("left", "right", "tie", "both_bad")] == list(CHOICES)
    with pytest.raises(ValueError, match="unknown choice 'Left'"):
        parse_choice("Left")
    with pytest.raises(ValueError, match="unknown side 'tie'"):
        parse_side("tie")


def test_mirror_swaps_sides_and_keeps_tie_and_both_bad() -> None:
    assert {c: mirror_choice(c) for c in CHOICES} == {
        "left": "right",
        "right": "left",
        "tie": "tie",
        "both_bad": "both_bad",
    }


def test_the_vote_column_the_exports_and_the_vote_log_read_the_same_four_values() -> None:
    assert tuple(Vote.Choice.values) == CHOICES
    assert tuple(EXPORT_OUTCOMES) == CHOICES
    assert set(BATTLE_OUTCOMES["arena"]) == set(CHOICES)
    assert spoken() == "left, right, tie or both_bad"


@pytest.mark.parametrize(
    ("left", "right", "choice", "expected"),
    [
        (3, 8, "left", (3, 8, (1, 0, 0, 0))),  # the lower id shown left and chosen: a win for a
        (8, 3, "left", (3, 8, (0, 1, 0, 0))),  # the higher id shown left and chosen: a win for b
        (3, 8, "right", (3, 8, (0, 1, 0, 0))),
        (8, 3, "right", (3, 8, (1, 0, 0, 0))),
        (8, 3, "tie", (3, 8, (0, 0, 1, 0))),
        (3, 8, "both_bad", (3, 8, (0, 0, 0, 1))),
    ],
)
def test_an_answer_counts_for_the_generator_chosen_whichever_side_it_was_shown_on(left, right, choice, expected):
    assert tally_counts(left, right, choice) == expected


def test_a_count_of_answers_adds_that_many():
    assert tally_counts(8, 3, "left", 5) == (3, 8, (0, 5, 0, 0))
