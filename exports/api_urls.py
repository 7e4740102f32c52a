"""Staff-only export API routes under /api/v1/."""

from django.urls import path

from exports import api

urlpatterns = [
    path("campaigns/<slug:slug>/exports", api.CampaignExportsApi.as_view(), name="api-campaign-exports"),
    path(
        "campaigns/<slug:slug>/exports/<slug:name>.zip",
        api.ExportDownloadApi.as_view(),
        name="api-campaign-export-download",
    ),
]
