"""Page routes for campaigns."""

from django.urls import path

from annotation import views

urlpatterns = [
    path("", views.campaign_list, name="campaign-list"),
]
