"""Staff pages for exports, in the admin's look: run an export of a campaign, list earlier ones, download a zip."""

from __future__ import annotations

from pathlib import Path

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render

from annotation.models import Campaign
from annotation.permissions import staff_area
from core.errors import ApplicationError
from exports.forms import ExportForm
from exports.publish import campaign_exports_folder, get_server_export
from exports.selectors import get_export_campaign, list_exports
from exports.services import export_to_server
from exports.writers.zipping import iter_zip


@staff_area
def campaign_exports(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = get_export_campaign(slug=slug, user=request.user)
    form = ExportForm(request.POST or None, campaign=campaign)
    if request.method == "POST" and form.is_valid():
        try:
            result = export_to_server(campaign=campaign, options=form.options())
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            counts = result.manifest["counts"]
            rows = ", ".join(f"{n} {split}" for split, n in counts["rows"].items())
            messages.success(request, f"Exported {result.manifest['format']}: {rows} rows ({result.path.name}).")
            for warning in result.warnings:
                messages.warning(request, warning)
            return redirect("exports:campaign", slug=campaign.slug)
    context = {
        **admin.site.each_context(request),
        "title": f"Export preference data: {campaign}",
        "campaign": campaign,
        "opts": Campaign._meta,
        "form": form,
        "exports": list_exports(folder=campaign_exports_folder(campaign)),
    }
    return render(request, "exports/campaign_exports.html", context)


@staff_area
def download_export(request: HttpRequest, slug: str, name: str) -> StreamingHttpResponse:
    campaign = get_export_campaign(slug=slug, user=request.user)
    folder = get_server_export(campaign=campaign, name=name)
    return zip_response(folder, f"{campaign.slug}-{name}")


def zip_response(folder: Path, stem: str) -> StreamingHttpResponse:
    """The export folder as a zip streamed while it is built; its entries sit under one folder named `stem`."""
    response = StreamingHttpResponse(iter_zip(folder, stem), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{stem}.zip"'
    return response
