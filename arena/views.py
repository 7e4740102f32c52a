"""The vote page: the first comparison rendered with the page, the rest fetched by vote.js."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from annotation.selectors import get_campaign
from annotation.services import MTURK_PARAMS, PROLIFIC_PARAMS, admit_to_campaign, resolve_participant
from arena.selectors import (
    default_criterion,
    get_categories,
    get_comparison_payload,
    get_leaderboard,
    get_queue_summary,
)
from arena.services import NothingReady, issue_comparison
from core.errors import ApplicationError

ENTRY_PARAMS = (*PROLIFIC_PARAMS, *MTURK_PARAMS)


def vote_page(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        campaign = get_campaign(slug=slug)
        admit_to_campaign(campaign=campaign, session=request.session, invite=request.GET.get("invite"))
    except ApplicationError as exc:
        return render(request, "arena/unavailable.html", {"message": exc.message}, status=exc.status)
    entry = {key: request.GET[key] for key in ENTRY_PARAMS if request.GET.get(key)}
    participant = resolve_participant(session=request.session, user=request.user, entry_params=entry)
    context = {"campaign": campaign, "criteria": list(campaign.criteria.all()), "comparison": None, "waiting": None}
    try:
        comparison = issue_comparison(campaign=campaign, participant=participant)
        context["comparison"] = get_comparison_payload(comparison=comparison, participant=participant)
    except NothingReady as exc:
        context["waiting"] = {"message": exc.message, **get_queue_summary(campaign=campaign).as_dict()}
    except ApplicationError as exc:
        return render(
            request, "arena/unavailable.html", {"message": exc.message, "campaign": campaign}, status=exc.status
        )
    return render(request, "arena/vote.html", context)


def leaderboard_page(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        campaign = get_campaign(slug=slug)
        admit_to_campaign(campaign=campaign, session=request.session, invite=request.GET.get("invite"))
        initial = get_leaderboard(campaign=campaign, criterion=default_criterion(campaign))
    except ApplicationError as exc:
        return render(request, "arena/unavailable.html", {"message": exc.message}, status=exc.status)
    context = {
        "campaign": campaign,
        "criteria": list(campaign.criteria.all()),
        "categories": get_categories(campaign=campaign),
        "initial": initial,
    }
    return render(request, "arena/leaderboard.html", context)
