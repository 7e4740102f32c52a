"""Page routes for voting."""

from django.urls import path

from arena import views

urlpatterns = [
    path("c/<slug:slug>/", views.vote_page, name="vote"),
    path("c/<slug:slug>/leaderboard/", views.leaderboard_page, name="leaderboard"),
    path("c/<slug:slug>/done/", views.completion_page, name="completion"),
]
