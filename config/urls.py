"""Top-level URL map: pages, the versioned JSON API, its schema, the admin and local media."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/", include("annotation.api_urls")),
    path("", include("annotation.urls")),
]

if settings.SERVE_MEDIA:
    # django.conf.urls.static.static() only works with DEBUG on; the embedded default serves
    # its local media with DEBUG off too.
    prefix = settings.MEDIA_URL.lstrip("/")
    urlpatterns.append(re_path(rf"^{prefix}(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT}))
