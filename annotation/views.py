"""Pages for campaigns."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from annotation.selectors import list_campaigns


def campaign_list(request: HttpRequest) -> HttpResponse:
    return render(request, "annotation/campaign_list.html", {"campaigns": list_campaigns()})
