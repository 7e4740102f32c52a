"""Reads for the generation queue: what every (generator, prompt, size) has and wants."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Max

from generation.models import Demand, Population


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
    in_flight: int  # pending or generating
    last_failed_at: datetime | None

    @property
    def deficit(self) -> int:
        """Populations to create now: none until the queue falls below its low watermark."""
        if self.available + self.in_flight >= self.low_watermark:
            return 0
        return self.high_watermark - self.available - self.in_flight


QueueKey = tuple[int, int, int]


def get_queue_states(*, owner: str | None = None) -> list[QueueState]:
    """Every demanded queue (optionally only `owner`'s), highest priority first; three queries in all."""
    demands = Demand.objects.filter(generator__is_active=True)
    if owner is not None:
        demands = demands.filter(owner=owner)
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
            counts[key]["in_flight"] += row["n"]
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
            in_flight=counts[key]["in_flight"],
            last_failed_at=last_failed.get(key),
        )
        for key, row in keys.items()
    ]
    states.sort(key=lambda s: (-s.priority, s.generator_id, s.prompt_id, s.size))
    return states
