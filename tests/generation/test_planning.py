"""The claim order and the speed measure, on plain inputs: a comparison first, then what unlocks the most."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import combinations

from generation.planning import (
    Candidate,
    Coverage,
    choose_batch,
    images_before_first_comparison,
    measure_rate,
    order_candidates,
)

GENERATORS = (1, 2, 3, 4)
PROMPTS = (10, 20, 30)
SIZE = 6


def planned(high: int = 2) -> list[Candidate]:
    """What planning creates for an empty campaign: generator by generator, prompt by prompt."""
    pk = iter(range(1, 1000))
    return [Candidate(next(pk), g, p, SIZE) for g in GENERATORS for p in PROMPTS for _ in range(high)]


def comparable_pairs(made: list[Candidate]) -> int:
    by_prompt: dict[int, set[int]] = {}
    for candidate in made:
        by_prompt.setdefault(candidate.prompt_id, set()).add(candidate.generator_id)
    return sum(len(list(combinations(generators, 2))) for generators in by_prompt.values())


def make_one_at_a_time(candidates: list[Candidate]) -> list[Candidate]:
    """One worker making one population per claim, in claim order, until nothing is left."""
    left = list(candidates)
    made: list[Candidate] = []
    while left:
        coverage: dict = {}
        for candidate in made:
            before = coverage.get(candidate.queue, Coverage(0)).covered
            coverage[candidate.queue] = Coverage(before + 1)
        (first,) = choose_batch(order_candidates(left, coverage), SIZE)
        made.append(first)
        left = [c for c in left if c.pk != first.pk]
    return made


def test_the_first_two_populations_made_are_two_generators_for_one_prompt():
    made = make_one_at_a_time(planned())
    assert made[0].prompt_id == made[1].prompt_id
    assert made[0].generator_id != made[1].generator_id
    assert comparable_pairs(made[:2]) == 1


def test_each_next_population_unlocks_as_many_comparisons_as_any_could():
    made = make_one_at_a_time(planned())
    # Four generators on one prompt give six pairs; that prompt is finished before another starts.
    assert [comparable_pairs(made[:k]) for k in range(1, 5)] == [0, 1, 3, 6]
    # The planned order (every prompt of generator 1 first) would have none after three.
    assert comparable_pairs(planned(high=1)[:3]) == 0


def test_every_queue_gets_its_first_population_before_any_gets_a_second():
    made = make_one_at_a_time(planned(high=2))
    queues = len(GENERATORS) * len(PROMPTS)
    assert len({c.queue for c in made[:queues]}) == queues


def test_demand_priority_still_comes_first():
    candidates = planned(high=1)
    urgent = candidates[-1]
    ordered = order_candidates(candidates, {urgent.queue: Coverage(0, priority=5.0)})
    assert ordered[0].pk == urgent.pk


def test_a_population_held_by_another_worker_counts_as_covered():
    # Worker one is making generator 1's population of prompt 10: worker two pairs with it.
    candidates = [c for c in planned(high=1) if c.queue != (1, 10, SIZE)]
    ordered = order_candidates(candidates, {(1, 10, SIZE): Coverage(1)})
    assert (ordered[0].generator_id, ordered[0].prompt_id) == (2, 10)


def test_a_batch_is_one_generator_and_does_not_overshoot_the_images_asked_for():
    ordered = order_candidates(planned(high=1), {})
    assert [c.pk for c in choose_batch(ordered, 8)] == [ordered[0].pk]  # 6 of 8: a second would make 12
    batch = choose_batch(ordered, 32)
    assert len(batch) == 3  # generator 1 has three prompts: 18 images
    assert {c.generator_id for c in batch} == {ordered[0].generator_id}
    # A population larger than the whole claim is still claimed, on its own.
    assert len(choose_batch([Candidate(1, 1, 1, 50), Candidate(2, 1, 2, 1)], 8)) == 1
    # A generator's second sets wait while other queues lack their first.
    two_each = order_candidates(planned(high=2), {})
    assert {c.depth for c in choose_batch(two_each, 32)} == {0}
    assert choose_batch([], 8) == []


def test_the_measured_rate_leaves_out_idle_pauses():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    # Three populations of 6 two seconds apart, then a long idle pause, then one more two seconds later.
    times = [start, start + timedelta(seconds=2), start + timedelta(seconds=4)]
    times += [start + timedelta(seconds=300), start + timedelta(seconds=302)]
    assert measure_rate((t, 6) for t in times) == 3.0  # 18 images in 6 working seconds
    assert measure_rate([(start, 6)]) is None
    assert measure_rate([]) is None


def test_images_before_the_first_comparison():
    assert images_before_first_comparison([((1, 10, 6), 0), ((2, 10, 6), 0)]) == 12
    assert images_before_first_comparison([((1, 10, 6), 1), ((2, 10, 6), 0), ((2, 20, 6), 0)]) == 6
    assert images_before_first_comparison([((1, 10, 6), 2), ((2, 10, 6), 1)]) == 0
    # Only one generator wanted per prompt: no comparison can ever be made.
    assert images_before_first_comparison([((1, 10, 6), 0), ((2, 20, 6), 0)]) is None
