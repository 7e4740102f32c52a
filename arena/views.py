"""The vote page: the first comparison rendered with the page, the rest fetched by vote.js."""

from __future__ import annotations

import math
from urllib.parse import quote

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_safe

from access.throttling import NewSessionThrottle
from annotation.crowd import MTURK_PARAMS, PROLIFIC_PARAMS, is_mturk_preview
from annotation.models import Campaign, Participant
from annotation.permissions import can_manage_campaign
from annotation.selectors import get_campaign, get_preview_sample, is_flagged_in
from annotation.services import (
    AlreadyTookPart,
    CrowdOnly,
    admit_to_campaign,
    find_participant,
    get_crowd_admission,
)
from arena import quota
from arena.admission import admit_to_complete, admit_to_vote
from arena.clients import client_hash
from arena.group_boards import get_group_questions
from arena.image_urls import find_served_image, served_png
from arena.issuing import NothingReady, issue_comparison
from arena.participant_views import gate_page, questionnaire_due_after
from arena.quota import QuotaReached
from arena.selectors import (
    count_votes_cast,
    default_criterion,
    get_categories,
    get_comparison_payload,
    get_leaderboard,
    get_queue_summary,
)
from core.api import storage_down_response
from core.errors import ApplicationError, StorageUnavailable
from core.middleware import allow_mturk_framing

ENTRY_PARAMS = (*PROLIFIC_PARAMS, *MTURK_PARAMS)


def vote_page(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        campaign = get_campaign(slug=slug)
        admit_to_campaign(campaign=campaign, session=request.session, invite=request.GET.get("invite"))
    except ApplicationError as exc:
        return render(request, "arena/unavailable.html", {"message": exc.message}, status=exc.status)
    entry = {key: request.GET[key] for key in ENTRY_PARAMS if request.GET.get(key)}
    if is_mturk_preview(entry):
        # A worker previewing the HIT: the task read-only, with no participant and no comparison made.
        return allow_mturk_framing(_preview(request, campaign))
    if find_participant(session=request.session, user=request.user) is None:
        throttle = NewSessionThrottle()
        if not throttle.allow_request(request, None):  # type: ignore[arg-type]  # reads request.META only
            wait = max(1, math.ceil(throttle.wait() or 1))
            message = f"Too many new sessions from your network; please try again in {wait} s."
            refused = render(request, "arena/unavailable.html", {"message": message, "campaign": campaign}, status=429)
            refused["Retry-After"] = str(wait)
            return refused
    try:
        participant = admit_to_vote(campaign=campaign, session=request.session, user=request.user, entry_params=entry)
    except ApplicationError as exc:  # CrowdOnly, AlreadyTookPart
        if isinstance(exc, CrowdOnly) and can_manage_campaign(request.user, campaign):
            # The campaign's managers see what the crowd will see, and cannot vote: a preview never counts.
            return _preview(request, campaign, staff=True)
        return render(request, "arena/take-part.html", {"message": exc.message, "campaign": campaign}, status=403)
    if (gate := gate_page(request, campaign, participant)) is not None:  # consent, the questionnaire first
        return gate
    context = {"campaign": campaign, "criteria": list(campaign.criteria.all()), "comparison": None, "waiting": None}
    try:
        comparison = issue_comparison(campaign=campaign, participant=participant, client=client_hash(request))
        context["comparison"] = get_comparison_payload(comparison=comparison, participant=participant)
    except NothingReady as exc:
        context["waiting"] = {"message": exc.message, **get_queue_summary(campaign=campaign).as_dict()}
    except ApplicationError as exc:
        if isinstance(exc, QuotaReached):
            return redirect("completion", slug=campaign.slug)
        return render(
            request, "arena/unavailable.html", {"message": exc.message, "campaign": campaign}, status=exc.status
        )
    response = render(request, "arena/vote.html", context)
    return allow_mturk_framing(response) if participant.kind == Participant.Kind.MTURK else response


def _preview(request: HttpRequest, campaign: Campaign, *, staff: bool = False) -> HttpResponse:
    context = {
        "campaign": campaign,
        "criteria": list(campaign.criteria.all()),
        "sample": get_preview_sample(campaign=campaign),
        "staff": staff,
    }
    return render(request, "arena/preview.html", context)


def leaderboard_page(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        campaign = get_campaign(slug=slug)
        admit_to_campaign(campaign=campaign, session=request.session, invite=request.GET.get("invite"))
        # The live board's closed-form intervals: the page's updates carry the same (bootstrap on request).
        initial = get_leaderboard(campaign=campaign, criterion=default_criterion(campaign), intervals="sandwich")
    except ApplicationError as exc:
        return render(request, "arena/unavailable.html", {"message": exc.message}, status=exc.status)
    context = {
        "campaign": campaign,
        "criteria": list(campaign.criteria.all()),
        "categories": get_categories(campaign=campaign),
        "initial": initial,
        "group_questions": get_group_questions(campaign=campaign),
        "has_targets": bool(campaign.population_targets),
        # The per-prompt images name each set's generator: for the campaign's managers only.
        "manages": can_manage_campaign(request.user, campaign),
    }
    return render(request, "arena/leaderboard.html", context)


PROLIFIC_COMPLETION_URL = "https://app.prolific.com/submissions/complete?cc={code}"


def completion_page(request: HttpRequest, slug: str) -> HttpResponse:
    """Where a participant lands after the quota: their code, or the crowd platform's hand-back."""
    try:
        campaign = get_campaign(slug=slug)
        participant = admit_to_complete(campaign=campaign, session=request.session, user=request.user)
    except ApplicationError as exc:
        template = "arena/take-part.html" if isinstance(exc, CrowdOnly | AlreadyTookPart) else "arena/unavailable.html"
        return render(request, template, {"message": exc.message}, status=exc.status)
    if questionnaire_due_after(campaign, participant):
        return redirect("questionnaire", slug=campaign.slug)
    response = _completion_response(request, campaign, participant)
    # An MTurk worker is still inside MTurk's frame, and the hand-back form goes to MTurk.
    return allow_mturk_framing(response) if participant.kind == Participant.Kind.MTURK else response


def _completion_response(request: HttpRequest, campaign: Campaign, participant: Participant) -> HttpResponse:
    votes = count_votes_cast(campaign=campaign, participant=participant)
    context: dict[str, object] = {"campaign": campaign, "votes": votes, "quota": campaign.participant_quota}
    if not quota.reached(campaign, votes):
        context["remaining"] = quota.remaining(campaign, votes)
        return render(request, "arena/complete.html", context)
    # Flagged participants get a different code so the researcher can review them before paying.
    code = campaign.completion_code
    if campaign.completion_code_flagged and is_flagged_in(campaign=campaign, participant=participant):
        code = campaign.completion_code_flagged
    context["code"] = code
    if participant.kind == Participant.Kind.PROLIFIC and code:
        return redirect(PROLIFIC_COMPLETION_URL.format(code=quote(code)))
    if participant.kind == Participant.Kind.MTURK:
        # The raw assignment id lives in this session only (the database keeps it hashed).
        admission = get_crowd_admission(campaign=campaign, session=request.session) or {}
        submit_to = str(admission.get("submit_to", "")).rstrip("/")
        if submit_to not in settings.MTURK_SUBMIT_ORIGINS or not admission.get("assignment_id"):
            context["error"] = "This MTurk assignment came without a valid turkSubmitTo; contact the requester."
        else:
            context["mturk"] = {
                "action": f"{submit_to}/mturk/externalSubmit",
                "assignment_id": admission["assignment_id"],
            }
    return render(request, "arena/complete.html", context)


@require_safe
def comparison_image(request: HttpRequest, token: str, side: str, index: str, mac: str) -> HttpResponse:
    """One picture of a comparison under its minted URL (arena.image_urls); the same bare 404 for anything else.

    The headers say nothing of the stored file (no Last-Modified, ETag or file name), every picture of the
    comparison has one length (arena.image_urls.served_png), and the bytes are read through the storage API, so
    object storage serves them as well as the local disk.
    """
    image = find_served_image(token=token, side=side, index=int(index), mac=mac, now=timezone.now())
    if image is None:
        missing = HttpResponseNotFound("no such image", content_type="text/plain")
        missing["Cache-Control"] = "no-store"
        return missing
    try:
        body = served_png(image)
    except StorageUnavailable as error:
        return storage_down_response(error)
    response = HttpResponse(body, content_type="image/png")
    response["Cache-Control"] = f"private, max-age={settings.COMPARISON_IMAGE_TTL_S}"
    response["X-Content-Type-Options"] = "nosniff"
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    response["Referrer-Policy"] = "no-referrer"
    return response
