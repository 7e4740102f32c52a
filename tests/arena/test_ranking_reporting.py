"""What the ranking core reports: JSON rows, the separation note word for word, heatmaps, input readers and errors.

Expected values are written out by hand from the documented rules, not computed with the core's helpers.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

import numpy as np
import pytest

from arena.ranking import PairCounts, Standing, expected_win_rates, fit_ratings, rank_from_intervals, win_rate_matrix


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


def refused(message: str) -> pytest.RaisesExc[ValueError]:
    """A ValueError with exactly this message (not merely one that contains it)."""
    return pytest.raises(ValueError, match=f"^{re.escape(message)}$")


def test_bad_tables_are_refused_with_the_exact_reason_of_each_check():
    zeros = np.zeros((2, 2))
    with refused("generator names must be unique"):
        PairCounts(("a", "a"), zeros, zeros)
    # The shape is checked for each table on its own, and an empty table is no pass for a non-empty one.
    with refused("wins and ties must be 2 x 2 for 2 generators"):
        PairCounts(("a", "b"), np.zeros((3, 3)), zeros)
    with refused("wins and ties must be 2 x 2 for 2 generators"):
        PairCounts(("a", "b"), zeros, np.zeros((3, 3)))
    with refused("wins and ties must be 0 x 0 for 0 generators"):
        PairCounts((), np.zeros((1, 1)), np.zeros((0, 0)))
    with refused("wins and ties must be 0 x 0 for 0 generators"):
        PairCounts((), np.zeros((1, 1)), np.zeros((1, 1)))
    with refused("wins must be finite and non-negative"):
        PairCounts(("a", "b"), [[0, -1], [0, 0]], zeros)
    with refused("ties must be finite and non-negative"):
        PairCounts(("a", "b"), zeros, [[0, math.inf], [math.inf, 0]])
    with refused("wins has a generator compared with itself (non-zero diagonal)"):
        PairCounts(("a", "b"), [[1, 0], [0, 0]], zeros)
    with refused("ties has a generator compared with itself (non-zero diagonal)"):
        PairCounts(("a", "b"), zeros, [[0, 0], [0, 2]])
    with refused("ties must be symmetric: a tie between i and j is one tie for both"):
        PairCounts(("a", "b"), zeros, [[0, 1], [0, 0]])
    with refused("matrix is smaller than half the ties somewhere: it must already include them"):
        PairCounts.from_matrix(["a", "b"], [[0, 0.5], [1.5, 0]], ties=[[0, 2], [2, 0]])


def test_no_generators_may_come_as_empty_lists_of_any_shape():
    counts = PairCounts((), [], [])
    assert counts.size == 0
    assert counts.wins.shape == counts.ties.shape == (0, 0)


def test_a_table_is_kept_as_a_read_only_float_copy_and_names_as_strings():
    # Given names and whole-number counts as plain lists,
    wins = [[0, 3], [1, 0]]
    ties = np.array([[0, 2], [2, 0]])
    counts = PairCounts([1, 2], wins, ties)  # type: ignore[arg-type]
    # then the names are a tuple of strings and the tables float arrays, copied and frozen.
    assert counts.names == ("1", "2")
    assert counts.wins.dtype == counts.ties.dtype == np.float64
    assert counts.wins.tolist() == [[0.0, 3.0], [1.0, 0.0]]
    ties[0, 1] = ties[1, 0] = 7
    assert counts.ties.tolist() == [[0.0, 2.0], [2.0, 0.0]]
    for table in (counts.wins, counts.ties):
        assert not table.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            table[0, 1] = 5.0


def test_bad_fit_arguments_are_refused_with_the_exact_reason_and_the_limits_are_exclusive():
    counts = PairCounts.from_tallies(["a", "b"], [("a", "b", 3, 2, 1)])
    with refused("intervals must be one of bootstrap, sandwich, not 'fisher'"):
        fit_ratings(counts, intervals="fisher")
    with refused("bootstrap rounds must be >= 0"):
        fit_ratings(counts, bootstrap=-1)
    for level in (0.0, 1.0, 1.5, -0.5):
        with refused("level must be between 0 and 1"):
            fit_ratings(counts, level=level, bootstrap=0)
    for prior in (0.0, -1.0, math.inf, math.nan):
        with refused("prior must be a positive number"):
            fit_ratings(counts, prior=prior, bootstrap=0)
    with refused("anchor generator 'zz' is not among the generators"):
        fit_ratings(counts, anchor=("zz", 1000.0))
    with refused("anchor rating must be a finite number"):
        fit_ratings(counts, anchor=("a", math.nan))
    # Just inside the limits is accepted.
    assert fit_ratings(counts, level=0.5, prior=1e-9, bootstrap=0).level == 0.5


def test_a_leaderboard_records_its_arguments_and_by_default_a_reproducible_seed():
    counts = PairCounts.from_tallies(["a", "b", "c"], [("a", "b", 3, 2, 1), ("b", "c", 2, 2, 0)])
    board = fit_ratings(counts, bootstrap=50)
    assert (board.seed, board.level, board.bootstrap_rounds, board.anchor) == (0, 0.95, 50, None)
    assert board.total_votes == 10.0  # 3 + 2 + 1 votes between a and b, 2 + 2 between b and c
    assert board.as_rows() == fit_ratings(counts, bootstrap=50, seed=0).as_rows()
    pinned = fit_ratings(counts, bootstrap=0, level=0.8, anchor=("b", 1100.0))
    assert (pinned.level, pinned.anchor) == (0.8, ("b", 1100.0))


def test_sandwich_intervals_draw_no_rounds_and_say_none_was_separated():
    counts = PairCounts.from_tallies(["a", "b", "c"], [("a", "b", 3, 2, 1), ("b", "c", 2, 2, 0)])
    board = fit_ratings(counts, intervals="sandwich")
    assert (board.bootstrap_rounds, board.separated_rounds, board.seed) == (0, 0, None)
    assert board.notes == ()
    assert board.prior is None


def test_each_standing_counts_its_votes_wins_losses_and_ties():
    counts = PairCounts.from_tallies(["a", "b", "c"], [("a", "b", 3, 1, 2), ("a", "c", 0, 4, 0)])
    board = fit_ratings(counts, bootstrap=0)
    a = board.by_name("a")
    assert (a.votes, a.wins, a.losses, a.ties) == (10.0, 3.0, 5.0, 2.0)  # 3 + 0 won, 1 + 4 lost
    b = board.by_name("b")
    assert (b.votes, b.wins, b.losses, b.ties) == (6.0, 1.0, 3.0, 2.0)


def test_a_generator_with_a_single_vote_is_rated():
    # c's only vote is a tie with a: it counts as a comparison, so c is rated, with a finite interval.
    counts = PairCounts.from_tallies(["a", "b", "c"], [("a", "b", 3, 2, 0), ("a", "c", 0, 0, 1)])
    board = fit_ratings(counts, intervals="sandwich")
    c = board.by_name("c")
    assert c.rated
    assert math.isfinite(c.ci_low)
    assert math.isfinite(c.ci_high)
    assert board.notes == ()


def test_standings_of_one_rank_are_ordered_by_rating_best_first():
    # b beat a 3-2: overlapping intervals give both rank 1, and b (rated higher) comes first though a sorts first.
    counts = PairCounts.from_tallies(["a", "b"], [("a", "b", 2, 3, 0)])
    board = fit_ratings(counts, intervals="sandwich")
    assert [(s.name, s.rank) for s in board.standings] == [("b", 1), ("a", 1)]


def test_an_unrated_anchor_gets_the_anchor_rating_exactly_wherever_it_stands():
    # Given an anchor with no votes listed first (0.1 is not 1000 + (0.1 - 1000) in floating point),
    counts = PairCounts.from_tallies(["z", "a", "b"], [("a", "b", 3, 2, 0)])
    for intervals in ("bootstrap", "sandwich"):
        board = fit_ratings(counts, bootstrap=20, anchor=("z", 0.1), intervals=intervals)
        z = board.by_name("z")
        assert z.rating == 0.1
        assert (z.ci_low, z.ci_high) == (-math.inf, math.inf)


def test_an_anchor_in_the_second_unrated_part_is_found():
    # Two generators without votes make two one-generator parts after (a, b); the anchor is the last.
    counts = PairCounts.from_tallies(["a", "b", "c", "d"], [("a", "b", 3, 2, 0)])
    board = fit_ratings(counts, bootstrap=20, anchor=("d", 1500.0))
    assert board.by_name("d").rating == 1500.0
    assert board.parts == 3


def test_an_anchor_listed_first_collapses_its_own_bootstrap_interval():
    counts = PairCounts.from_tallies(["a", "b", "c"], [("a", "b", 3, 2, 1), ("b", "c", 4, 2, 0)])
    board = fit_ratings(counts, bootstrap=100, seed=2, anchor=("a", 1200.0))
    a = board.by_name("a")
    assert (a.rating, a.ci_low, a.ci_high) == pytest.approx((1200.0, 1200.0, 1200.0), abs=1e-9)
    assert board.by_name("c").ci_high - board.by_name("c").ci_low > 10


def test_the_coverage_notes_word_for_word():
    assert fit_ratings(PairCounts.empty(["a", "b"])).notes == (
        "no votes yet: every generator is unrated (rating 1000 by convention, unbounded interval)",
    )
    # One rated part and two generators without votes: they are named, and they make no disconnected parts.
    lonely = PairCounts.from_tallies(["a", "b", "c", "d"], [("a", "b", 3, 2, 0)])
    assert fit_ratings(lonely, bootstrap=0).notes == (
        "no votes yet for c, d: rating 1000 by convention, unbounded interval",
    )
    split = PairCounts.from_tallies(["a", "b", "c", "d"], [("a", "b", 3, 2, 0), ("c", "d", 1, 1, 0)])
    assert fit_ratings(split, bootstrap=0).notes == (
        "the comparison graph has 2 disconnected parts: ratings are comparable only within a part (each part is "
        "centred on 1000 unless it holds the anchor) and ranks are within the part",
    )


def test_ranks_count_only_intervals_wholly_above_and_are_integers():
    # Touching intervals and point intervals (no bootstrap) overlap: nobody is above anybody.
    assert rank_from_intervals([1.0, 2.0], [2.0, 3.0]).tolist() == [1, 1]
    assert rank_from_intervals([5.0, 5.0, 4.0], [5.0, 5.0, 4.0]).tolist() == [1, 1, 3]
    assert rank_from_intervals([1.0, 2.5], [2.0, 3.0]).dtype == np.int64
