"""How a campaign names itself as the owner of its generation demand (pure: no queries)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from annotation.models import Campaign


def demand_owner(campaign: Campaign) -> str:
    """The owner string of a campaign's Demand rows; generation knows campaigns only by it."""
    return f"campaign:{campaign.slug}"
