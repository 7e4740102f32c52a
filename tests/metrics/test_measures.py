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
    with pytest.raises(ValueError, match="^an embedding is all zeros: its similarity to anything is undefined$"):
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


# Tests written against mutation testing (scripts/mutation measures): each tells the rule apart from a
# plausible slip in it, with the expected value derived on its own.


def test_as_dict_carries_every_measure_under_its_name() -> None:
    result = measures.class_measures(["red", "red", "green", None], COLOURS)

    assert result.as_dict() == {
        "counts": {"red": 2, "green": 1, "blue": 0, "white": 0},
        "counted": 3,
        "shares": {"red": 2 / 3, "green": 1 / 3, "blue": 0.0, "white": 0.0},
        "discrepancy": result.discrepancy,
        "kl": result.kl,
        "entropy": result.entropy,
        "distinct": 2,
        "effective": result.effective,
    }
    # Shares (2/3, 1/3, 0, 0): entropy H = log 3 - (2/3) log 2, effective classes e^H, normalised H / log 4.
    h = math.log(3) - (2 / 3) * math.log(2)
    assert result.entropy == pytest.approx(h / math.log(4))
    assert result.effective == pytest.approx(math.exp(h))
    assert result.kl == pytest.approx(math.log(4) - h)  # KL to uniform is log K - H


def test_a_class_missing_from_the_shares_counts_as_zero_against_the_target() -> None:
    # Red 1 against 0.2, green (absent) 0 against 0.8.
    assert measures.discrepancy({"red": 1.0}, {"red": 0.2, "green": 0.8}) == pytest.approx(math.sqrt(2 * 0.64))
    assert measures.shares_of({"red": 0, "green": 0}) is None
    assert measures.shares_of({"red": 1, "green": 3}) == {"red": 0.25, "green": 0.75}


def test_a_one_class_list_has_normalised_entropy_zero_and_an_even_two_class_one_entropy_one() -> None:
    result = measures.class_measures(["red", "red"], ["red"])

    assert (result.entropy, result.effective, result.discrepancy, result.kl) == (0.0, 1.0, 0.0, 0.0)
    assert measures.class_measures(["red", "green"], ["red", "green"]).entropy == pytest.approx(1.0)


def test_float32_embeddings_as_clip_gives_them_are_measured_in_double_precision() -> None:
    rng = np.random.default_rng(1)
    # Identical float32 items: rounding in single precision would leave eigenvalues of 1e-8 and a Vendi above 1.
    same = np.tile(np.array([[0.3, -1.0, 2.0, 0.7]], dtype=np.float32), (6, 1))
    assert measures.vendi_score(same) == pytest.approx(1.0, abs=1e-12)

    images = rng.normal(size=(4, 16)).astype(np.float32)
    caption = rng.normal(size=16).astype(np.float32)
    cosines = []
    for image in images.astype(np.float64):
        dot = sum(float(a) * float(b) for a, b in zip(image, caption.astype(np.float64), strict=True))
        cosines.append(
            dot / (math.sqrt(sum(float(a) ** 2 for a in image)) * math.sqrt(sum(float(b) ** 2 for b in caption)))
        )
    assert measures.clip_score(images, caption) == pytest.approx(sum(100 * max(c, 0.0) for c in cosines) / 4, rel=1e-12)


def test_vendi_of_two_items_at_a_known_angle_and_of_random_sets_matches_the_eigenvalues_of_k_over_n() -> None:
    # Two unit vectors with cosine c: K / 2 has eigenvalues (1 + c) / 2 and (1 - c) / 2.
    c = 0.6
    a, b = (1 + c) / 2, (1 - c) / 2
    pair = np.array([[2.0, 0.0], [c * 5, math.sqrt(1 - c * c) * 5]])
    assert measures.vendi_score(pair) == pytest.approx(math.exp(-(a * math.log(a) + b * math.log(b))))

    rng = np.random.default_rng(0)
    for n, d in ((3, 8), (8, 3), (5, 5)):  # fewer items than features, more, as many
        x = rng.normal(size=(n, d))
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        eigenvalues = np.linalg.eigvals(unit @ unit.T / n).real
        eigenvalues = eigenvalues[eigenvalues > 1e-9]
        assert measures.vendi_score(x) == pytest.approx(math.exp(-np.sum(eigenvalues * np.log(eigenvalues))))


def test_vendi_refuses_what_is_not_a_non_empty_matrix_naming_the_shape() -> None:
    for bad, shape in ((np.zeros((0, 3)), r"\(0, 3\)"), (np.ones(4), r"\(4,\)"), (np.ones((2, 2, 2)), r"\(2, 2, 2\)")):
        with pytest.raises(ValueError, match=rf"^embeddings must be a non-empty \(n, d\) array, got shape {shape}$"):
            measures.vendi_score(bad)


def test_clip_score_normalises_images_and_caption_and_scales_cosines_by_100() -> None:
    # Cosines with the caption: 0.6, 1.0 and -0.8 (floored to 0); lengths 5, 2, 10 and the caption's 3 must not matter.
    images = np.array([[3.0, 4.0], [0.0, 2.0], [-6.0, -8.0]])
    caption = np.array([[0.0, 3.0]])
    assert measures.clip_score(images, caption) == pytest.approx((80.0 + 100.0 + 0.0) / 3)


def wilson_by_quadratic(successes: int, trials: int, z: float) -> tuple[float, float]:
    """Wilson's interval as the roots of (p_hat - p)^2 = z^2 p (1 - p) / n, solved by numpy."""
    p_hat = successes / trials
    k = z * z / trials
    roots = np.roots([1 + k, -(2 * p_hat + k), p_hat * p_hat])
    low, high = sorted(float(r.real) for r in roots)
    return low, high


@pytest.mark.parametrize(("successes", "trials", "z"), [(8, 10, 1.96), (3, 40, 1.96), (1, 3, 2.576), (0, 10, 1.96)])
def test_wilson_interval_is_the_root_pair_of_its_quadratic(successes: int, trials: int, z: float) -> None:
    low, high = measures.wilson_interval(successes, trials, z=z) or (math.nan, math.nan)

    expected_low, expected_high = wilson_by_quadratic(successes, trials, z)
    assert low == pytest.approx(max(0.0, expected_low), abs=1e-12)
    assert high == pytest.approx(expected_high, abs=1e-12)


def test_wilson_interval_stays_within_0_and_1_at_the_extremes() -> None:
    assert measures.wilson_interval(0, 5) == (0.0, pytest.approx(wilson_by_quadratic(0, 5, 1.96)[1]))
    low, high = measures.wilson_interval(5, 5) or (math.nan, math.nan)
    assert high == 1.0
    assert low == pytest.approx(wilson_by_quadratic(5, 5, 1.96)[0])


def test_spearman_needs_three_pairs_of_equal_length_and_variation_on_both_sides() -> None:
    with pytest.raises(ValueError, match="^spearman needs two sequences of the same length$"):
        measures.spearman([1, 2, 3], [1, 2])
    assert measures.spearman([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)  # 1 - 6 * 2 / (3 * 8)
    assert measures.spearman([1, 1, 1, 1], [1, 2, 3, 4]) is None
    assert measures.spearman([1, 2, 3, 4], [7, 7, 7, 7]) is None


def test_bootstrap_interval_takes_the_percentiles_of_the_resampled_statistic_at_its_level() -> None:
    # Ten groups of one continuous value each: resampled means rarely repeat, so percentiles interpolate.
    groups = [[float(x)] for x in np.random.default_rng(11).normal(size=10)]

    def mean(gs: list[list[float]]) -> float:
        return float(np.mean([g[0] for g in gs]))

    # The same resampling on its own: each resample draws len(groups) indices with replacement.
    rng = np.random.default_rng(5)
    values = [mean([groups[i] for i in rng.integers(0, 10, size=10)]) for _ in range(400)]
    for level in (0.95, 0.8):
        tail = 100 * (1 - level) / 2
        expected = (np.percentile(values, tail), np.percentile(values, 100 - tail))
        interval = measures.bootstrap_interval(groups, mean, resamples=400, seed=5, level=level)
        assert interval == pytest.approx(expected)
    # Unless told otherwise: 1000 resamples from seed 0, the same interval every time.
    assert measures.bootstrap_interval(groups, mean) == measures.bootstrap_interval(
        groups, mean, resamples=1000, seed=0, level=0.95
    )
    # Two groups are enough to resample.
    assert measures.bootstrap_interval([[0.0], [1.0]], mean, resamples=50) is not None


def test_bootstrap_interval_skips_resamples_without_a_value_and_gives_none_when_none_has_one() -> None:
    groups = [[0.0], [1.0], [2.0]]

    def mean_without_zero(gs: list[list[float]]) -> float | None:
        # No value for a resample that drew the first group: only resamples of 1s and 2s count.
        return None if any(g[0] == 0.0 for g in gs) else float(np.mean([g[0] for g in gs]))

    low, high = measures.bootstrap_interval(groups, mean_without_zero, resamples=300) or (math.nan, math.nan)
    assert 1.0 <= low < high <= 2.0
    assert measures.bootstrap_interval(groups, lambda gs: None) is None
