"""WebSocket routes."""

from django.urls import path

from arena import consumers

websocket_urlpatterns = [
    path("ws/campaigns/<slug:slug>/queue/", consumers.QueueConsumer.as_asgi()),
    path("ws/campaigns/<slug:slug>/leaderboard/", consumers.LeaderboardConsumer.as_asgi()),
]
