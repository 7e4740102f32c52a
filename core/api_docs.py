"""Offline API docs: Swagger UI from our own static files, with no inline script or style (CSP)."""

from __future__ import annotations

from drf_spectacular.views import SpectacularSwaggerSplitView


class ApiDocsView(SpectacularSwaggerSplitView):
    """The split view serves its start-up script from this same URL (?script), so no inline <script>;
    our template replaces the stock inline <style> with a stylesheet link."""

    template_name = "api/docs.html"
