"""Route of the staff quality page, beside the campaign's vote and leaderboard pages."""

from django.urls import path

from quality import views

urlpatterns = [
    path("c/<slug:slug>/quality/", views.quality_page, name="quality"),
]
