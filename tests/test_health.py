"""GET /api/v1/health: the database and the channel layer, for load balancers; 503 names what fails."""

from __future__ import annotations

import pytest
from django.db import OperationalError
from rest_framework.test import APIClient

from core import health

pytestmark = pytest.mark.django_db


def test_healthy_site_answers_200_with_each_check():
    response = APIClient().get("/api/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "channel_layer": "ok"}}


def test_health_needs_no_login_and_ignores_a_bad_token():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer pa_wrong")
    assert client.get("/api/v1/health").status_code == 200


def test_an_unreachable_channel_layer_gives_503_naming_it(settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]}}
    }
    response = APIClient().get("/api/v1/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["channel_layer"].startswith("error: ")
    assert body["error"]["code"] == "unhealthy"
    assert body["error"]["message"].startswith("channel_layer: error")


def test_a_silent_channel_layer_times_out(settings, monkeypatch):
    settings.HEALTH_CHANNEL_TIMEOUT_S = 0.2
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

    async def never(self, channel):  # type: ignore[no-untyped-def]
        import asyncio

        await asyncio.sleep(10)

    monkeypatch.setattr("channels.layers.InMemoryChannelLayer.receive", never)
    assert health.check_channel_layer() == "error: no message came back within 0.2 s"


def test_a_failing_database_gives_503_naming_it(monkeypatch):
    def broken():  # type: ignore[no-untyped-def]
        raise OperationalError("connection to server at 10.0.0.5 refused")

    monkeypatch.setattr(health.connection, "cursor", broken)
    response = APIClient().get("/api/v1/health")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"] == {"database": "error: OperationalError", "channel_layer": "ok"}
    # Public endpoint: the driver's details (hosts) stay in the log.
    assert "10.0.0.5" not in response.content.decode()
