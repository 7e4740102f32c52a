"""Quality control's one write: flag the participants the stated rule flags, and take their votes off the boards."""

from __future__ import annotations

from django.db import transaction

from annotation.models import Campaign
from annotation.services import apply_quality_flags
from arena.tallies import recount_tallies
from quality.selectors import get_quality_reports


@transaction.atomic
def apply_quality_review(*, campaign: Campaign) -> int:
    """Flag every participant the rule flags and recount the tallies, in one transaction; returns how many are new.

    Apart, a failure between the two left flagged participants still counted on the leaderboard.
    """
    reports = get_quality_reports(campaign=campaign).reports
    flags = {int(r.participant): list(r.reasons) for r in reports if r.flagged}  # type: ignore[call-overload]
    flagged = apply_quality_flags(flags=flags)
    recount_tallies(campaign=campaign)
    return flagged
