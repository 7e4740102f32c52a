"""The pure measures, on hand-made distributions and embeddings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metrics import measures

COLOURS = ["red", "green", "blue", "white"]


def test_shares_are_over_the_fixed_class_list_and_a_class_never_seen_counts_as_zero() -> None:
    result = measures.class_measures(["red", "red", "red", "green", None, "purple"], COLOURS)

    assert result.counts == {"red": 3, "green": 1, "blue": 0, "white": 0}
    assert result.counted == 4, "None and labels outside the list are not counted"
    assert result.shares == {"red": 0.75, "green": 0.25, "blue": 0.0, "white": 0.0}
    assert result.distinct == 2


def test_discrepancy_is_popalign_l2_to_the_target() -> None:
    # Shares (0.75, 0.25, 0, 0) against uniform 0.25: differences 0.5, 0, -0.25, -0.25.
    result = measures.class_measures(["red"] * 3 + ["green"], COLOURS)
    assert result.discrepancy == pytest.approx(math.sqrt(0.25 + 0 + 0.0625 + 0.0625))

    # A population that matches its target has no discrepancy and no divergence.
    uniform = measures.class_measures(COLOURS * 2, COLOURS)
    assert uniform.discrepancy == pytest.approx(0.0)
    assert uniform.kl == pytest.approx(0.0)
    assert uniform.entropy == pytest.approx(1.0)
    assert uniform.effective == pytest.approx(4.0)


def test_kl_to_a_stated_target() -> None:
    target = {"red": 0.5, "green": 0.3, "blue": 0.1, "white": 0.1}
    labels = ["red"] * 7 + ["green"] * 3

    result = measures.class_measures(labels, COLOURS, target)

    assert result.kl == pytest.approx(0.7 * math.log(0.7 / 0.5) + 0.3 * math.log(0.3 / 0.3))
    assert result.discrepancy == pytest.approx(math.sqrt(0.2**2 + 0 + 0.1**2 + 0.1**2))


def test_all_red_has_zero_entropy_one_effective_class() -> None:
    result = measures.class_measures(["red"] * 6, COLOURS)

    assert result.entropy == pytest.approx(0.0)
    assert result.effective == pytest.approx(1.0)
    assert result.kl == pytest.approx(math.log(4))


def test_nothing_counted_gives_no_shares_rather_than_zeros() -> None:
    result = measures.class_measures([None, None], COLOURS)

    assert result.shares is None
    assert result.discrepancy is None
    assert result.kl is None
    assert result.counted == 0


def test_vendi_of_identical_embeddings_is_one_and_of_k_orthogonal_ones_is_k() -> None:
    same = np.tile([[0.3, -1.0, 2.0]], (5, 1))
    assert measures.vendi_score(same) == pytest.approx(1.0)

    for k in (2, 4, 7):
        assert measures.vendi_score(np.eye(k) * 3.0) == pytest.approx(k)

    # Two groups of identical items, orthogonal to each other: two effective items.
    halves = np.array([[1.0, 0.0]] * 3 + [[0.0, 1.0]] * 3)
    assert measures.vendi_score(halves) == pytest.approx(2.0)


def test_vendi_refuses_an_all_zero_embedding() -> None:
    with pytest.raises(ValueError, match="all zeros"):
        measures.vendi_score(np.array([[1.0, 0.0], [0.0, 0.0]]))


def test_clip_score_is_100_cosine_floored_at_zero() -> None:
    images = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])

    assert measures.clip_score(images, np.array([1.0, 0.0])) == pytest.approx((100 + 0 + 0) / 3)


def test_wilson_interval_brackets_the_share() -> None:
    low, high = measures.wilson_interval(8, 10) or (0, 0)

    assert low < 0.8 < high
    assert 0.4 < low < 0.5
    assert measures.wilson_interval(0, 0) is None


def test_spearman_of_the_same_order_is_one_and_of_the_reverse_minus_one() -> None:
    assert measures.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert measures.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert measures.spearman([1, 2], [1, 2]) is None


def test_bootstrap_interval_over_groups_contains_the_mean() -> None:
    groups = [[0.1], [0.2], [0.3], [0.4], [0.5]]

    low, high = measures.bootstrap_interval(groups, lambda gs: float(np.mean([g[0] for g in gs]))) or (0, 0)

    assert low < 0.3 < high
    assert low >= 0.1
    assert high <= 0.5
    assert measures.bootstrap_interval([[1.0]], lambda gs: 1.0) is None


def test_spearman_with_ties_on_a_non_linear_relation_matches_scipy() -> None:
    from scipy.stats import rankdata, spearmanr

    # Ties on both sides and a relation far from linear, so mid-ranks, minimum ranks and Pearson
    # on the raw values all give different answers.
    xs = [1.0, 2.0, 2.0, 2.0, 3.0, 5.0, 5.0, 8.0, 13.0, 13.0, 40.0]
    ys = [900.0, 0.1, 0.1, 3.0, 3.0, 3.0, 7.0, 50.0, 2.0, 900.0, 0.5]
    expected = spearmanr(xs, ys).statistic
    by_minimum = float(np.corrcoef(rankdata(xs, "min"), rankdata(ys, "min"))[0, 1])

    assert measures.spearman(xs, ys) == pytest.approx(expected, abs=1e-12)
    assert measures.spearman(list(reversed(xs)), list(reversed(ys))) == pytest.approx(expected, abs=1e-12)
    # Ties ranked by their minimum, or Pearson on the raw values, would be caught.
    assert abs(expected - by_minimum) > 0.1
    assert abs(expected - float(np.corrcoef(xs, ys)[0, 1])) > 0.1
