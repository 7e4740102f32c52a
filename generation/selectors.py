"""Reads for the generation queue: what every (generator, prompt, size) has and wants."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Max, QuerySet
from django.utils import timezone

from generation.image_files import BLANK_FAILURE
from generation.models import Demand, Generator, Image, Population
from generation.owners import stored_owner
from generation.planning import measure_rate


@dataclass(frozen=True)
class QueueState:
    """One queue: the highest demand any owner asks for, and what it holds now."""

    generator_id: int
    prompt_id: int
    size: int
    low_watermark: int
    high_watermark: int
    max_uses: int
    priority: float
    available: int  # ready and not yet used up
    pending: int  # planned, waiting for a worker
    generating: int  # claimed by a worker (its lease may have run out)
    last_failed_at: datetime | None

    @property
    def in_flight(self) -> int:
        return self.pending + self.generating

    @property
    def deficit(self) -> int:
        """Populations to create now: none until the queue falls below its low watermark."""
        if self.available + self.in_flight >= self.low_watermark:
            return 0
        return self.high_watermark - self.available - self.in_flight


QueueKey = tuple[int, int, int]


def get_queue_states(*, owner: str | None = None) -> list[QueueState]:
    """Every demanded queue (optionally only `owner`'s), highest priority first; three queries in all."""
    # Imported generators' sets are all there will be: no queue of theirs is ever planned or claimed.
    demands = Demand.objects.filter(generator__is_active=True).exclude(generator__backend=Generator.Backend.IMPORTED)
    if owner is not None:
        demands = demands.filter(owner=stored_owner(owner))
    wanted = (
        demands.values("generator_id", "prompt_id", "size")
        .annotate(
            low=Max("low_watermark"), high=Max("high_watermark"), max_uses=Max("max_uses"), priority=Max("priority")
        )
        .order_by()
    )
    keys = {(row["generator_id"], row["prompt_id"], row["size"]): row for row in wanted}
    if not keys:
        return []
    generator_ids = {key[0] for key in keys}
    counts: dict[QueueKey, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    ready_by_uses = (
        Population.objects.filter(generator_id__in=generator_ids)
        .values("generator_id", "prompt_id", "size", "status", "uses")
        .annotate(n=Count("id"), last=Max("updated_at"))
        .order_by()
    )
    last_failed: dict[QueueKey, datetime] = {}
    for row in ready_by_uses:
        key = (row["generator_id"], row["prompt_id"], row["size"])
        if key not in keys:
            continue
        status = row["status"]
        if status == Population.Status.READY:
            if row["uses"] < keys[key]["max_uses"]:
                counts[key]["available"] += row["n"]
        elif status in (Population.Status.PENDING, Population.Status.GENERATING):
            counts[key][status] += row["n"]
        elif status == Population.Status.FAILED:
            last_failed[key] = max(row["last"], last_failed.get(key, row["last"]))
    states = [
        QueueState(
            generator_id=key[0],
            prompt_id=key[1],
            size=key[2],
            low_watermark=row["low"],
            high_watermark=row["high"],
            max_uses=row["max_uses"],
            priority=row["priority"],
            available=counts[key]["available"],
            pending=counts[key][Population.Status.PENDING],
            generating=counts[key][Population.Status.GENERATING],
            last_failed_at=last_failed.get(key),
        )
        for key, row in keys.items()
    ]
    states.sort(key=lambda s: (-s.priority, s.generator_id, s.prompt_id, s.size))
    return states


# The speed is measured over this many of the latest populations, made at most RATE_WINDOW ago.
RATE_POPULATIONS = 30
RATE_WINDOW = timedelta(minutes=10)


def get_generation_rate(*, generator_ids: Iterable[int], now: datetime | None = None) -> float | None:
    """Images per second the workers make for these generators lately, or None before anything was made.

    From the wall time between recent ready populations (generation.planning.measure_rate); with
    only one made so far, from that population's time inside pipeline calls.
    """
    now = now or timezone.now()
    recent = list(
        Population.objects.filter(
            generator_id__in=list(generator_ids), status=Population.Status.READY, ready_at__gte=now - RATE_WINDOW
        )
        .order_by("-ready_at")
        .values_list("ready_at", "size", "generation_ms")[:RATE_POPULATIONS]
    )
    rate = measure_rate((ready_at, size) for ready_at, size, _ in recent if ready_at is not None)
    if rate is None:
        timed = [(size, ms) for _, size, ms in recent if ms]
        if timed:
            rate = sum(size for size, _ in timed) / (sum(ms for _, ms in timed) / 1000)
    return rate


def list_generators() -> QuerySet[Generator]:
    """Every generator, active first, by name."""
    return Generator.objects.order_by("-is_active", "name")


@dataclass(frozen=True)
class QueueDepth:
    """One queue as the staff and worker API shows it: names instead of ids, and its deficit."""

    generator: str
    prompt_id: int
    size: int
    available: int
    in_flight: int
    low_watermark: int
    high_watermark: int
    deficit: int
    priority: float
    last_failed_at: datetime | None


def get_queue_depths(*, owner: str | None = None) -> list[QueueDepth]:
    """get_queue_states with generator names: one more query."""
    states = get_queue_states(owner=owner)
    names = dict(Generator.objects.filter(pk__in={s.generator_id for s in states}).values_list("pk", "name"))
    return [
        QueueDepth(
            generator=names[state.generator_id],
            prompt_id=state.prompt_id,
            size=state.size,
            available=state.available,
            in_flight=state.in_flight,
            low_watermark=state.low_watermark,
            high_watermark=state.high_watermark,
            deficit=state.deficit,
            priority=state.priority,
            last_failed_at=state.last_failed_at,
        )
        for state in states
    ]


@dataclass(frozen=True)
class WorkerLease:
    """What one worker holds now: its generating populations and when the latest lease runs out."""

    worker: str
    populations: list[int]
    generators: list[str]
    lease_until: datetime
    expired: bool


def get_worker_leases(*, now: datetime | None = None) -> list[WorkerLease]:
    """Generating populations grouped by the worker holding them; an expired lease is work to reclaim."""
    now = now or timezone.now()
    running = (
        Population.objects.filter(status=Population.Status.GENERATING)
        .select_related("generator")
        .order_by("claimed_by", "pk")
    )
    by_worker: dict[str, list[Population]] = defaultdict(list)
    for population in running:
        by_worker[population.claimed_by].append(population)
    leases = []
    for worker, held in by_worker.items():
        until = max(p.lease_until for p in held if p.lease_until is not None)
        leases.append(
            WorkerLease(
                worker=worker,
                populations=[p.pk for p in held],
                generators=sorted({p.generator.name for p in held}),
                lease_until=until,
                expired=until <= now,
            )
        )
    return leases


@dataclass(frozen=True)
class BlankCount:
    """One generator's blank images: redrawn ones (each kept image lists its blank seeds), and failed sets.

    A set fails when one of its images came back blank on every draw (generation.worker, GENERATION_BLANK_TRIES);
    its prompts are listed for the researcher: the generator (or its safety checker) will not draw them.
    """

    generator: str
    redrawn: int  # blank draws replaced by a redraw in sets that were stored
    failed_sets: int  # sets whose latest attempt failed on an image blank every time
    prompts: tuple[str, ...]  # captions of the failed sets


def get_blank_counts(
    *, generator_ids: Iterable[int] | None = None, prompt_ids: Iterable[int] | None = None
) -> list[BlankCount]:
    """Blank images per generator (only those that had any), by generator name; two queries."""
    images = Image.objects.filter(provenance__has_key="blank_seeds")
    failed = Population.objects.filter(error__contains=BLANK_FAILURE).exclude(status=Population.Status.READY)
    if generator_ids is not None:
        ids = list(generator_ids)
        images, failed = images.filter(population__generator_id__in=ids), failed.filter(generator_id__in=ids)
    if prompt_ids is not None:
        ids = list(prompt_ids)
        images, failed = images.filter(population__prompt_id__in=ids), failed.filter(prompt_id__in=ids)
    redrawn: dict[str, int] = defaultdict(int)
    for name, provenance in images.values_list("population__generator__name", "provenance"):
        seeds = provenance.get("blank_seeds") if isinstance(provenance, dict) else None
        redrawn[name] += len(seeds) if isinstance(seeds, list) else 0
    sets: dict[str, int] = defaultdict(int)
    prompts: dict[str, set[str]] = defaultdict(set)
    for name, caption in failed.values_list("generator__name", "prompt__caption"):
        sets[name] += 1
        prompts[name].add(caption)
    return [
        BlankCount(generator=name, redrawn=redrawn[name], failed_sets=sets[name], prompts=tuple(sorted(prompts[name])))
        for name in sorted(set(redrawn) | set(sets))
    ]
