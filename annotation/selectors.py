"""Reads for campaigns, and the sample comparison an MTurk worker sees while previewing a HIT."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db.models import Count, QuerySet

from annotation.models import Campaign
from annotation.permissions import can_manage_campaign
from core.errors import NotFound
from generation.models import Image, Population

PREVIEW_SCAN_LIMIT = 200


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


def get_preview_sample(*, campaign: Campaign) -> dict[str, object] | None:
    """A prompt and two ready image sets of it from different generators, to show read-only; None if none yet.

    It reads only: no comparison is issued and no population's use is counted, so previews
    (which MTurk shows to every worker who looks at the HIT) leave no trace in the data.
    """
    candidates = (
        Population.objects.filter(
            status=Population.Status.READY,
            size=campaign.population_size,
            prompt__in=campaign.prompts.all(),
            generator__in=campaign.generators.filter(is_active=True),
        )
        .order_by("prompt_id", "generator_id", "pk")
        .values_list("pk", "prompt_id", "generator_id")[:PREVIEW_SCAN_LIMIT]
    )
    first_by_generator: dict[int, dict[int, int]] = {}
    chosen: tuple[int, int, int] | None = None
    for population_id, prompt_id, generator_id in candidates:
        by_generator = first_by_generator.setdefault(prompt_id, {})
        by_generator.setdefault(generator_id, population_id)
        if len(by_generator) == 2:
            left, right = by_generator.values()
            chosen = (prompt_id, left, right)
            break
    if chosen is None:
        return None
    prompt_id, left, right = chosen
    urls: dict[int, list[str]] = {left: [], right: []}
    for image in Image.objects.filter(population_id__in=(left, right)).only("population_id", "file").order_by("index"):
        urls[image.population_id].append(image.file.url)
    caption = campaign.prompts.filter(pk=prompt_id).values_list("caption", flat=True).first()
    return {"prompt": caption, "left": urls[left], "right": urls[right]}


def get_managed_campaign(*, slug: str, user: AbstractBaseUser | AnonymousUser) -> Campaign:
    """The campaign at `slug` if `user` manages it (a researcher only their own); NotFound otherwise, naming the slug.

    A campaign someone may not manage answers exactly as one that does not exist, so its slug leaks nothing.
    """
    campaign = get_campaign(slug=slug)
    if not can_manage_campaign(user, campaign):
        raise NotFound(f"no campaign with slug {slug!r}")
    return campaign
