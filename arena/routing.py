"""WebSocket routes (live leaderboard, "your next comparison is ready")."""

from django.urls import URLPattern

websocket_urlpatterns: list[URLPattern] = []
