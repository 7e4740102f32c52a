"""Claims through the queue service: a first comparison's two populations first, small claims at first."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from annotation.demand import demand_owner
from annotation.models import Campaign
from arena.selectors import get_queue_summary
from generation import services
from generation.models import Demand, Population
from generation.worker import CALLS_PER_CLAIM, GenerationWorker
from tests.factories import GeneratorFactory, PromptFactory

pytestmark = pytest.mark.django_db

TINY = {"steps": 2, "width": 32, "height": 32, "init_seed": 1}
LEASE = timedelta(minutes=1)


@pytest.fixture
def campaign_queues():
    """Three generators x three prompts, six images per set, two sets wanted of each: 18 planned."""
    generators = [GeneratorFactory(settings={**TINY, "init_seed": i}) for i in range(3)]
    prompts = [PromptFactory() for _ in range(3)]
    for generator in generators:
        for prompt in prompts:
            Demand.objects.create(
                owner="campaign:study", generator=generator, prompt=prompt, size=6, low_watermark=1, high_watermark=2
            )
    assert services.plan_populations() == 18
    return generators, prompts


def test_two_workers_starting_together_make_the_two_sides_of_one_comparison(campaign_queues):
    # One pipeline call's worth (8 images) holds one population of 6: nothing more is taken.
    (first,) = services.claim_generation_batch(worker="A", max_images=8, lease=LEASE)
    (second,) = services.claim_generation_batch(worker="B", max_images=8, lease=LEASE)
    assert first.prompt_id == second.prompt_id
    assert first.generator_id != second.generator_id
    # Everything else stays queued, visibly: 16 waiting, 2 being made.
    assert Population.objects.filter(status="pending").count() == 16


def test_a_claim_prefers_the_population_that_pairs_with_what_is_ready(campaign_queues):
    generators, prompts = campaign_queues
    # Generator 0's set for prompt 2 is ready (say an earlier worker made it).
    made = Population.objects.filter(generator=generators[0], prompt=prompts[2]).first()
    Population.objects.filter(pk=made.pk).update(status="ready", ready_at=timezone.now())
    # A larger claim takes one generator's sets, the one that completes a pair on prompt 2 first.
    batch = services.claim_generation_batch(worker="A", max_images=18, lease=LEASE)
    assert len(batch) == 3
    assert len({p.generator_id for p in batch}) == 1
    assert batch[0].prompt_id == prompts[2].pk
    assert batch[0].generator_id != generators[0].pk
    # and its three sets are three prompts' first ones, not a second set of one prompt.
    assert len({p.prompt_id for p in batch}) == 3


def make_worker(model_cache: Path, **kwargs) -> GenerationWorker:  # type: ignore[no-untyped-def]
    return GenerationWorker(device="cpu", cache_dir=model_cache, idle_sleep_s=0, **kwargs)


def test_a_fresh_worker_claims_one_call_then_what_it_finishes_soon(tmp_path):
    worker = make_worker(tmp_path, max_batch=8)
    assert worker.claim_size() == 8  # no speed measured yet: one pipeline call
    worker.stats.add_call("g", images=8, seconds=4.0)  # 2 images/s: 16 in the horizon
    assert worker.claim_size() == 16
    worker.stats.add_call("g", images=800, seconds=1.0)  # very fast: capped at a few calls
    assert worker.claim_size() == 8 * CALLS_PER_CLAIM
    slow = make_worker(tmp_path, max_batch=8)
    slow.stats.add_call("g", images=1, seconds=60.0)  # very slow: still one full call
    assert slow.claim_size() == 8


def test_the_worker_makes_a_comparison_possible_after_its_first_two_populations(campaign_queues, tmp_path):
    worker = make_worker(tmp_path, max_batch=8)
    assert worker.step()
    assert Population.objects.filter(status="ready").count() == 1  # one call's worth first
    worker.run(once=True)
    made = list(Population.objects.filter(status="ready").order_by("ready_at", "pk"))
    assert len(made) == 18
    # The first two sets finished are the two sides of one comparison,
    assert made[0].prompt_id == made[1].prompt_id
    assert made[0].generator_id != made[1].generator_id
    # and every queue had its first set before any had its second.
    assert len({(p.generator_id, p.prompt_id) for p in made[:9]}) == 9


def test_the_waiting_numbers_tell_waiting_from_being_made_and_estimate_from_the_measured_speed(campaign_queues):
    campaign = Campaign.objects.create(slug="study", title="Study", population_size=6)
    Demand.objects.update(owner=demand_owner(campaign))  # the queues are this campaign's (owners are keyed by id)
    # Nothing made yet: no estimate.
    before = get_queue_summary(campaign=campaign)
    assert (before.ready, before.wanted, before.in_progress, before.waiting) == (0, 18, 0, 18)
    assert (before.images_per_s, before.first_comparison_s, before.all_ready_s) == (None, None, None)
    # One worker holds one set; two sets were made two seconds apart (6 images in 2 s: 3 images/s).
    services.claim_generation_batch(worker="A", max_images=6, lease=LEASE)
    now = timezone.now()
    pending = list(Population.objects.filter(status="pending").order_by("pk"))
    for population, ready_at in ((pending[0], now - timedelta(seconds=2)), (pending[-1], now)):
        Population.objects.filter(pk=population.pk).update(status="ready", ready_at=ready_at, generation_ms=1500)
    summary = get_queue_summary(campaign=campaign)
    assert (summary.ready, summary.in_progress, summary.waiting) == (2, 1, 15)
    assert summary.images_per_s == 3.0
    # The two ready sets are of different prompts: one more set of 6 (2 s) makes a pair;
    # every queue full: 16 sets of 6 (32 s).
    assert pending[0].prompt_id != pending[-1].prompt_id
    assert summary.first_comparison_s == 2
    assert summary.all_ready_s == 32
