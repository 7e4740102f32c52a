"""arena.batched_fits gives fit_ratings' answers, and the group test built on it keeps its definition."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arena.batched_fits import fit_many, loglik
from arena.groups import ParticipantVotes, compare_groups
from arena.ranking import ELO_MEAN, ELO_PER_NAT, PairCounts, fit_ratings

NAMES = ("a", "b", "c", "d", "e")


def reference(matrix: np.ndarray, names: tuple[str, ...] = NAMES) -> tuple[np.ndarray, np.ndarray, float]:
    """fit_ratings' strengths (nats), rated generators, and the log-likelihood at them, one table at a time."""
    board = fit_ratings(PairCounts.from_matrix(names, matrix), bootstrap=0)
    strengths = np.array([(board.by_name(n).rating - ELO_MEAN) / ELO_PER_NAT for n in names])
    rated = np.array([board.by_name(n).rated for n in names])
    d = strengths[:, None] - strengths[None, :]
    return strengths, rated, float(-(matrix * np.logaddexp(0.0, -d)).sum())


def table(rng: np.random.Generator, votes: int, spread: float, ties: float, k: int = 5) -> np.ndarray:
    strengths = rng.normal(0, spread, k)
    m = np.zeros((k, k))
    for _ in range(votes):
        i, j = rng.choice(k, 2, replace=False)
        if rng.random() < ties:
            m[i, j] += 0.5
            m[j, i] += 0.5
        elif rng.random() < 1 / (1 + np.exp(strengths[j] - strengths[i])):
            m[i, j] += 1
        else:
            m[j, i] += 1
    return m


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    votes=st.integers(0, 120),
    spread=st.sampled_from([0.0, 1.0, 4.0]),
    ties=st.sampled_from([0.0, 0.3, 1.0]),
)
def test_every_table_gets_fit_ratings_strengths_and_loglikelihood(seed, votes, spread, ties):  # type: ignore[no-untyped-def]
    # Tables from none to many votes: empty, disconnected, separated (a generator that only won), ties only, and
    # the common connected case; a batch of 6 mixes them.
    rng = np.random.default_rng(seed)
    batch = np.stack([table(rng, int(rng.integers(0, votes + 1)), spread, ties) for _ in range(6)])

    fits = fit_many(batch, NAMES)

    for b, matrix in enumerate(batch):
        strengths, rated, value = reference(matrix)
        assert np.array_equal(fits.rated[b], rated)
        # 1e-6 Elo is fit_ratings' own precision (arena.ranking's docstring).
        assert np.allclose(fits.strengths[b] * ELO_PER_NAT, strengths * ELO_PER_NAT, atol=1e-6)
        assert fits.loglik[b] == pytest.approx(value, rel=1e-9, abs=1e-9)
    ratings = fits.ratings()
    assert np.all(np.isnan(ratings) == ~fits.rated)


def test_a_hand_computed_two_generator_fit():
    # Given a beat b 3 times and lost once (and one tie: half a win each way): 3.5 against 1.5, so the MLE odds
    # are 3.5 / 1.5 and the strengths +-ln(7/3)/2 around their mean; c has no votes.
    m = np.zeros((3, 3))
    m[0, 1], m[1, 0] = 3.5, 1.5

    fits = fit_many(m[None], ("a", "b", "c"))

    half = np.log(7 / 3) / 2
    assert fits.strengths[0] == pytest.approx([half, -half, 0.0])
    assert list(fits.rated[0]) == [True, True, False]
    p = 1 / (1 + np.exp(-2 * half))
    assert fits.loglik[0] == pytest.approx(3.5 * np.log(p) + 1.5 * np.log(1 - p))
    assert loglik(m[None], fits.strengths)[0] == pytest.approx(fits.loglik[0])


def test_separated_tables_get_fit_ratings_prior_not_an_infinite_strength():
    # a only ever won: no finite MLE; fit_ratings adds its prior between the strongly connected groups.
    m = np.array([[0.0, 4.0, 3.0], [0.0, 0.0, 2.0], [0.0, 1.0, 0.0]])

    fits = fit_many(m[None], ("a", "b", "c"))

    strengths, _, value = reference(m, ("a", "b", "c"))
    assert np.all(np.isfinite(fits.strengths))
    assert fits.strengths[0] == pytest.approx(strengths, abs=1e-8)
    assert fits.loglik[0] == pytest.approx(value)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="B x 3 x 3"):
        fit_many(np.zeros((3, 3)), ("a", "b", "c"))


def test_the_group_statistic_is_the_likelihood_ratio_of_fit_ratings_fits():
    # Derived independently of the batched path: one fit_ratings fit per group and one on everyone, their
    # log-likelihoods at the fitted strengths, twice the difference.
    rng = np.random.default_rng(5)
    rows = []
    for person in range(24):
        taste = np.array([1.0, 0.0, -1.0]) * (1 if person < 12 else -1) + rng.normal(0, 0.5, 3)
        for _ in range(8):
            i, j = rng.choice(3, 2, replace=False)
            outcome = 0 if rng.random() < 1 / (1 + np.exp(taste[j] - taste[i])) else 1
            rows.append((f"p{person:02d}", "abc"[i], "abc"[j], outcome))
    votes = ParticipantVotes.from_rows(("a", "b", "c"), rows)
    labels = ["x" if int(who[1:]) < 12 else "y" for who in votes.participants]

    result = compare_groups(votes, labels, permutations=19, rounds=0, seed=1)

    def fitted_loglik(members: list[int]) -> float:
        multiplicity = np.zeros(votes.size)
        multiplicity[members] = 1
        matrix = votes.counts(multiplicity).matrix
        return reference(matrix, ("a", "b", "c"))[2]

    x = [i for i, label in enumerate(labels) if label == "x"]
    y = [i for i, label in enumerate(labels) if label == "y"]
    expected = 2 * (fitted_loglik(x) + fitted_loglik(y) - fitted_loglik(x + y))
    assert result.statistic == pytest.approx(expected, rel=1e-9)
    assert result.statistic > 10  # opposite tastes: far from the null
    assert result.p_value == pytest.approx(1 / 20)
