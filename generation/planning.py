"""Which pending populations to make first, and how fast the workers go: pure ordering and rate math, no Django.

A comparison needs two generators' populations of one prompt. Made in the order they were
planned (every prompt of generator A, then of B, ...), the first comparison waits for a whole
generator's share of the campaign; the order below makes it possible after two populations,
then adds the populations that unlock the most comparisons.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

QueueKey = tuple[int, int, int]  # (generator, prompt, size)


@dataclass(frozen=True)
class Candidate:
    """A population a worker could claim now (pending, or generating under a lease that ran out)."""

    pk: int
    generator_id: int
    prompt_id: int
    size: int
    depth: int = 0  # set by order_candidates: populations its queue holds before this one

    @property
    def queue(self) -> QueueKey:
        return (self.generator_id, self.prompt_id, self.size)


@dataclass(frozen=True)
class Coverage:
    """What a queue already has, or will have soon: ready and unused, or being made under a live lease."""

    covered: int
    priority: float = 0.0


def order_candidates(candidates: Sequence[Candidate], coverage: Mapping[QueueKey, Coverage]) -> list[Candidate]:
    """The claim order: demand priority first, then shallowest queue, then most comparisons unlocked.

    - depth: how many populations the queue will hold before this one (its covered ones, then
      its earlier candidates). Every queue gets its first population before any gets a second,
      so each reaches its low watermark as early as possible.
    - unlocks: how many other generators already cover the same prompt and size; finishing
      this population makes that many new pairs comparable. The first pick has nothing to
      pair with; the second then pairs with it, which is the first comparison.
    - ties keep the planned order (candidates are given oldest first).
    """
    covering: dict[tuple[int, int], set[int]] = defaultdict(set)
    for (generator_id, prompt_id, size), state in coverage.items():
        if state.covered > 0:
            covering[(prompt_id, size)].add(generator_id)
    seen: dict[QueueKey, int] = defaultdict(int)
    keyed = []
    for position, candidate in enumerate(candidates):
        state = coverage.get(candidate.queue, Coverage(0))
        depth = state.covered + seen[candidate.queue]
        seen[candidate.queue] += 1
        partners = covering[(candidate.prompt_id, candidate.size)] - {candidate.generator_id}
        keyed.append(((-state.priority, depth, -len(partners), position), replace(candidate, depth=depth)))
    keyed.sort(key=lambda pair: pair[0])
    return [candidate for _, candidate in keyed]


def choose_batch(ordered: Sequence[Candidate], max_images: int) -> list[Candidate]:
    """The first candidate's generator (one pipeline serves a batch), in claim order, up to `max_images`.

    The first population is always taken, however large; the rest only while they fit, so a
    worker asked for one pipeline call's worth of images gets one call, not two. None deeper
    than other generators' shallowest: one generator's second sets wait while another
    generator's queues still lack their first.
    """
    if not ordered:
        return []
    generator_id = ordered[0].generator_id
    others = min((c.depth for c in ordered if c.generator_id != generator_id), default=None)
    deepest = ordered[0].depth if others is None else max(ordered[0].depth, others)
    chosen: list[Candidate] = []
    images = 0
    for candidate in ordered:
        if candidate.generator_id != generator_id:
            continue
        if others is not None and candidate.depth > deepest:
            continue
        if chosen and images + candidate.size > max_images:
            continue
        chosen.append(candidate)
        images += candidate.size
        if images >= max_images:
            break
    return chosen


# A longer pause between two ready populations is the worker idling (queues full, or stopped),
# not working: it is left out of the measured speed.
IDLE_GAP_S = 30.0


def measure_rate(finished: Iterable[tuple[datetime, int]]) -> float | None:
    """Images per second of wall time from (ready_at, images) of recent populations, or None.

    Wall time between successive ready populations includes everything a worker does (loading,
    encoding, storing) and counts every worker at once, which is what a waiting person sees.
    """
    rows = sorted(finished)
    images = 0
    seconds = 0.0
    for (before, _), (after, size) in zip(rows, rows[1:], strict=False):
        gap = (after - before).total_seconds()
        if gap <= IDLE_GAP_S:
            images += size
            seconds += gap
    if images == 0 or seconds <= 0:
        return None
    return images / seconds


def images_before_first_comparison(queues: Iterable[tuple[QueueKey, int]]) -> int | None:
    """Images still to make before two generators have a ready population of one prompt.

    `queues` gives each queue's ready, unused populations. 0 when a comparison is possible
    already; None when no prompt is wanted from two generators at all.
    """
    ready: dict[tuple[int, int], int] = defaultdict(int)
    wanted: dict[tuple[int, int], int] = defaultdict(int)
    for (_, prompt_id, size), available in queues:
        wanted[(prompt_id, size)] += 1
        ready[(prompt_id, size)] += available > 0
    # The size is part of the key: a comparison shows two sets of the same number of images.
    missing = [(max(0, 2 - ready[key]) * key[1]) for key, generators in wanted.items() if generators >= 2]
    return min(missing) if missing else None
