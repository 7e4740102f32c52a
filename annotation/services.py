"""Writes for campaigns: criteria, prompts and generators of a study, and the demo seed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.db import transaction

from annotation import demo
from annotation.models import Campaign, Criterion
from core.errors import ApplicationError
from core.models import sync_object
from generation.models import Prompt
from generation.offline import DEMO_GENERATORS
from generation.prompt_files import PromptRow
from generation.services import DemandSpec, import_prompts, sync_demand, sync_generator

# Ready populations kept waiting per (generator, prompt): refill below LOW, up to HIGH.
QUEUE_LOW_WATERMARK = 1
QUEUE_HIGH_WATERMARK = 2


@dataclass
class SeedReport:
    """What a seeding run did, per kind of row: created / updated / unchanged counts."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)

    def add(self, kind: str, outcome: str) -> None:
        self.counts.setdefault(kind, Counter())[outcome] += 1

    @property
    def changed(self) -> bool:
        return any(c["created"] or c["updated"] for c in self.counts.values())

    def lines(self) -> list[str]:
        return [
            f"{kind}: " + ", ".join(f"{n} {outcome}" for outcome, n in sorted(counter.items()))
            for kind, counter in self.counts.items()
        ]


@transaction.atomic
def sync_criteria(*, campaign: Campaign, criteria: Sequence[tuple[str, str]], report: SeedReport) -> None:
    """Make the campaign's criteria the given (key, question) pairs, in order; never drops one."""
    for position, (key, question) in enumerate(criteria):
        _, outcome = sync_object(
            Criterion, lookup={"campaign": campaign, "key": key}, values={"question": question, "position": position}
        )
        report.add("criteria", outcome)


@transaction.atomic
def add_prompts_to_campaign(*, campaign: Campaign, rows: Iterable[PromptRow]) -> Counter[str]:
    """Import prompt rows and attach them to the campaign; counts created, existing and added."""
    prompts, counts = import_prompts(rows=rows)
    already = set(campaign.prompts.values_list("pk", flat=True))
    new = [p for p in prompts if p.pk not in already]
    campaign.prompts.add(*new)
    counts["added to campaign"] = len(new)
    return counts


def _attach(manager, objects: Iterable, kind: str, report: SeedReport) -> None:  # type: ignore[no-untyped-def]
    existing = set(manager.values_list("pk", flat=True))
    for obj in objects:
        report.add(kind, "unchanged" if obj.pk in existing else "created")
        if obj.pk not in existing:
            manager.add(obj)


def demand_owner(campaign: Campaign) -> str:
    return f"campaign:{campaign.slug}"


@transaction.atomic
def sync_campaign_demand(*, campaign: Campaign) -> Counter[str]:
    """Tell the generation queue what an open campaign needs; a campaign not open needs nothing.

    Each population serves at most `votes_per_pair` comparisons, so a pair's votes come from
    several independent samples of each generator rather than one set shown again and again.
    """
    demands: list[DemandSpec] = []
    if campaign.status == Campaign.Status.OPEN:
        generators = list(campaign.generators.filter(is_active=True))
        demands = [
            DemandSpec(
                generator=generator,
                prompt=prompt,
                size=campaign.population_size,
                low_watermark=QUEUE_LOW_WATERMARK,
                high_watermark=QUEUE_HIGH_WATERMARK,
                max_uses=campaign.votes_per_pair,
            )
            for prompt in campaign.prompts.all()
            for generator in generators
        ]
    return sync_demand(owner=demand_owner(campaign), demands=demands)


@transaction.atomic
def set_campaign_status(*, campaign: Campaign, status: str) -> Campaign:
    """Open, pause or close a campaign, and start or stop its generation queues with it."""
    if status not in Campaign.Status.values:
        raise ApplicationError(f"unknown campaign status {status!r} (use one of {', '.join(Campaign.Status.values)})")
    campaign.status = status
    campaign.save(update_fields=["status", "updated_at"])
    sync_campaign_demand(campaign=campaign)
    return campaign


@transaction.atomic
def seed_demo_campaign() -> SeedReport:
    """Create or bring up to date the `demo` campaign; a second run writes nothing."""
    report = SeedReport()
    generators = []
    for spec in DEMO_GENERATORS:
        generator, outcome = sync_generator(spec=spec)
        generators.append(generator)
        report.add("generators", outcome)
    campaign, outcome = sync_object(
        Campaign,
        lookup={"slug": demo.DEMO_SLUG},
        values={
            "title": demo.DEMO_TITLE,
            "instructions": demo.DEMO_INSTRUCTIONS,
            "access": Campaign.Access.PUBLIC,
        },
    )
    if outcome == "created":
        # Only a new demo opens itself; a researcher who paused it keeps it paused.
        campaign.status = Campaign.Status.OPEN
        campaign.save(update_fields=["status"])
    report.add("campaign", outcome)
    sync_criteria(campaign=campaign, criteria=demo.DEMO_CRITERIA, report=report)
    prompts = [Prompt.objects.get_or_create(caption=r.caption, category=r.category)[0] for r in demo.DEMO_PROMPTS]
    _attach(campaign.prompts, prompts, "campaign prompts", report)
    _attach(campaign.generators, generators, "campaign generators", report)
    for outcome, count in sync_campaign_demand(campaign=campaign).items():
        if count:
            report.counts.setdefault("generation queues", Counter())[outcome] += count
    return report
