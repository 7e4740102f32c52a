"""A campaign's quota of comparisons per participant: the one rule that issuing, voting, admission and pages ask.

Pure: what the quota says of a participant who has voted `voted` comparisons in the campaign (gold checks and
repeats included: each is a comparison they answered). The count is ComparisonQuerySet.voted_by's: issuing reads it with
the history (statements.count_voted), voting under the participant's row lock, pages with count_votes_cast.
"""

from __future__ import annotations

from annotation.models import Campaign
from core.errors import Conflict


class QuotaReached(Conflict):
    """The participant has answered as many comparisons as the campaign asks of one person."""

    code = "quota_reached"

    def __init__(self, quota: int) -> None:
        super().__init__(f"you have reached this campaign's quota of {quota} comparisons")


def remaining(campaign: Campaign, voted: int) -> int | None:
    """Comparisons still to answer under the quota; None where the campaign sets none."""
    quota = campaign.participant_quota
    return None if quota is None else max(0, quota - voted)


def reached(campaign: Campaign, voted: int) -> bool:
    """Whether a participant who voted `voted` comparisons may answer no more."""
    return remaining(campaign, voted) == 0


def check(campaign: Campaign, voted: int) -> None:
    """QuotaReached where `reached`: nothing more is issued to or taken from this participant."""
    if reached(campaign, voted):
        raise QuotaReached(int(campaign.participant_quota or 0))
