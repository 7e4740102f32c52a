"""Pure pair sampling: which two generators a comparison shows next. No Django imports.

Policies (a campaign's `sampling_policy`):
- uniform: every pair of generators equally likely;
- balanced: the pairs with the fewest votes so far, ties broken at random, so every pair
  reaches the votes wanted at the same pace;
- active: the pair whose next vote is expected to teach the most, by the ranking module's
  uncertainty when it provides one, else balanced.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence

Pair = tuple[int, int]


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
) -> list[Pair]:
    """All candidate pairs in the order the policy prefers them (the caller takes the first it can serve)."""
    pairs = all_pairs(generators)
    if allowed is not None:
        allowed_set = {normalise(*p) for p in allowed}
        pairs = [p for p in pairs if p in allowed_set]
    rng.shuffle(pairs)  # random tie-breaks, before the stable sorts below
    if policy == "uniform":
        return pairs
    if policy == "active" and informativeness is not None:
        return sorted(pairs, key=lambda p: (-informativeness(p), votes.get(p, 0)))
    if policy in ("balanced", "active"):
        return sorted(pairs, key=lambda p: votes.get(p, 0))
    raise ValueError(f"unknown sampling policy {policy!r} (use uniform, balanced or active)")
