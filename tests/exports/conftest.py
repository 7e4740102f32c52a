"""Campaigns with real votes, cast through the arena's own services, for the export tests."""

from __future__ import annotations

import os
import random
from collections.abc import Callable

import pytest

from annotation.models import Campaign, Participant
from arena.issuing import NothingReady, issue_comparison
from arena.models import Comparison
from arena.voting import VoteInput, cast_votes
from tests.arena.conftest import arena_campaign  # noqa: F401 (the fixture, shared)

# Consumers' loaders must never reach for the hub in tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def vote_all(campaign: Campaign, *, participants: int, per_participant: int, seed: int = 7) -> int:
    """Participants vote until they reach their share or nothing is left; the lowest generator id tends to win."""
    rng = random.Random(seed)
    cast = 0
    for _ in range(participants):
        voter = Participant.objects.create()
        for _ in range(per_participant):
            try:
                comparison = issue_comparison(campaign=campaign, participant=voter, rng=rng)
            except NothingReady:
                break
            left = comparison.left_population.generator_id
            right = comparison.right_population.generator_id
            better = "left" if left < right else "right"
            worse = "right" if better == "left" else "left"
            diversity = rng.choices([better, worse, "tie"], weights=[6, 2, 1])[0]
            quality = rng.choice(["left", "right", "tie", "both_bad"])
            cast_votes(
                token=comparison.token,
                participant=voter,
                votes=[VoteInput("diversity", diversity), VoteInput("quality", quality)],
                dwell_ms=rng.randint(500, 9000),
            )
            cast += 1
    return cast


@pytest.fixture
def voted_campaign(arena_campaign) -> Callable[..., Campaign]:  # noqa: F811
    """A campaign of 3 generators x 2 prompts with votes from a dozen participants."""

    def build(*, participants: int = 12, per_participant: int = 4, seed: int = 7, **shape: int) -> Campaign:
        shape = {"generators": 3, "prompts": 2, "per_queue": 2, "votes_per_pair": 3, **shape}
        campaign = arena_campaign(**shape)
        vote_all(campaign, participants=participants, per_participant=per_participant, seed=seed)
        assert Comparison.objects.filter(campaign=campaign, status="voted").exists()
        return campaign

    return build


@pytest.fixture
def exports_root(settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.EXPORTS_ROOT = tmp_path / "exports"
    return settings.EXPORTS_ROOT
