"""How a campaign names itself as the owner of its generation demand, and how a worker's `campaign:SLUG` maps to it.

The owner is `campaign:<primary key>`, never the slug: a slug is an address that can pass to a new
campaign (a draft renamed, a new campaign given a freed slug), and the new campaign must not take
over, or wipe, the old one's queues. Workers still name a campaign by its slug
(`run_generation_worker --campaign SLUG`, the worker API's `owner`); `stored_owner_for` turns that
name into the owner the demand rows carry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from annotation.models import Campaign

CAMPAIGN_OWNER_KIND = "campaign"


def demand_owner(campaign: Campaign) -> str:
    """The owner string of a campaign's Demand rows; generation knows campaigns only by it."""
    return f"{CAMPAIGN_OWNER_KIND}:{campaign.pk}"


def campaign_owner_named(slug: str) -> str | None:
    """The owner of the campaign at `slug` (as a worker names it), or None when there is no such campaign."""
    from annotation.models import Campaign

    pk = Campaign.objects.filter(slug=slug).values_list("pk", flat=True).first()
    return None if pk is None else f"{CAMPAIGN_OWNER_KIND}:{pk}"
