"""Staff export pages; mounted by config/urls.py under admin/exports/, ahead of the admin itself."""

from django.urls import path

from exports import views

app_name = "exports"

urlpatterns = [
    path("campaigns/<slug:slug>/", views.campaign_exports, name="campaign"),
    path("campaigns/<slug:slug>/<slug:name>.zip", views.download_export, name="download"),
]
