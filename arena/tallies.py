"""Running pair tallies that leaderboards read: add a submission's votes, rebuild from counted votes, announce."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotation.models import Campaign
from arena.models import PairTally, Vote
from arena.statements import upsert_tallies
from arena.watching import claim_push
from core import choices

logger = logging.getLogger(__name__)


def record_tallies(
    *,
    campaign_id: int,
    left: int,
    right: int,
    category: str,
    criteria: dict[str, int],
    answers: Sequence[tuple[str, str]],
) -> None:
    """Add one submission's (criterion, choice) answers to the running pair counts, for all prompts and the category.

    Generator `left` was shown on the left; `criteria` maps each answer's criterion to its id.
    """
    categories = list(dict.fromkeys(["", category]))
    now = timezone.now()
    rows = []
    for criterion, choice in answers:
        a, b, counts = choices.tally_counts(left, right, choice)
        for category in categories:
            rows.append((campaign_id, criteria[criterion], category, a, b, counts, now))
    upsert_tallies(rows)


@transaction.atomic
def recount_tallies(*, campaign: Campaign) -> int:
    """Rebuild a campaign's pair tallies from its counted votes (no flagged or simulated participants); returns them."""
    PairTally.objects.filter(campaign=campaign).delete()
    votes = (
        Vote.objects.counted()
        .filter(comparison__campaign=campaign)
        .select_related("comparison__prompt", "comparison__left_population", "comparison__right_population")
        .order_by("comparison_id")
    )
    counted = 0
    by_comparison: dict[int, list[Vote]] = defaultdict(list)
    for vote in votes.iterator(chunk_size=2000):
        by_comparison[vote.comparison_id].append(vote)
    for group in by_comparison.values():
        comparison = group[0].comparison
        criteria = {str(v.criterion_id): v.criterion_id for v in group}
        record_tallies(
            campaign_id=comparison.campaign_id,
            left=comparison.left_population.generator_id,
            right=comparison.right_population.generator_id,
            category=comparison.prompt.category,
            criteria=criteria,
            answers=[(str(v.criterion_id), v.choice) for v in group],
        )
        counted += len(group)
    transaction.on_commit(
        partial(announce_leaderboard_change, campaign.slug, list(campaign.criteria.values_list("key", flat=True)))
    )
    return counted


def announce_leaderboard_change(campaign_slug: str, criteria: list[str]) -> None:
    """Tell live leaderboards that votes landed: at most once per settings.LEADERBOARD_PUSH_S and campaign.

    The announcement carries the deadline of its window (arena.watching.claim_push); the processes
    holding the campaign's sockets refit each watched board once at that deadline and push it
    (arena.consumers). Nothing to do, and no channel layer call, while nobody watches the campaign's
    board or while a window is open: its refit will read this vote.
    """
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    deadline = claim_push(campaign_slug, settings.LEADERBOARD_PUSH_S)
    if deadline is None:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(
            leaderboard_group(campaign_slug),
            {"type": "leaderboard.changed", "criteria": criteria, "deadline": deadline},
        )
    except Exception:  # a dead channel layer must not undo or fail a recorded vote
        logger.warning("could not announce a leaderboard change for %s", campaign_slug, exc_info=True)


def leaderboard_group(campaign_slug: str) -> str:
    return f"leaderboard.{campaign_slug}"
