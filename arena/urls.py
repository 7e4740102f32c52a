"""Page routes for voting."""

from django.urls import path

from arena import staff_views, views

urlpatterns = [
    path("c/<slug:slug>/", views.vote_page, name="vote"),
    path("c/<slug:slug>/leaderboard/", views.leaderboard_page, name="leaderboard"),
    path("c/<slug:slug>/done/", views.completion_page, name="completion"),
    path("c/<slug:slug>/quality/", staff_views.quality_page, name="quality"),
]
