"""Reads for the staff dashboard: how far each campaign is, per criterion, pair, prompt and queue.

Counted votes are what the leaderboards count: voted comparisons that are neither gold checks
nor side-swapped repeats, by people in good standing in the campaign (not flagged there; approved
by the crowd platform where the campaign counts only those: ComparisonQuerySet.counted); a
simulated crowd's comparisons are shown apart, as `simulated_voted`. "Wanted" is votes_per_pair
for every prompt and pair of generators.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from itertools import combinations
from typing import Any

from django.db.models import Count, Max, OuterRef, Q, Subquery
from django.utils import timezone

from annotation.demand import demand_owner
from annotation.models import Campaign, CampaignParticipation, Participant, PlatformStatus
from arena.models import Comparison, Vote
from generation.selectors import get_queue_states

ACTIVE_WINDOW = timedelta(minutes=5)
# The per-prompt table shows the prompts furthest from their target, at most this many: a study
# with thousands of prompts must not send them all on every poll.
PROMPT_ROWS = 50


def _counted(campaign_ids: Iterable[int]) -> Any:
    return Comparison.objects.counted().filter(campaign_id__in=list(campaign_ids), status=Comparison.Status.VOTED)


@dataclass(frozen=True)
class CampaignSummary:
    """One row of the dashboard list."""

    campaign: Campaign
    voted: int
    wanted: int

    @property
    def percent(self) -> int:
        return min(100, round(100 * self.voted / self.wanted)) if self.wanted else 0


def _pair_count(generators: int) -> int:
    return generators * (generators - 1) // 2


def list_campaign_summaries(*, campaigns: Iterable[Campaign]) -> list[CampaignSummary]:
    """Counted comparisons and comparisons wanted for each campaign; three queries in all."""
    rows = list(campaigns)
    ids = [c.pk for c in rows]
    voted = dict(_counted(ids).values("campaign_id").annotate(n=Count("id")).values_list("campaign_id", "n"))
    shape = {
        row["pk"]: row
        for row in Campaign.objects.filter(pk__in=ids)
        .annotate(
            n_prompts=Count("prompts", distinct=True),
            n_generators=Count("generators", distinct=True, filter=Q(generators__is_active=True)),
        )
        .values("pk", "n_prompts", "n_generators")
    }
    return [
        CampaignSummary(
            campaign=c,
            voted=voted.get(c.pk, 0),
            wanted=shape[c.pk]["n_prompts"] * _pair_count(shape[c.pk]["n_generators"]) * c.votes_per_pair,
        )
        for c in rows
    ]


@dataclass(frozen=True)
class Row:
    label: str
    votes: int
    wanted: int


@dataclass(frozen=True)
class QueueRow:
    generator: str
    ready: int
    in_progress: int
    wanted: int


@dataclass(frozen=True)
class CampaignProgress:
    """Live numbers of one campaign; `as_dict` is what progress.json sends."""

    status: str
    comparisons_voted: int
    votes_wanted: int
    votes_needed: int
    gold_voted: int
    repeats_voted: int
    simulated_voted: int
    active_participants: int
    criteria: list[Row]
    pairs: list[Row]
    prompts: list[Row]  # the PROMPT_ROWS with the fewest votes, fewest first
    prompts_total: int
    prompts_complete: int
    queues: list[QueueRow]
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["updated_at"] = self.updated_at.isoformat()
        return data


def get_campaign_progress(*, campaign: Campaign, now: datetime | None = None) -> CampaignProgress:
    """Votes per criterion, pair of generators and prompt; queue depth per generator; who is active now.

    votes_needed sums, over every (prompt, pair), the votes wanted there minus those cast, never
    below zero: votes beyond a pair's target do not make up for a pair that has none.
    """
    now = now or timezone.now()
    generators = {g.pk: g.name for g in campaign.generators.filter(is_active=True).order_by("name")}
    prompts = dict(campaign.prompts.order_by("pk").values_list("pk", "caption"))
    pairs = [(min(a, b), max(a, b)) for a, b in combinations(generators, 2)]
    wanted = campaign.votes_per_pair

    by_cell: Counter[tuple[int, tuple[int, int]]] = Counter()
    rows = (
        _counted([campaign.pk])
        .values_list("prompt_id", "left_population__generator_id", "right_population__generator_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    for prompt_id, left, right, n in rows:
        by_cell[(prompt_id, (min(left, right), max(left, right)))] += n
    per_pair: Counter[tuple[int, int]] = Counter()
    per_prompt: Counter[int] = Counter()
    for (prompt_id, pair), n in by_cell.items():
        per_pair[pair] += n
        per_prompt[prompt_id] += n
    needed = sum(max(0, wanted - by_cell[(p, pair)]) for p in prompts for pair in pairs)

    kinds = Comparison.objects.filter(campaign=campaign, status=Comparison.Status.VOTED).aggregate(
        gold=Count("id", filter=Q(is_gold=True)),
        repeats=Count("id", filter=Q(repeat_of__isnull=False)),
        simulated=Count("id", filter=Q(participant__kind=Participant.Kind.SIMULATED)),
    )
    per_criterion = dict(
        Vote.objects.preferences()
        .by_people()
        .filter(comparison__campaign=campaign)
        .values("criterion_id")
        .annotate(n=Count("id"))
        .values_list("criterion_id", "n")
    )
    cutoff = now - ACTIVE_WINDOW
    active = (
        Comparison.objects.by_people()
        .filter(campaign=campaign)
        .filter(Q(issued_at__gte=cutoff) | Q(voted_at__gte=cutoff))
        .values("participant_id")
        .distinct()
        .count()
    )
    total_wanted = len(prompts) * len(pairs) * wanted
    per_prompt_wanted = len(pairs) * wanted
    behind = sorted(prompts, key=lambda pk: (per_prompt[pk], pk))[:PROMPT_ROWS]
    return CampaignProgress(
        status=campaign.status,
        comparisons_voted=sum(by_cell.values()),
        votes_wanted=total_wanted,
        votes_needed=needed,
        gold_voted=kinds["gold"],
        repeats_voted=kinds["repeats"],
        simulated_voted=kinds["simulated"],
        active_participants=active,
        criteria=[Row(c.question, per_criterion.get(c.pk, 0), total_wanted) for c in campaign.criteria.all()],
        pairs=[Row(f"{generators[a]} vs {generators[b]}", per_pair[(a, b)], len(prompts) * wanted) for a, b in pairs],
        prompts=[Row(prompts[pk], per_prompt[pk], per_prompt_wanted) for pk in behind],
        prompts_total=len(prompts),
        prompts_complete=sum(1 for pk in prompts if per_prompt[pk] >= per_prompt_wanted),
        queues=_queues(campaign, generators),
        updated_at=now,
    )


def _queues(campaign: Campaign, generators: dict[int, str]) -> list[QueueRow]:
    totals: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    for state in get_queue_states(owner=demand_owner(campaign)):
        total = totals[state.generator_id]
        total[0] += min(state.available, state.high_watermark)
        total[1] += state.in_flight
        total[2] += state.high_watermark
    return [QueueRow(name, *totals[pk]) for pk, name in generators.items()]


@dataclass(frozen=True)
class StandingRow:
    status: str  # a PlatformStatus value; "" for participants no imported record has reached
    label: str
    participants: int
    votes: int


@dataclass(frozen=True)
class ReconciliationSummary:
    """People's votes in a campaign by what the crowd platform's record says of who cast them (staff page)."""

    count_only_reconciled: bool
    last_reconciled_at: datetime | None
    rows: list[StandingRow]

    def _row(self, status: str) -> StandingRow | None:
        return next((row for row in self.rows if row.status == status), None)

    @property
    def unknown_votes(self) -> int:
        """Votes of participants the platform does not know: in no submission of the study it holds."""
        row = self._row(PlatformStatus.UNKNOWN)
        return row.votes if row else 0

    @property
    def unknown_participants(self) -> int:
        row = self._row(PlatformStatus.UNKNOWN)
        return row.participants if row else 0


def get_reconciliation_summary(*, campaign: Campaign) -> ReconciliationSummary:
    """How many participants, and how many of their votes, the last imported platform record put in each status."""
    status = CampaignParticipation.objects.filter(
        campaign_id=OuterRef("comparison__campaign_id"), participant_id=OuterRef("comparison__participant_id")
    ).values("platform_status")[:1]
    grouped = (
        Vote.objects.by_people()
        .filter(comparison__campaign=campaign)
        .annotate(platform_status=Subquery(status))
        .values("platform_status")
        .annotate(votes=Count("id"), participants=Count("comparison__participant_id", distinct=True))
        .order_by()
    )
    found: dict[str, tuple[int, int]] = {}
    for row in grouped:
        key = row["platform_status"] or ""
        participants, votes = found.get(key, (0, 0))
        found[key] = (participants + row["participants"], votes + row["votes"])
    rows = [StandingRow(value, label, *found[value]) for value, label in PlatformStatus.choices if value in found]
    last = CampaignParticipation.objects.filter(campaign=campaign).aggregate(at=Max("reconciled_at"))["at"]
    return ReconciliationSummary(
        count_only_reconciled=campaign.count_only_reconciled, last_reconciled_at=last, rows=rows
    )
