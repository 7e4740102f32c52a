"""API routes for voting under /api/v1/ (names as in DESIGN.md)."""

from django.urls import path

from arena import api, group_api, metrics_api, participant_api

urlpatterns = [
    path("campaigns/<slug:slug>/comparisons/next", api.NextComparisonApi.as_view(), name="api-next-comparison"),
    path("campaigns/<slug:slug>/leaderboard", api.LeaderboardApi.as_view(), name="api-leaderboard"),
    path("campaigns/<slug:slug>/leaderboard/groups", group_api.GroupTestApi.as_view(), name="api-leaderboard-groups"),
    path(
        "campaigns/<slug:slug>/leaderboard/weighted",
        group_api.WeightedLeaderboardApi.as_view(),
        name="api-leaderboard-weighted",
    ),
    path("campaigns/<slug:slug>/metrics", metrics_api.MetricsApi.as_view(), name="api-metrics"),
    path(
        "campaigns/<slug:slug>/metrics/prompts/<int:prompt_id>",
        metrics_api.PromptMetricsApi.as_view(),
        name="api-prompt-metrics",
    ),
    path("campaigns/<slug:slug>/consent", participant_api.ConsentApi.as_view(), name="api-consent"),
    path("campaigns/<slug:slug>/questionnaire", participant_api.QuestionnaireApi.as_view(), name="api-questionnaire"),
    path("campaigns/<slug:slug>/withdraw", participant_api.WithdrawApi.as_view(), name="api-withdraw"),
    path("campaigns/<slug:slug>/queue", api.QueueApi.as_view(), name="api-campaign-queue"),
    path("comparisons/<str:token>/votes", api.VotesApi.as_view(), name="api-votes"),
    path("comparisons/<str:token>/lease", api.LeaseApi.as_view(), name="api-lease"),
]
