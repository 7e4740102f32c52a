"""The URL lines config/urls.py gains for exports, for tests until they are added there."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/exports/", include("exports.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("exports.api_urls")),
]
