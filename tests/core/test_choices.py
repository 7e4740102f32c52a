"""The vote vocabulary: parsed strictly, mirrored, and the same list wherever a choice is spelled."""

from __future__ import annotations

import pytest

from arena.battles import OUTCOMES as BATTLE_OUTCOMES
from arena.models import Vote
from core.choices import CHOICES, mirror_choice, parse_choice, parse_side, spoken
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
