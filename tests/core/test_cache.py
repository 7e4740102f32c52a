"""The shared cache on Redis: one connection pool per server process, whatever Django does per request."""

from __future__ import annotations

import contextvars

import pytest
from django.conf import settings
from django.core.cache import caches


def _read_in_a_fresh_context() -> tuple[object, int]:
    """A cache read as one ASGI request makes it: in a context of its own, where Django builds its own backend."""
    backend = caches["default"]
    backend.get("poparena-test-probe")
    return backend, backend._cache.get_client().client_id()  # type: ignore[attr-defined]


def test_requests_in_their_own_contexts_reuse_one_redis_connection():
    if not settings.REDIS_URL:
        pytest.skip("the shared cache is Redis only with REDIS_URL")
    # Given twenty cache reads, each in a context of its own as ASGI requests are,
    reads = [contextvars.Context().run(_read_in_a_fresh_context) for _ in range(20)]
    # Django built a backend for each (the test would prove nothing otherwise),
    assert len({id(backend) for backend, _ in reads}) == 20
    # but all went over the same Redis connection: none was opened per request.
    assert len({connection for _, connection in reads}) == 1
