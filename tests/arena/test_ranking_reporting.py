"""What the ranking core reports: JSON rows, the separation note word for word, heatmaps, input readers and errors.

Expected values are written out by hand from the documented rules, not computed with the core's helpers.
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest

from arena.ranking import PairCounts, Standing, expected_win_rates, fit_ratings, win_rate_matrix


def test_a_standing_becomes_a_json_row_with_every_field_by_name():
    standing = Standing(
        name="g", rating=1012.5, ci_low=990.25, ci_high=1030.75, rank=2, votes=11.0, wins=6.0, losses=3.0,
        ties=2.0, part=1,
    )  # fmt: skip
    assert standing.as_row() == {
        "name": "g",
        "rating": 1012.5,
        "ci_low": 990.25,
        "ci_high": 1030.75,
        "rank": 2,
        "votes": 11.0,
        "wins": 6.0,
        "losses": 3.0,
        "ties": 2.0,
        "part": 1,
    }
    unbounded = Standing("u", 1000.0, -math.inf, math.inf, 1, 0.0, 0.0, 0.0, 0.0, 2)
    row = unbounded.as_row()
    assert (row["ci_low"], row["ci_high"]) == (None, None)  # JSON has no infinity
    half_open = Standing("h", 1000.0, 950.0, math.inf, 1, 1.0, 1.0, 0.0, 0.0, 0)
    assert (half_open.as_row()["ci_low"], half_open.as_row()["ci_high"]) == (950.0, None)


NOTE_TAIL = "other pairs keep their exact counts"


def test_the_separation_note_of_a_single_part_names_the_graph_the_loner_and_counts():
    # Given champ, who beat x and y and never lost, while x and y beat each other,
    counts = PairCounts.from_tallies(
        ["champ", "x", "y"], [("champ", "x", 5, 0, 0), ("champ", "y", 4, 0, 0), ("x", "y", 6, 4, 2)]
    )
    board = fit_ratings(counts, bootstrap=0, prior=0.25)
    # then the note says where (the whole graph: one part), who (champ alone in its group), the prior as
    # given, the two compared pairs that cross between the groups {champ} and {x, y}, and that there are 2.
    assert board.notes == (
        "perfect separation in the comparison graph (champ only won or only lost): no finite MLE, so 0.25 "
        "pseudo-wins were added each way to the 2 compared pairs between its 2 strongly connected groups "
        f"(prior alpha=0.25); {NOTE_TAIL}",
    )
    assert board.prior == 0.25


def test_the_separation_note_of_a_second_part_names_the_part():
    # Given two parts, the larger (c, d, e) without separation, the smaller one a single 3-0 pair,
    counts = PairCounts.from_tallies(
        ["a", "b", "c", "d", "e"], [("a", "b", 3, 0, 0), ("c", "d", 5, 5, 1), ("d", "e", 3, 6, 0), ("c", "e", 2, 2, 2)]
    )
    board = fit_ratings(counts, bootstrap=0)
    # then the separation is placed in part 1, where both a and b are alone in their groups.
    assert board.notes[0] == (
        "perfect separation in part 1 (a, b only won or only lost): no finite MLE, so 0.5 pseudo-wins were added "
        f"each way to the 1 compared pairs between its 2 strongly connected groups (prior alpha=0.5); {NOTE_TAIL}"
    )
    assert "2 disconnected parts" in board.notes[1]


def total_order(k: int) -> PairCounts:
    """k generators where each beat every later one: every generator is a group of its own."""
    names = [f"g{i}" for i in range(k)]
    return PairCounts.from_tallies(names, [(names[i], names[j], 1, 0, 0) for i in range(k) for j in range(i + 1, k)])


def test_the_separation_note_lists_five_loners_and_elides_the_rest():
    five = fit_ratings(total_order(5), bootstrap=0).notes[0]
    assert "(g0, g1, g2, g3, g4 only won or only lost)" in five
    assert "the 10 compared pairs between its 5 strongly connected groups" in five  # 5 * 4 / 2 pairs
    six = fit_ratings(total_order(6), bootstrap=0).notes[0]
    assert "(g0, g1, g2, g3, g4, ... only won or only lost)" in six
    assert "the 15 compared pairs between its 6 strongly connected groups" in six


def test_the_separation_note_between_two_groups_of_two_names_nobody():
    # a and b beat each other, c and d too, and a beat c: two groups of two, no generator alone.
    counts = PairCounts.from_tallies(
        ["a", "b", "c", "d"], [("a", "b", 2, 1, 0), ("c", "d", 1, 2, 0), ("a", "c", 3, 0, 0)]
    )
    (note,) = fit_ratings(counts, bootstrap=0).notes
    assert note.startswith("perfect separation in the comparison graph: no finite MLE, so 0.5 pseudo-wins")
    assert "the 1 compared pairs between its 2 strongly connected groups" in note


def test_a_matrix_of_decimals_is_read_as_numbers():
    # PostgreSQL sums come back as Decimal; the matrix and the ties are numbers all the same.
    matrix = [[Decimal(0), Decimal("4.5")], [Decimal("2.5"), Decimal(0)]]
    ties = [[Decimal(0), Decimal(1)], [Decimal(1), Decimal(0)]]
    counts = PairCounts.from_matrix(["a", "b"], matrix, ties=ties)
    assert counts.wins.tolist() == [[0.0, 4.0], [2.0, 0.0]]
    assert counts.ties.tolist() == [[0.0, 1.0], [1.0, 0.0]]


def test_a_matrix_smaller_than_half_its_ties_is_refused_but_rounding_dust_is_forgiven():
    with pytest.raises(ValueError, match="matrix is smaller than half the ties somewhere: it must already include"):
        PairCounts.from_matrix(["a", "b"], [[0, 0.5], [1.5, 0]], ties=[[0, 2], [2, 0]])  # a's cell 0.5 - 1
    # A cell exactly 1e-9 under half its ties is float dust: read as no decisive win, not refused.
    dust = PairCounts.from_matrix(["a", "b"], [[0, 0.0], [1.0, 0]], ties=[[0, 2e-9], [2e-9, 0]])
    assert dust.wins[0, 1] == 0.0
    assert dust.wins[1, 0] == pytest.approx(1.0 - 1e-9)


def test_an_unknown_generator_is_named_in_the_error():
    with pytest.raises(KeyError, match="unknown generator 'zz'"):
        PairCounts.empty(["a", "b"]).index("zz")


def test_a_pair_compared_once_has_a_win_rate_and_the_diagonal_has_none():
    rates = win_rate_matrix(PairCounts.from_tallies(["a", "b"], [("a", "b", 1, 0, 0)]))
    assert rates[0, 1] == 1.0
    assert rates[1, 0] == 0.0
    assert np.isnan(np.diag(rates)).all()


def test_model_win_rates_follow_the_order_asked_and_are_blank_across_parts_and_for_the_unrated():
    # Given a 3-1 pair (a, b), a 1-1 pair (c, d) in another part, and e without votes,
    counts = PairCounts.from_tallies(["a", "b", "c", "d", "e"], [("a", "b", 3, 1, 0), ("c", "d", 1, 1, 0)])
    board = fit_ratings(counts, bootstrap=0)
    # then in any order asked the model gives a beating b 3 times in 4 (a lone pair's MLE is its win rate),
    rates = expected_win_rates(board, ["e", "d", "b", "c", "a"])
    assert rates[4, 2] == pytest.approx(0.75)
    assert rates[2, 4] == pytest.approx(0.25)
    assert rates[1, 3] == pytest.approx(0.5)  # d against c
    # and nothing on the diagonal, across parts (a or b against c or d), or for e either way.
    blank = [(i, j) for i in range(5) for j in range(5) if {i, j} not in ({2, 4}, {1, 3})]
    assert all(np.isnan(rates[i, j]) for i, j in blank), rates
    # Without an order, rows and columns follow the standings, best first: a above b within their part.
    default = expected_win_rates(board)
    order = [s.name for s in board.standings]
    assert default[order.index("a"), order.index("b")] == pytest.approx(0.75)


def test_tallies_of_one_pair_add_up_whichever_way_round_they_come():
    counts = PairCounts.from_tallies(["a", "b", "c"], [("a", "b", 2, 1, 1), ("b", "a", 3, 0, 2), ("a", "b", 1, 1, 0)])
    assert counts.wins.tolist() == [[0, 3, 0], [5, 0, 0], [0, 0, 0]]  # a over b: 2 + 0 + 1; b over a: 1 + 3 + 1
    assert counts.ties.tolist() == [[0, 3, 0], [3, 0, 0], [0, 0, 0]]


def test_bad_tallies_and_unknown_names_are_refused_by_name():
    with pytest.raises(ValueError, match=r"unknown generator in tally \('a', 'zz'\)"):
        PairCounts.from_tallies(["a", "b"], [("a", "zz", 1, 0, 0)])
    with pytest.raises(ValueError, match=r"unknown generator in tally \('zz', 'b'\)"):
        PairCounts.from_tallies(["a", "b"], [("zz", "b", 1, 0, 0)])
    with pytest.raises(ValueError, match="tally compares 'a' with itself"):
        PairCounts.from_tallies(["a", "b"], [("a", "a", 1, 0, 0)])
    board = fit_ratings(PairCounts.empty(["a"]))
    with pytest.raises(KeyError, match="unknown generator 'zz'"):
        board.by_name("zz")


def test_sandwich_intervals_with_an_anchor_leave_the_other_part_unanchored():
    # Given two parts, the anchor in the larger one,
    counts = PairCounts.from_tallies(
        ["a", "b", "c", "d", "e"], [("a", "b", 6, 4, 0), ("c", "d", 5, 5, 1), ("d", "e", 3, 6, 0), ("c", "e", 2, 2, 2)]
    )
    free = fit_ratings(counts, intervals="sandwich")
    pinned = fit_ratings(counts, intervals="sandwich", anchor=("c", 1500.0))
    # then the anchor's part moves and its interval collapses, and the other part is untouched.
    assert pinned.by_name("c").ci_low == pinned.by_name("c").ci_high == pytest.approx(1500.0)
    for name in ("a", "b"):
        assert pinned.by_name(name) == free.by_name(name)


def test_votes_given_as_rows_are_checked_and_refused_with_the_reason():
    names = ["a", "b", "c"]
    with pytest.raises(ValueError, match="^first, second and outcome must have the same length$"):
        PairCounts.from_indices(names, [0, 1], [1], [0])
    for first, second in (([-1], [1]), ([0], [3]), ([3], [-1])):  # below 0, at K, both ends
        with pytest.raises(ValueError, match="^generator index out of range$"):
            PairCounts.from_indices(names, first, second, [0])
    with pytest.raises(ValueError, match="^a vote compares a generator with itself$"):
        PairCounts.from_indices(names, [0, 2], [1, 2], [0, 0])
    for code in (3, -1):
        with pytest.raises(ValueError, match=r"^outcome codes are FIRST_WINS \(0\), SECOND_WINS \(1\) or TIE \(2\)$"):
            PairCounts.from_indices(names, [0, 1], [1, 2], [0, code])


def test_vote_rows_with_whole_number_float_indices_count_as_integers():
    # A table column that once held a missing value is float; whole-number indices still name generators.
    floats = PairCounts.from_indices(["a", "b", "c"], [0.0, 2.0, 1.0], [1.0, 1.0, 0.0], [0, 2, 1])
    assert floats.wins.tolist() == [[0, 2, 0], [0, 0, 0], [0, 0, 0]]  # a beat b as first, then as second
    assert floats.ties.tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 0]]
