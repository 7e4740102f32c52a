"""The staff quality page: every participant's signals, agreement, gold per source, a CSV, and applying the flags."""

from __future__ import annotations

import csv

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from annotation.permissions import staff_area
from annotation.selectors import get_managed_campaign
from core.spreadsheets import spreadsheet_cell
from quality.scoring import QUALITY_COLUMN_LABELS, QUALITY_CSV_FIELDS
from quality.selectors import get_quality_reports
from quality.services import apply_quality_review


@staff_area
def quality_page(request: HttpRequest, slug: str) -> HttpResponse:
    """Every participant's quality signals, agreement per criterion, gold per source, a CSV, and applying flags."""
    campaign = get_managed_campaign(slug=slug, user=request.user)
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
        # Read in spreadsheet programs: text that would run as a formula is written as text.
        writer.writerows({k: spreadsheet_cell(v) for k, v in report.as_row().items()} for report in reports)
        return response
    context = {
        "campaign": campaign,
        "columns": [QUALITY_COLUMN_LABELS[field] for field in QUALITY_CSV_FIELDS],
        "rows": [report.as_row() for report in reports],
        "agreement": agreement,
        "gold_by_source": gold_by_source,
        "flagged": sum(report.flagged for report in reports),
    }
    return render(request, "quality/report.html", context)
