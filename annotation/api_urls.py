"""API routes for campaigns under /api/v1/."""

from django.urls import path

from annotation import api

urlpatterns = [
    path("campaigns/", api.CampaignListApi.as_view(), name="api-campaign-list"),
    path("campaigns/<slug:slug>/", api.CampaignDetailApi.as_view(), name="api-campaign-detail"),
]
