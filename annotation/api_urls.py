"""API routes for campaigns under /api/v1/."""

from django.urls import path

from annotation import api, imports_api, prompts_api

urlpatterns = [
    path("campaigns/", api.CampaignListApi.as_view(), name="api-campaign-list"),
    path("campaigns/<slug:slug>/", api.CampaignDetailApi.as_view(), name="api-campaign-detail"),
    path("campaigns/<slug:slug>/prompts", prompts_api.CampaignPromptsApi.as_view(), name="api-campaign-prompts"),
    path("campaigns/<slug:slug>/imports", imports_api.CampaignImportsApi.as_view(), name="api-campaign-imports"),
]
