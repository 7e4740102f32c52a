"""Staff pages: the dashboard of managed campaigns, creating one, its live vote progress and status."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from annotation.forms import CampaignForm
from annotation.importing import import_populations_zip
from annotation.models import Campaign
from annotation.permissions import managed_campaigns, staff_area
from annotation.selectors import get_managed_campaign
from annotation.services import create_campaign, set_campaign_status
from arena.forms import PlatformRecordForm, PopulationImportForm
from arena.participation import import_platform_record, set_count_only_reconciled
from arena.selectors.progress import (
    PROMPT_ROWS,
    get_campaign_progress,
    get_reconciliation_summary,
    list_campaign_summaries,
)
from core.errors import ApplicationError
from generation.providers.budgets import get_api_costs
from generation.selectors import get_blank_counts

# Prolific replaces these placeholders with the participant's ids in the study URL.
PROLIFIC_QUERY = "PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
STATUS_ACTIONS = {
    Campaign.Status.OPEN: "Open",
    Campaign.Status.PAUSED: "Pause",
    Campaign.Status.CLOSED: "Close",
}


@staff_area
def dashboard(request: HttpRequest) -> HttpResponse:
    summaries = list_campaign_summaries(campaigns=managed_campaigns(request.user).order_by("-created_at"))
    return render(request, "arena/staff/dashboard.html", {"summaries": summaries})


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
    return render(request, "arena/staff/campaign_new.html", {"form": form})


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
    campaign = get_managed_campaign(slug=slug, user=request.user)
    context = {
        "campaign": campaign,
        "progress": get_campaign_progress(campaign=campaign),
        "prompt_rows": PROMPT_ROWS,
        "links": _entry_links(request, campaign),
        "actions": [(status, label) for status, label in STATUS_ACTIONS.items() if status != campaign.status],
        "reconciliation": get_reconciliation_summary(campaign=campaign),
        "record_form": PlatformRecordForm(),
        "import_form": PopulationImportForm(),
        "api_costs": get_api_costs(
            generator_ids=campaign.generators.values_list("pk", flat=True),
            prompt_ids=campaign.prompts.values_list("pk", flat=True),
        ),
        "blank_counts": get_blank_counts(
            generator_ids=campaign.generators.values_list("pk", flat=True),
            prompt_ids=campaign.prompts.values_list("pk", flat=True),
        ),
    }
    return render(request, "arena/staff/campaign_detail.html", context)


@staff_area
def campaign_progress(request: HttpRequest, slug: str) -> JsonResponse:
    campaign = get_managed_campaign(slug=slug, user=request.user)
    response = JsonResponse(get_campaign_progress(campaign=campaign).as_dict())
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@staff_area
def campaign_status(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = get_managed_campaign(slug=slug, user=request.user)
    try:
        set_campaign_status(campaign=campaign, status=request.POST.get("status", ""))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Campaign {campaign.slug!r} is now {campaign.status}.")
    return redirect("staff-campaign", slug=campaign.slug)


@require_POST
@staff_area
def campaign_reconcile(request: HttpRequest, slug: str) -> HttpResponse:
    """Import the crowd platform's record of the study (arena.participation.import_platform_record)."""
    return _import_upload(request, slug, PlatformRecordForm, "record", import_platform_record)


@require_POST
@staff_area
def campaign_count_only_reconciled(request: HttpRequest, slug: str) -> HttpResponse:
    """Switch whether the campaign counts only participants the platform approved or holds for review."""
    campaign = get_managed_campaign(slug=slug, user=request.user)
    value = request.POST.get("count_only_reconciled")
    if value not in ("true", "false"):
        messages.error(request, "count_only_reconciled must be true or false")
    else:
        set_count_only_reconciled(campaign=campaign, value=value == "true")
        messages.success(
            request,
            "Only participants the platform approved or holds for review are counted now."
            if campaign.count_only_reconciled
            else "Every participant in good standing is counted now.",
        )
    return redirect("staff-campaign", slug=campaign.slug)


@require_POST
@staff_area
def campaign_import(request: HttpRequest, slug: str) -> HttpResponse:
    """Import image sets from a zip (annotation.importing: every row checked first, stored whole or not at all)."""
    return _import_upload(request, slug, PopulationImportForm, "archive", import_populations_zip)


def _import_upload(
    request: HttpRequest, slug: str, form_class: type[forms.Form], field: str, service: Callable[..., Any]
) -> HttpResponse:
    """One uploaded file handed to an import service of the campaign; its report or refusal shown on the page."""
    campaign = get_managed_campaign(slug=slug, user=request.user)
    form = form_class(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, "; ".join(str(error) for errors in form.errors.values() for error in errors))
        return redirect("staff-campaign", slug=campaign.slug)
    try:
        result = service(campaign=campaign, data=form.cleaned_data[field])
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "; ".join(result.lines()) + ".")
    return redirect("staff-campaign", slug=campaign.slug)
