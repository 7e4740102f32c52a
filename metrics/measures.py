"""Population measures over labels and embeddings: shares, discrepancy, KL, entropy, Vendi. Pure (numpy only).

Every measure over classes is taken over a *fixed* class list, the one the campaign states, not over
the classes that happen to be seen: PopAlign's released evaluation counts only predicted labels, so
a class that never appears drops out and its discrepancy is understated; here a never-seen class
counts as a share of 0.

Images a classifier could not place ("none of these", e.g. no person in the picture) are left out
of the shares: the shares are over the images that were counted. With no image counted the shares
and everything derived from them are None.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

T = TypeVar("T")


@dataclass(frozen=True)
class ClassMeasures:
    """What one set of labels says about one attribute; None where nothing was counted."""

    counts: dict[str, int]
    counted: int
    shares: dict[str, float] | None
    discrepancy: float | None
    kl: float | None
    entropy: float | None
    distinct: int
    effective: float | None

    def as_dict(self) -> dict[str, object]:
        return {
            "counts": self.counts,
            "counted": self.counted,
            "shares": self.shares,
            "discrepancy": self.discrepancy,
            "kl": self.kl,
            "entropy": self.entropy,
            "distinct": self.distinct,
            "effective": self.effective,
        }


def uniform(classes: Sequence[str]) -> dict[str, float]:
    return {name: 1.0 / len(classes) for name in classes}


def count(labels: Iterable[str | None], classes: Sequence[str]) -> dict[str, int]:
    """How many labels fall in each class, in class-list order; None and unknown labels are not counted."""
    counts = dict.fromkeys(classes, 0)
    for label in labels:
        if label in counts:
            counts[label] += 1
    return counts


def shares_of(counts: Mapping[str, int]) -> dict[str, float] | None:
    total = sum(counts.values())
    if total == 0:
        return None
    return {name: n / total for name, n in counts.items()}


def discrepancy(shares: Mapping[str, float], target: Mapping[str, float]) -> float:
    """PopAlign's discrepancy: the L2 distance between the shares and the target over the class list."""
    return math.sqrt(sum((shares.get(name, 0.0) - want) ** 2 for name, want in target.items()))


def kl_divergence(shares: Mapping[str, float], target: Mapping[str, float]) -> float:
    """KL(shares || target) in nats; a class with share 0 adds nothing. The target must be positive everywhere."""
    return sum(p * math.log(p / target[name]) for name, p in shares.items() if p > 0)


def entropy(shares: Mapping[str, float]) -> float:
    """Shannon entropy of the shares in nats."""
    return -sum(p * math.log(p) for p in shares.values() if p > 0)


def normalised_entropy(shares: Mapping[str, float]) -> float:
    """Entropy divided by log K (K the size of the class list): 0 for one class only, 1 for uniform."""
    return entropy(shares) / math.log(len(shares)) if len(shares) > 1 else 0.0


def class_measures(
    labels: Iterable[str | None], classes: Sequence[str], target: Mapping[str, float] | None = None
) -> ClassMeasures:
    """Every class-based measure of one attribute for one set of labels (a population, or several pooled)."""
    return measures_from_counts(count(labels, classes), target)


def measures_from_counts(counts: Mapping[str, int], target: Mapping[str, float] | None = None) -> ClassMeasures:
    counts = dict(counts)
    goal = dict(target) if target is not None else uniform(list(counts))
    shares = shares_of(counts)
    return ClassMeasures(
        counts=counts,
        counted=sum(counts.values()),
        shares=shares,
        discrepancy=discrepancy(shares, goal) if shares is not None else None,
        kl=kl_divergence(shares, goal) if shares is not None else None,
        entropy=normalised_entropy(shares) if shares is not None else None,
        distinct=sum(1 for n in counts.values() if n > 0),
        effective=math.exp(entropy(shares)) if shares is not None else None,
    )


def vendi_score(embeddings: np.ndarray) -> float:
    """The Vendi score of a set: exp of the Shannon entropy of the eigenvalues of K/n, K the cosine kernel.

    1 for n identical items, n for n mutually orthogonal ones. Rows are normalised here, so any
    feature vectors will do; a zero row is refused. Vendi is biased low on small sets (Vendi-Score
    issue #8): compare only sets of the same size.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"embeddings must be a non-empty (n, d) array, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError("an embedding is all zeros: its similarity to anything is undefined")
    x = x / norms
    # The eigenvalues of X X^T / n equal those of X^T X / n apart from zeros; take the smaller matrix.
    gram = x @ x.T if x.shape[0] <= x.shape[1] else x.T @ x
    eigenvalues = np.linalg.eigvalsh(gram / len(x))
    eigenvalues = eigenvalues[eigenvalues > 1e-12]
    return float(np.exp(-np.sum(eigenvalues * np.log(eigenvalues))))


def clip_score(image_embeddings: np.ndarray, text_embedding: np.ndarray) -> float:
    """Mean CLIP score of a set: 100 x cosine of each image with the caption, floored at 0 (Hessel et al. 2021)."""
    images = np.asarray(image_embeddings, dtype=np.float64)
    text = np.asarray(text_embedding, dtype=np.float64).reshape(-1)
    cosines = (images / np.linalg.norm(images, axis=1, keepdims=True)) @ (text / np.linalg.norm(text))
    return float(np.mean(100.0 * np.maximum(cosines, 0.0)))


def bootstrap_interval(
    groups: Sequence[T],
    statistic: Callable[[list[T]], float | None],
    *,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float] | None:
    """A percentile interval for `statistic(sample)` over resamples of `groups` with replacement.

    `groups` are the units resampled (prompts: images of one prompt are not independent of each
    other), `statistic` maps a list of groups to a float or None. None when there are under two
    groups or no resample gives a value.
    """
    if len(groups) < 2:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        picks = rng.integers(0, len(groups), size=len(groups))
        value = statistic([groups[i] for i in picks])
        if value is not None:
            values.append(value)
    if not values:
        return None
    low, high = np.percentile(values, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(low), float(high)


def wilson_interval(successes: int, trials: int, *, z: float = 1.96) -> tuple[float, float] | None:
    """The Wilson score interval for a share (good at small counts and near 0 or 1); None with no trials."""
    if trials == 0:
        return None
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None under three pairs or with a constant side."""
    if len(xs) != len(ys):
        raise ValueError("spearman needs two sequences of the same length")
    if len(xs) < 3:
        return None
    rx, ry = _ranks(xs), _ranks(ys)
    if np.std(rx) == 0 or np.std(ry) == 0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


def _ranks(values: Sequence[float]) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values), dtype=np.float64)
    array = np.asarray(values, dtype=np.float64)
    for value in np.unique(array):
        tied = array == value
        ranks[tied] = ranks[tied].mean()
    return ranks
