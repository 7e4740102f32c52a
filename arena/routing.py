"""WebSocket routes."""

from django.urls import path

from arena import consumers

websocket_urlpatterns = [
    path("ws/campaigns/<slug:slug>/queue/", consumers.QueueConsumer.as_asgi()),
]
