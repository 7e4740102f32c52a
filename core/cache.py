"""Django's Redis cache backend with one client, and so one connection pool, per server process.

Django builds a cache backend per request context under ASGI (`caches` is a context-local), and each
backend its own RedisCacheClient with its own connection pools: every request opened a new TCP
connection to Redis, with redis-py's handshake on it, and dropped it (one connection per request,
counted in Redis's `total_connections_received`). Here every backend of the same location and options
shares one client, whose pools keep their connections across requests; redis-py's pools are
thread-safe and start afresh in a forked child.

The client also keeps one `redis.Redis` per server: Django's builds a fresh one for every get and set,
and its constructor copies some 200 response callbacks, which cost more CPU than the command itself.
A `redis.Redis` holds no connection of its own (it borrows from the pool).
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient as DjangoRedisCacheClient
from django.utils.functional import cached_property


class RedisCacheClient(DjangoRedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        # Django's own private helpers (the type stubs do not list them).
        index = self._get_connection_pool_index(write)  # type: ignore[attr-defined]
        client = self._clients.get(index)
        if client is None:
            # Two threads may both build one; either is fine, both use the same pool.
            pool = self._get_connection_pool(write)  # type: ignore[attr-defined]
            client = self._clients[index] = self._client(connection_pool=pool)  # type: ignore[attr-defined]
        return client


_shared: dict[tuple[tuple[str, ...], str], RedisCacheClient] = {}
_shared_lock = threading.Lock()


class RedisCache(DjangoRedisCache):
    @cached_property
    def _cache(self) -> RedisCacheClient:
        servers: list[str] = self._servers  # type: ignore[attr-defined]  # Django's own attributes
        options: dict[str, Any] = self._options  # type: ignore[attr-defined]
        key = (tuple(servers), repr(sorted(options.items())))
        with _shared_lock:
            client = _shared.get(key)
            if client is None:
                client = _shared[key] = RedisCacheClient(servers, **options)
        return client
