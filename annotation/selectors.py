"""Reads for campaigns."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from annotation.models import Campaign
from core.errors import NotFound


def list_campaigns(*, listed_only: bool = True) -> QuerySet[Campaign]:
    """Campaigns with their prompt and generator counts; `listed_only`: open or paused public ones."""
    campaigns = Campaign.objects.annotate(
        prompt_count=Count("prompts", distinct=True), generator_count=Count("generators", distinct=True)
    ).order_by("-created_at")
    if listed_only:
        campaigns = campaigns.filter(
            access=Campaign.Access.PUBLIC, status__in=[Campaign.Status.OPEN, Campaign.Status.PAUSED]
        )
    return campaigns


def get_campaign(*, slug: str, listed_only: bool = False) -> Campaign:
    """The campaign at `slug`, with its criteria prefetched; NotFound names the slug."""
    try:
        return list_campaigns(listed_only=listed_only).prefetch_related("criteria").get(slug=slug)
    except Campaign.DoesNotExist:
        raise NotFound(f"no campaign with slug {slug!r}") from None
