"""Reads for campaigns, and the sample comparison an MTurk worker sees while previewing a HIT."""

from __future__ import annotations

import copy
import random
import time
import uuid
from typing import Any, TypeAlias

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Prefetch, Q, QuerySet

from annotation.models import Answer, Campaign, CampaignParticipation, Criterion, Participant, Question
from annotation.permissions import can_manage_campaign, managed_campaigns, manages_every_campaign
from core.errors import NotFound
from generation.models import Generator, Image, Population, Prompt

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


# --- the campaign behind every issue and vote, kept per process ----------------------------------------------

# Bumped (deleted, then re-made by the next reader) whenever any campaign or criterion changes.
CAMPAIGNS_VERSION_KEY = "annotation:campaigns-version"
# A safety net for writes that bypass model signals (QuerySet.update): no kept copy is older than this.
CAMPAIGN_COPY_MAX_AGE_S = 30.0
_copies: dict[tuple[str, object], tuple[str, float, Campaign]] = {}
# The attribute of a kept copy that holds its current questions (`current_question_ids` reads it).
LIVE_QUESTIONS = "live_current_questions"


def _campaigns_version() -> str:
    version = cache.get(CAMPAIGNS_VERSION_KEY)
    if version is None:
        cache.add(CAMPAIGNS_VERSION_KEY, uuid.uuid4().hex, None)
        version = cache.get(CAMPAIGNS_VERSION_KEY)
    return str(version)


def get_live_campaign(*, slug: str | None = None, pk: int | None = None) -> Campaign:
    """The campaign (by slug or pk) with its criteria prefetched, from a copy this server process keeps.

    Every issue and vote needs it; two queries each (the campaign, its criteria) cost more than the
    rest of a vote's reads. A change to any campaign or criterion bumps a version in the shared cache
    (see `forget_campaigns`) that every process reads here, one cache round trip, so no process
    serves a copy older than the last committed change. Each caller gets its own shallow copy.
    """
    lookup: tuple[str, object] = ("slug", slug) if slug is not None else ("pk", pk)
    version = _campaigns_version()
    now = time.monotonic()
    entry = _copies.get(lookup)
    if entry is None or entry[0] != version or now - entry[1] > CAMPAIGN_COPY_MAX_AGE_S:
        # Its current questions too, so the questionnaire's gate costs no query on a campaign that asks none.
        current = Question.objects.filter(is_current=True).order_by("position", "id")
        try:
            campaign = Campaign.objects.prefetch_related(
                "criteria", Prefetch("questions", queryset=current, to_attr=LIVE_QUESTIONS)
            ).get(**{lookup[0]: lookup[1]})
        except Campaign.DoesNotExist:
            raise NotFound(f"no campaign with {lookup[0]} {lookup[1]!r}") from None
        entry = (version, now, campaign)
        _copies[lookup] = entry
    return copy.copy(entry[2])


def forget_campaigns(**kwargs: Any) -> None:
    """Receiver of every save and delete of a campaign, criterion or question: all processes re-read their copies.

    At once (this process, and readers that do not wait for the commit) and again after the commit,
    so a reader that fetched the old row between the two cannot keep it under the new version.
    """
    _copies.clear()
    cache.delete(CAMPAIGNS_VERSION_KEY)
    transaction.on_commit(lambda: cache.delete(CAMPAIGNS_VERSION_KEY), using=kwargs.get("using"))


def criteria_in_order(campaign: Campaign) -> list[Criterion]:
    """A campaign's criteria as they are asked: by position, then as created. Read from the campaign's prefetched
    criteria where it has them (get_live_campaign), so a live campaign's order costs no query."""
    return sorted(campaign.criteria.all(), key=lambda criterion: (criterion.position, criterion.pk))


def first_criterion(campaign: Campaign) -> Criterion | None:
    """The criterion asked first: the default board's, the one pairs are sampled by; None before any is added."""
    ordered = criteria_in_order(campaign)
    return ordered[0] if ordered else None


def campaign_populations(
    campaign: Campaign, *, generators: QuerySet[Generator] | None = None, servable: bool = False
) -> QuerySet[Population]:
    """Populations a campaign can serve: ready, of its size N, for its prompts, by its active generators.

    `generators` narrows (gold sources) or widens (metrics measure inactive generators' sets too) the
    generators; `servable` keeps only sets still under the campaign's `votes_per_pair` uses.
    """
    if generators is None:
        generators = campaign.generators.filter(is_active=True)
    populations = Population.objects.ready_for(
        size=campaign.population_size, generators=generators, prompts=campaign.prompts.all()
    )
    return populations.servable(max_uses=campaign.votes_per_pair) if servable else populations


def get_preview_sample(*, campaign: Campaign) -> dict[str, object] | None:
    """A prompt and two ready image sets of it from different generators, to show read-only; None if none yet.

    It reads only: no comparison is issued and no population's use is counted, so previews
    (which MTurk shows to every worker who looks at the HIT) leave no trace in the data.
    """
    candidates = (
        campaign_populations(campaign)
        .order_by("prompt_id", "generator_id", "pk")
        .values_list("pk", "prompt_id", "generator_id")[:PREVIEW_SCAN_LIMIT]
    )
    first_by_generator: dict[int, dict[int, int]] = {}
    chosen: tuple[int, int, int] | None = None
    for population_id, prompt_id, generator_id in candidates:
        by_generator = first_by_generator.setdefault(prompt_id, {})
        by_generator.setdefault(generator_id, population_id)
        if len(by_generator) == 2:
            # Sides at random, as in every comparison: in id order the lower generator was always on the left.
            left, right = random.SystemRandom().sample(list(by_generator.values()), 2)
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


def is_flagged_in(*, campaign: Campaign, participant: Participant) -> bool:
    """Whether quality control flagged `participant` in this campaign (a flag elsewhere does not count here)."""
    return CampaignParticipation.objects.filter(campaign=campaign, participant=participant, is_flagged=True).exists()


def visible_prompts(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Prompt]:
    """The prompts `user` may see and add to a campaign: all for staff who manage every campaign; for a
    researcher those of campaigns they manage, those they made, and those staff marked shared; none for others."""
    if manages_every_campaign(user):
        return Prompt.objects.all()
    if not user.is_authenticated:
        return Prompt.objects.none()
    mine = Prompt.objects.filter(campaigns__in=managed_campaigns(user).values("pk")).values("pk")
    return Prompt.objects.filter(Q(pk__in=mine) | Q(is_shared=True) | Q(owner_id=user.pk))


# --- questionnaire answers ------------------------------------------------------------------------------------

# One answer: a string (single choice, short text, or "prefer not to say"), a list of strings (several choices)
# or a number (int or float).
AnswerValue: TypeAlias = str | list[str] | int | float


def get_current_questions(*, campaign: Campaign) -> list[Question]:
    """The campaign's questions in their current versions, in the order participants see them."""
    return list(Question.objects.filter(campaign=campaign, is_current=True).order_by("position", "id"))


def current_question_ids(campaign: Campaign) -> tuple[int, ...]:
    """The ids of the campaign's current questions, in id order: no query on a copy from `get_live_campaign`."""
    kept: list[Question] | None = getattr(campaign, LIVE_QUESTIONS, None)
    if kept is None:
        rows = Question.objects.filter(campaign=campaign, is_current=True).order_by("pk").values_list("pk", flat=True)
        return tuple(rows)
    return tuple(sorted(question.pk for question in kept))


def get_participant_answers(campaign: Campaign) -> dict[int, dict[str, AnswerValue]]:
    """Every participant's answers in `campaign`: participant id -> question key -> value.

    Participants who withdrew from the campaign are left out (their answers are deleted when they withdraw;
    this is the rule again for readers). An answer is keyed by its question's key whatever version it was
    given under; where a participant has answers to several versions of one key, the latest answer holds.
    Simulated participants answer nothing. Small-group suppression is the reader's: see
    `Campaign.min_group_size`.
    """
    withdrawn = CampaignParticipation.objects.filter(campaign=campaign, withdrawn_at__isnull=False).values(
        "participant_id"
    )
    rows = (
        Answer.objects.filter(response__campaign=campaign)
        .exclude(response__participant_id__in=withdrawn)
        .order_by("answered_at", "id")
        .values_list("response__participant_id", "question__key", "value")
    )
    answers: dict[int, dict[str, AnswerValue]] = {}
    for participant_id, key, value in rows:
        answers.setdefault(participant_id, {})[key] = value
    return answers
