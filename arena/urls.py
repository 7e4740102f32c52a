"""Page routes for voting."""

from django.urls import path, re_path

from arena import participant_views, views

urlpatterns = [
    path("c/<slug:slug>/", views.vote_page, name="vote"),
    path("c/<slug:slug>/leaderboard/", views.leaderboard_page, name="leaderboard"),
    path("c/<slug:slug>/done/", views.completion_page, name="completion"),
    path("c/<slug:slug>/questions/", participant_views.questionnaire_page, name="questionnaire"),
    path("c/<slug:slug>/withdraw/", participant_views.withdraw_page, name="withdraw"),
    path("c/<slug:slug>/ended/", participant_views.participation_ended_page, name="participation-ended"),
    # arena.image_urls mints these (its ROUTE_PREFIX is the first segment).
    re_path(
        r"^i/(?P<token>[A-Za-z0-9_-]{1,64})/(?P<side>[lr])(?P<index>0|[1-9][0-9]{0,3})/(?P<mac>[0-9a-f]{1,64})\.png$",
        views.comparison_image,
        name="comparison-image",
    ),
]
