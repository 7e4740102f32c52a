"""Health checks: the database answers and is migrated, and the channel layer carries a message."""

from __future__ import annotations

import asyncio
import logging
import secrets

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections
from django.db.migrations.executor import MigrationExecutor
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

logger = logging.getLogger(__name__)
OK = "ok"


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:  # any driver error means unhealthy
        # The details (hosts, users) go to the log only: this endpoint is public.
        logger.warning("health: database check failed: %s", error)
        return f"error: {type(error).__name__}"
    return OK


def pending_migrations(alias: str = DEFAULT_DB_ALIAS) -> int | None:
    """How many migrations the database still lacks; None while it cannot be read (being created, or locked)."""
    try:
        executor = MigrationExecutor(connections[alias])
        return len(executor.migration_plan(executor.loader.graph.leaf_nodes()))
    except DatabaseError:
        return None


async def _round_trip(timeout_s: float) -> str:
    layer = get_channel_layer()
    if layer is None:
        return "error: no channel layer is configured"
    channel = await layer.new_channel("health.")
    nonce = secrets.token_hex(8)
    await layer.send(channel, {"type": "health.check", "nonce": nonce})
    message = await asyncio.wait_for(layer.receive(channel), timeout=timeout_s)
    return OK if message.get("nonce") == nonce else "error: a different message came back"


def check_channel_layer() -> str:
    try:
        return async_to_sync(_round_trip)(settings.HEALTH_CHANNEL_TIMEOUT_S)
    except TimeoutError:
        return f"error: no message came back within {settings.HEALTH_CHANNEL_TIMEOUT_S:g} s"
    except Exception as error:  # a refused connection, a bad URL, ...
        logger.warning("health: channel layer check failed: %s", error)
        return f"error: {type(error).__name__}"


HEALTH = inline_serializer(
    "Health",
    {
        "status": serializers.CharField(help_text="ok or error"),
        "checks": inline_serializer(
            "HealthChecks", {"database": serializers.CharField(), "channel_layer": serializers.CharField()}
        ),
    },
)
UNHEALTHY = inline_serializer(
    "Unhealthy",
    {
        "status": serializers.CharField(help_text="ok or error"),
        "checks": inline_serializer(
            "UnhealthyChecks", {"database": serializers.CharField(), "channel_layer": serializers.CharField()}
        ),
        "error": inline_serializer(
            "UnhealthyError", {"code": serializers.CharField(), "message": serializers.CharField()}
        ),
    },
)


class HealthApi(APIView):
    """200 when every check passes, 503 naming the failing ones; open to all and never throttled."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(auth=[], responses={200: HEALTH, 503: UNHEALTHY})
    def get(self, request: Request) -> Response:
        checks = {"database": check_database(), "channel_layer": check_channel_layer()}
        failing = [name for name, result in checks.items() if result != OK]
        if not failing:
            return Response({"status": OK, "checks": checks})
        message = "; ".join(f"{name}: {checks[name]}" for name in failing)
        body = {"status": "error", "checks": checks, "error": {"code": "unhealthy", "message": message}}
        return Response(body, status=503)
