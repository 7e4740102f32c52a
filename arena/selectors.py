"""Reads for the arena: what a participant sees of a comparison, and how full the queues are."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from annotation.models import Campaign, Participant
from annotation.services import demand_owner
from arena.models import Comparison, Vote
from generation.models import Image
from generation.selectors import get_queue_states


def _image_urls(population_id: int) -> list[str]:
    # In generation order; the URLs are random storage names that say nothing about the generator.
    return [image.file.url for image in Image.objects.filter(population_id=population_id).order_by("index")]


def count_votes_cast(*, campaign: Campaign, participant: Participant) -> int:
    return Comparison.objects.filter(campaign=campaign, participant=participant, status=Comparison.Status.VOTED).count()


def get_comparison_payload(*, comparison: Comparison, participant: Participant) -> dict[str, Any]:
    """What the page and the API show before the vote: nothing that tells the sides apart."""
    campaign = comparison.campaign
    return {
        "token": comparison.token,
        "prompt": comparison.prompt.caption,
        "criteria": [{"key": c.key, "question": c.question} for c in campaign.criteria.all()],
        "left": {"images": _image_urls(comparison.left_population_id)},
        "right": {"images": _image_urls(comparison.right_population_id)},
        "expires_at": comparison.lease_until.isoformat(),
        "progress": {
            "votes_cast": count_votes_cast(campaign=campaign, participant=participant),
            "quota": campaign.participant_quota,
        },
    }


@dataclass(frozen=True)
class QueueSummary:
    """How far generation is for a campaign, without naming generators."""

    ready: int
    wanted: int
    in_progress: int

    def as_dict(self) -> dict[str, int]:
        return {"ready": self.ready, "wanted": self.wanted, "in_progress": self.in_progress}


def get_queue_summary(*, campaign: Campaign) -> QueueSummary:
    states = get_queue_states(owner=demand_owner(campaign))
    return QueueSummary(
        ready=sum(min(s.available, s.high_watermark) for s in states),
        wanted=sum(s.high_watermark for s in states),
        in_progress=sum(s.in_flight for s in states),
    )


def get_vote_outcomes(*, campaign: Campaign, criterion: str) -> list[tuple[str, str, str]]:
    """Every vote on `criterion` as (left generator, right generator, choice), in the order cast."""
    rows = (
        Vote.objects.filter(comparison__campaign=campaign, criterion__key=criterion)
        .order_by("pk")
        .values_list(
            "comparison__left_population__generator__name", "comparison__right_population__generator__name", "choice"
        )
    )
    return list(rows)


def get_generator_ratings(*, campaign: Campaign, criterion: str) -> dict[str, float]:
    """Bradley-Terry ratings on the Elo scale (mean 1000) of the campaign's generators on one criterion."""
    import choix
    import numpy as np

    names = sorted(campaign.generators.values_list("name", flat=True))
    index = {name: i for i, name in enumerate(names)}
    counts = np.zeros((len(names), len(names)))
    for left, right, choice in get_vote_outcomes(campaign=campaign, criterion=criterion):
        a, b = index[left], index[right]
        if choice == "left":
            counts[a, b] += 1
        elif choice == "right":
            counts[b, a] += 1
        else:  # a tie or both bad is half a win each way, as in Chatbot Arena
            counts[a, b] += 0.5
            counts[b, a] += 0.5
    if len(names) < 2 or not counts.any():
        return {name: 1000.0 for name in names}
    strengths = choix.ilsr_pairwise_dense(counts, alpha=0.01)
    ratings = 1000 + 400 / np.log(10) * (strengths - strengths.mean())
    return {name: float(ratings[i]) for name, i in index.items()}
