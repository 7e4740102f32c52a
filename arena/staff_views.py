"""Staff pages: the dashboard of managed campaigns, creating one, its live vote progress, its quality report."""

from __future__ import annotations

import csv
from collections.abc import Callable
from functools import wraps
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from annotation.forms import CampaignForm
from annotation.models import Campaign
from annotation.permissions import can_use_staff_pages, managed_campaigns
from annotation.quality import QUALITY_CSV_FIELDS
from annotation.selectors import get_managed_campaign
from annotation.services import create_campaign, set_campaign_status
from arena.quality_review import apply_quality_review
from arena.selectors import get_quality_reports
from arena.selectors_progress import PROMPT_ROWS, get_campaign_progress, list_campaign_summaries
from core.errors import ApplicationError, NotFound

View = Callable[..., HttpResponse]
# Prolific replaces these placeholders with the participant's ids in the study URL.
PROLIFIC_QUERY = "PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
STATUS_ACTIONS = {
    Campaign.Status.OPEN: "Open",
    Campaign.Status.PAUSED: "Pause",
    Campaign.Status.CLOSED: "Close",
}


def staff_area(view: View) -> View:
    """Staff and researchers only: others log in first, or are refused if they are only participants."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not can_use_staff_pages(request.user):
            raise PermissionDenied("staff and researchers only")
        return view(request, *args, **kwargs)

    return wrapped


def _managed(request: HttpRequest, slug: str) -> Campaign:
    try:
        return get_managed_campaign(slug=slug, user=request.user)
    except NotFound as exc:  # someone else's campaign answers exactly like a missing one
        raise Http404(exc.message) from None


@staff_area
def dashboard(request: HttpRequest) -> HttpResponse:
    summaries = list_campaign_summaries(campaigns=managed_campaigns(request.user).order_by("-created_at"))
    return render(request, "annotation/staff/dashboard.html", {"summaries": summaries})


@staff_area
def campaign_new(request: HttpRequest) -> HttpResponse:
    form = CampaignForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            spec, open_now = form.to_spec(), form.cleaned_data["open_now"]
            campaign = create_campaign(spec=spec, owner_id=request.user.pk, open_now=open_now)
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Campaign {campaign.slug!r} created ({campaign.status}).")
            return redirect("staff-campaign", slug=campaign.slug)
    return render(request, "annotation/staff/campaign_new.html", {"form": form})


def _entry_links(request: HttpRequest, campaign: Campaign) -> dict[str, str]:
    vote_url = request.build_absolute_uri(reverse("vote", args=[campaign.slug]))
    links = {"vote": vote_url}
    if campaign.access == Campaign.Access.INVITE:
        links["invite"] = f"{vote_url}?{urlencode({'invite': campaign.invite_token})}"
    else:
        links["prolific"] = f"{vote_url}?{PROLIFIC_QUERY}"
        # MTurk's ExternalQuestion URL: MTurk itself appends workerId, assignmentId, hitId and turkSubmitTo.
        links["mturk"] = vote_url
    return links


@staff_area
def campaign_detail(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = _managed(request, slug)
    context = {
        "campaign": campaign,
        "progress": get_campaign_progress(campaign=campaign),
        "prompt_rows": PROMPT_ROWS,
        "links": _entry_links(request, campaign),
        "actions": [(status, label) for status, label in STATUS_ACTIONS.items() if status != campaign.status],
    }
    return render(request, "annotation/staff/campaign_detail.html", context)


@staff_area
def campaign_progress(request: HttpRequest, slug: str) -> JsonResponse:
    campaign = _managed(request, slug)
    response = JsonResponse(get_campaign_progress(campaign=campaign).as_dict())
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@staff_area
def campaign_status(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = _managed(request, slug)
    try:
        set_campaign_status(campaign=campaign, status=request.POST.get("status", ""))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Campaign {campaign.slug!r} is now {campaign.status}.")
    return redirect("staff-campaign", slug=campaign.slug)


@staff_area
def quality_page(request: HttpRequest, slug: str) -> HttpResponse:
    """Every participant's quality signals, agreement per criterion, gold per source, a CSV, and applying flags."""
    campaign = _managed(request, slug)
    if request.method == "POST":
        flagged = apply_quality_review(campaign=campaign)
        messages.success(
            request,
            f"{flagged} participant(s) newly flagged; their votes are kept, marked and left out of leaderboards.",
        )
        return redirect("quality", slug=slug)
    reports, agreement, gold_by_source = get_quality_reports(campaign=campaign)
    if request.GET.get("format") == "csv":
        response = HttpResponse(content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="{campaign.slug}-quality.csv"'
        writer = csv.DictWriter(response, fieldnames=QUALITY_CSV_FIELDS)
        writer.writeheader()
        writer.writerows(report.as_row() for report in reports)
        return response
    context = {
        "campaign": campaign,
        "fields": QUALITY_CSV_FIELDS,
        "rows": [report.as_row() for report in reports],
        "agreement": agreement,
        "gold_by_source": gold_by_source,
        "flagged": sum(report.flagged for report in reports),
    }
    return render(request, "arena/quality.html", context)
