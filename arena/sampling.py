"""Pure pair sampling: which two generators a comparison shows next, and on which sides. No Django imports.

Policies (a campaign's `sampling_policy`):
- uniform: every pair of generators equally likely (what Chatbot Arena and GenAI-Arena do);
- balanced: the pairs with the fewest votes so far, ties broken at random, so every pair
  reaches the votes wanted at the same pace;
- active: pairs drawn with probability given by `active_weights`, which spends votes where the
  ranking is still uncertain (close ratings, wide intervals) and keeps a floor so no pair starves;
  without weights it falls back to `informativeness` (sorted) or to balanced.

Sides: `choose_sides` puts the generator that has been shown on the left more often on the right,
so every generator's left/right exposure stays balanced whatever the policy.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from statistics import NormalDist
from typing import Protocol

Pair = tuple[int, int]

# 400 Elo points per factor 10 of odds (as in arena.ranking, not imported: this module stays stand-alone).
_ELO_PER_NAT = 400.0 / math.log(10.0)
DEFAULT_EXPLORATION = 0.1


class RatedGenerator(Protocol):
    """What active sampling reads of a generator's standing; `arena.ranking.Standing` has it."""

    @property
    def rating(self) -> float: ...
    @property
    def ci_low(self) -> float: ...
    @property
    def ci_high(self) -> float: ...
    @property
    def votes(self) -> float: ...


def normalise(a: int, b: int) -> Pair:
    return (a, b) if a < b else (b, a)


def all_pairs(generators: Sequence[int]) -> list[Pair]:
    ids = sorted(set(generators))
    return [(a, b) for i, a in enumerate(ids) for b in ids[i + 1 :]]


def choose_pairs(
    generators: Sequence[int],
    votes: Mapping[Pair, int],
    *,
    policy: str,
    rng: random.Random,
    informativeness: Callable[[Pair], float] | None = None,
    allowed: Iterable[Pair] | None = None,
    weights: Mapping[Pair, float] | None = None,
) -> list[Pair]:
    """All candidate pairs in the order the policy prefers them (the caller takes the first it can serve).

    With `policy="active"` and `weights` (from `active_weights`), the order is a weighted random
    permutation: the first pair is drawn with probability proportional to its weight, the second
    from the rest, and so on. A pair missing from `weights` (a generator added since the last fit)
    gets the largest weight, so newcomers are compared early.
    """
    pairs = all_pairs(generators)
    if allowed is not None:
        allowed_set = {normalise(*p) for p in allowed}
        pairs = [p for p in pairs if p in allowed_set]
    rng.shuffle(pairs)  # random tie-breaks, before the stable sorts below
    if policy == "uniform":
        return pairs
    if policy == "active" and weights is not None:
        return _weighted_order(pairs, _complete(pairs, weights), rng)
    if policy == "active" and informativeness is not None:
        return sorted(pairs, key=lambda p: (-informativeness(p), votes.get(p, 0)))
    if policy in ("balanced", "active"):
        return sorted(pairs, key=lambda p: votes.get(p, 0))
    raise ValueError(f"unknown sampling policy {policy!r} (use uniform, balanced or active)")


def active_weights(
    standings: Mapping[int, RatedGenerator],
    *,
    exploration: float = DEFAULT_EXPLORATION,
    level: float = 0.95,
) -> dict[Pair, float]:
    """Probability of asking about each pair next, from the current fit (ratings and intervals at `level`).

    A pair's value is how much one more vote on it shrinks the standard error of the two ratings'
    difference (Fisher information p(1 - p) of a vote, added to the current precision), times how
    uncertain their order still is (2 * Phi(-|gap| / se), 1 for equal ratings, near 0 for clearly
    separated ones). Pairs with an unrated generator (no votes, unbounded interval), and pairs
    across disconnected parts (`part`, when the standings have it), get the top value. The values
    are normalised and mixed with a uniform share `exploration`, so every pair keeps at least
    exploration / (number of pairs) of the votes and no interval can freeze wrong.
    """
    if not 0 <= exploration <= 1:
        raise ValueError("exploration must be between 0 and 1")
    z = NormalDist().inv_cdf((1 + level) / 2)
    ids = sorted(standings)
    pairs = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1 :]]
    if not pairs:
        return {}
    value: dict[Pair, float] = {}
    unrated: list[Pair] = []
    for a, b in pairs:
        first, second = standings[a], standings[b]
        # A pair with an unrated generator, or across disconnected parts of the comparison graph
        # (whose ratings share no scale), is what the ranking needs most.
        if not (_rated(first) and _rated(second)) or getattr(first, "part", 0) != getattr(second, "part", 0):
            unrated.append((a, b))
            continue
        gap = (first.rating - second.rating) / _ELO_PER_NAT
        p = 0.5 * (1 + math.tanh(gap / 2))
        variance = _variance(first, z) + _variance(second, z)
        gain = math.sqrt(variance) - math.sqrt(1 / (1 / variance + p * (1 - p)))
        uncertainty = 2 * NormalDist().cdf(-abs(gap) / math.sqrt(variance))
        value[(a, b)] = gain * uncertainty
    top = max(value.values(), default=1.0) or 1.0
    for pair in unrated:
        value[pair] = top
    total = sum(value.values())
    share = 1 / len(pairs)
    if total <= 0:
        return dict.fromkeys(pairs, share)
    return {pair: (1 - exploration) * v / total + exploration * share for pair, v in value.items()}


def sample_pairs(weights: Mapping[Pair, float], count: int, rng: random.Random) -> list[Pair]:
    """`count` pairs drawn independently with probability proportional to `weights` (a batch plan or a simulation)."""
    pairs = sorted(weights)
    if not pairs or count <= 0:
        return []
    return rng.choices(pairs, weights=[weights[p] for p in pairs], k=count)


def choose_sides(pair: Pair, left: Mapping[int, int], right: Mapping[int, int], rng: random.Random) -> Pair:
    """(left, right) for a comparison of `pair`, given how often each generator was shown on each side.

    The generator with the larger left-minus-right count goes right; when both lean the same, a
    coin decides, so sides carry no information about which generator is which.
    """
    a, b = pair
    lean_a = left.get(a, 0) - right.get(a, 0)
    lean_b = left.get(b, 0) - right.get(b, 0)
    if lean_a > lean_b:
        return (b, a)
    if lean_b > lean_a:
        return (a, b)
    return (a, b) if rng.random() < 0.5 else (b, a)


def _rated(standing: RatedGenerator) -> bool:
    return standing.votes > 0 and math.isfinite(standing.ci_low) and math.isfinite(standing.ci_high)


def _variance(standing: RatedGenerator, z: float) -> float:
    se = (standing.ci_high - standing.ci_low) / (2 * z) / _ELO_PER_NAT
    if se > 0:
        return se * se
    # A fit without bootstrap has zero-width intervals: fall back to the variance a rating would
    # have if every one of its votes carried the most information a vote can (p = 1/2).
    return 4 / standing.votes


def _complete(pairs: list[Pair], weights: Mapping[Pair, float]) -> dict[Pair, float]:
    top = max(weights.values(), default=1.0)
    return {p: max(0.0, weights.get(p, top)) for p in pairs}


def _weighted_order(pairs: list[Pair], weights: Mapping[Pair, float], rng: random.Random) -> list[Pair]:
    # Efraimidis-Spirakis: sorting by u ** (1 / w) is a weighted draw without replacement. Zero
    # weights go last, in the random order of the shuffle before.
    def key(pair: Pair) -> float:
        w = weights[pair]
        return rng.random() ** (1 / w) if w > 0 else -1.0

    keyed = [(key(p), p) for p in pairs]
    return [p for _, p in sorted(keyed, key=lambda kp: -kp[0])]
