"""Top-level URL map: pages, the versioned JSON API, its schema, the admin and local media."""

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponseBase
from django.urls import include, path, re_path
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView

from core.api import storage_down_response
from core.api_docs import ApiDocsView
from core.health import HealthApi
from generation.media_io import storage_unreachable, unavailable

# Under /api/ even a URL that matches no route answers {"error": {...}} as JSON.
handler400 = "core.api.bad_request"
handler404 = "core.api.not_found"
handler500 = "core.api.server_error"

urlpatterns = [
    path("admin/exports/", include("exports.urls")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", ApiDocsView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/health", HealthApi.as_view(), name="api-health"),
    path("api/v1/", include("generation.api_urls")),
    path("api/v1/", include("annotation.api_urls")),
    path("api/v1/", include("arena.api_urls")),
    path("api/v1/", include("exports.api_urls")),
    path("staff/", include("arena.staff_urls")),
    path("", include("annotation.urls")),
    path("", include("arena.urls")),
    path("", include("quality.urls")),
]


def serve_media(request: HttpRequest, path: str) -> HttpResponseBase:
    # django.conf.urls.static.static() only works with DEBUG on; the embedded default serves
    # its local media with DEBUG off too. MEDIA_ROOT is read per request, not at import.
    try:
        return serve(request, path, document_root=str(settings.MEDIA_ROOT))
    except OSError as error:
        # A disk that fails (EIO, a lost network mount) is an outage: 503 with Retry-After, as the comparison
        # images answer, not a 500. A missing file is serve()'s 404; a permission error stays a 500.
        if not storage_unreachable(error):
            raise
        return storage_down_response(unavailable(error, "serving a media file"))


if settings.SERVE_MEDIA:
    urlpatterns.append(re_path(rf"^{settings.MEDIA_URL.lstrip('/')}(?P<path>.*)$", serve_media))
