"""Quality control's one write: flag, in the reviewed campaign, the participants the stated rule flags."""

from __future__ import annotations

from django.db import transaction

from annotation.models import Campaign
from arena.participation import set_flags
from quality.selectors import get_quality_reports


@transaction.atomic
def apply_quality_review(*, campaign: Campaign) -> int:
    """Flag every participant the rule flags in this campaign and recount its tallies; returns how many are new.

    The flag is the campaign's (arena.participation.set_flags): the same participant's votes in another
    study still count there, and that study's completion code and exports are unchanged. Participants
    flagged before keep their first reason.
    """
    reports = get_quality_reports(campaign=campaign).reports
    flags: dict[int, str | None] = {
        int(r.participant): "; ".join(r.reasons)  # type: ignore[call-overload]
        for r in reports
        if r.flagged
    }
    return set_flags(campaign=campaign, flags=flags, keep_reasons=True)
