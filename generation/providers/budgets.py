"""Reads of hosted APIs' spend, budgets and refused prompts: what the claim, the planner and the staff page ask.

Spend is counted from the images stored (each costs its generator's `price_per_image`); a generator's
`budget` also counts the images of sets being made now, so workers never claim past it. Images a
provider made and billed in an attempt that failed later (one image of a set refused) are not stored,
so they are not counted: spend here is what the arena holds, a lower bound of the provider's bill.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Min, Sum

from generation.models import Generator, Image, Population
from generation.providers.base import REFUSAL_PREFIX


def _amount(settings: Any, name: str) -> float | None:
    value = settings.get(name) if isinstance(settings, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return None
    return float(value)


@dataclass(frozen=True)
class ApiSpend:
    """One API generator's images, what they cost, and how many more its budget allows."""

    generator_id: int
    generator: str
    price_per_image: float
    budget: float | None
    images: int  # stored
    in_flight: int  # images of sets claimed and being made now
    smallest_waiting: int | None  # the smallest set still to be made, if any

    @property
    def spent(self) -> float:
        return self.images * self.price_per_image

    @property
    def affordable_images(self) -> int | None:
        """Images the budget still allows beyond those stored and in flight; None without a budget."""
        if self.budget is None or self.price_per_image <= 0:
            return None
        committed = (self.images + self.in_flight) * self.price_per_image
        # The small epsilon keeps 10.00 / 0.04 = 250 images from rounding down to 249.
        return max(0, math.floor((self.budget - committed) / self.price_per_image + 1e-9))

    @property
    def budget_reached(self) -> bool:
        affordable = self.affordable_images
        return affordable is not None and affordable < (self.smallest_waiting or 1)

    @property
    def reason(self) -> str:
        """Why no more of this generator's images are made, for the staff page; empty while some are."""
        if not self.budget_reached:
            return ""
        return (
            f"budget reached: {self.spent:.2f} of {self.budget:.2f} spent at {self.price_per_image:g} per image; "
            "no more images are requested (raise the generator's 'budget' setting to go on)"
        )


def get_api_spend(
    *, generator_ids: Iterable[int] | None = None, prompt_ids: Iterable[int] | None = None, budgeted_only: bool = False
) -> list[ApiSpend]:
    """Spend per API generator (only of `prompt_ids`' sets when given: one campaign's share); three queries."""
    generators = Generator.objects.filter(backend=Generator.Backend.API)
    if generator_ids is not None:
        generators = generators.filter(pk__in=list(generator_ids))
    if budgeted_only:
        generators = generators.filter(settings__has_key="budget")
    rows = list(generators.order_by("pk").values_list("pk", "name", "settings"))
    if not rows:
        return []
    ids = [pk for pk, _, _ in rows]
    images = Image.objects.filter(population__generator_id__in=ids)
    populations = Population.objects.filter(generator_id__in=ids)
    if prompt_ids is not None:
        prompt_ids = list(prompt_ids)
        images = images.filter(population__prompt_id__in=prompt_ids)
        populations = populations.filter(prompt_id__in=prompt_ids)
    stored = dict(
        images.values("population__generator_id")
        .annotate(n=Count("id"))
        .values_list("population__generator_id", "n")
        .order_by()
    )
    in_flight: dict[int, int] = {}
    smallest: dict[int, int] = {}
    for row in (
        populations.filter(status__in=[Population.Status.PENDING, Population.Status.GENERATING])
        .values("generator_id", "status")
        .annotate(image_count=Sum("size"), smallest=Min("size"))
        .order_by()
    ):
        generator_id = row["generator_id"]
        if row["status"] == Population.Status.GENERATING:
            in_flight[generator_id] = in_flight.get(generator_id, 0) + row["image_count"]
        else:
            smallest[generator_id] = min(row["smallest"], smallest.get(generator_id, row["smallest"]))
    return [
        ApiSpend(
            generator_id=pk,
            generator=name,
            price_per_image=_amount(settings, "price_per_image") or 0.0,
            budget=_amount(settings, "budget"),
            images=stored.get(pk, 0),
            in_flight=in_flight.get(pk, 0),
            smallest_waiting=smallest.get(pk),
        )
        for pk, name, settings in rows
    ]


def get_affordable_images() -> dict[int, int]:
    """Images each budgeted API generator may still have claimed: what claim_generation_batch holds claims to."""
    return {
        spend.generator_id: affordable
        for spend in get_api_spend(budgeted_only=True)
        if (affordable := spend.affordable_images) is not None
    }


@dataclass(frozen=True)
class RefusedPrompt:
    """A prompt a hosted API refused every time it was asked for one set: shown to the researcher."""

    generator: str
    prompt_id: int
    caption: str
    error: str


def get_refused_prompts(
    *, generator_ids: Iterable[int] | None = None, prompt_ids: Iterable[int] | None = None
) -> list[RefusedPrompt]:
    """Failed sets whose last attempt was a content-policy refusal, one per generator and prompt."""
    failed = Population.objects.filter(
        status=Population.Status.FAILED, error__contains=REFUSAL_PREFIX, generator__backend=Generator.Backend.API
    )
    if generator_ids is not None:
        failed = failed.filter(generator_id__in=list(generator_ids))
    if prompt_ids is not None:
        failed = failed.filter(prompt_id__in=list(prompt_ids))
    seen: dict[tuple[int, int], RefusedPrompt] = {}
    for generator_id, name, prompt_id, caption, error in failed.order_by("-updated_at").values_list(
        "generator_id", "generator__name", "prompt_id", "prompt__caption", "error"
    ):
        seen.setdefault((generator_id, prompt_id), RefusedPrompt(name, prompt_id, caption, error))
    return sorted(seen.values(), key=lambda refused: (refused.generator, refused.caption))


def get_refused_queues() -> set[tuple[int, int]]:
    """(generator id, prompt id) of every queue whose prompt its API refused for good: the planner leaves them be."""
    return set(
        Population.objects.filter(status=Population.Status.FAILED, error__contains=REFUSAL_PREFIX)
        .values_list("generator_id", "prompt_id")
        .distinct()
    )


@dataclass(frozen=True)
class ApiCosts:
    """A campaign's hosted API generators as the staff page shows them: its own spend, and each budget's state."""

    rows: list[tuple[ApiSpend, ApiSpend]]  # (this campaign's prompts only, all of the generator's work)
    refused: list[RefusedPrompt]

    @property
    def spent(self) -> float:
        return sum(mine.spent for mine, _ in self.rows)


def get_api_costs(*, generator_ids: Iterable[int], prompt_ids: Iterable[int]) -> ApiCosts:
    """Spend of a campaign's API generators on its prompts, their budgets (counted over all their work), and the
    prompts they refused; empty rows when the campaign has no API generator."""
    generator_ids, prompt_ids = list(generator_ids), list(prompt_ids)
    overall = {spend.generator_id: spend for spend in get_api_spend(generator_ids=generator_ids)}
    if not overall:
        return ApiCosts(rows=[], refused=[])
    mine = get_api_spend(generator_ids=list(overall), prompt_ids=prompt_ids)
    return ApiCosts(
        rows=[(spend, overall[spend.generator_id]) for spend in mine],
        refused=get_refused_prompts(generator_ids=list(overall), prompt_ids=prompt_ids),
    )
