"""Request throttles: per participant (session or user), per client IP and per API token.

Rates come from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] (THROTTLE_* in the environment),
read per request so that a settings override takes effect; a rate of None turns a throttle
off. Counts live in the Django cache (Redis when REDIS_URL is set, so all server processes
share them).

Each throttle counts in a fixed window that opens with a caller's first request and lasts the
rate's period ("1200/min": at most 1200 requests in the minute after the first, then a new
minute). DRF's SimpleRateThrottle keeps a sliding log instead, a list of up to `num_requests`
timestamps read, unpickled, pickled and written back on every request: two Redis round trips
and, at 12000/min, a list of 12000 floats. On Redis the window is one counter and one round
trip: INCR, EXPIRE NX (the window's end is set by the first request only) and PTTL (for
Retry-After) in one MULTI/EXEC, so the counter never outlives its window even if the
connection drops between commands. A fixed window lets a caller make up to twice the rate
across a window boundary; the limits are far above human speed, so that slack is harmless.
Other caches (the in-memory one without REDIS_URL, and the tests' private one) keep the same
window as (end, count) with a get and a set, which is exact within one process.
"""

from __future__ import annotations

import math
from typing import Any

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache import cache as default_cache
from django.core.cache.backends.redis import RedisCache
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from access.permissions import request_token


class _ConfiguredRateThrottle(SimpleRateThrottle):
    who = "this client"
    # Set by SimpleRateThrottle.__init__ from the rate (the stubs leave them out).
    num_requests: int
    duration: int

    def get_rate(self) -> str | None:
        # The stubs type the rates as numbers; DRF and our settings give "1200/min" strings.
        rate: Any = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope or "")
        return rate

    def allow_request(self, request: Request, view: Any) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        count, self.window_left_s = self.count_request(key)
        if count <= self.num_requests:
            return True
        # Read by core.api.exception_handler to say which limit was hit.
        request.throttled_by = f"{self.who} ({self.rate})"  # type: ignore[attr-defined]
        return False

    def wait(self) -> float | None:
        # Retry-After: when the window that refused this request closes.
        return max(self.window_left_s, 0.001)

    def count_request(self, key: str) -> tuple[int, float]:
        """Count one request in the caller's current window: (requests in it so far, seconds until it ends)."""
        # SimpleRateThrottle.cache is django.core.cache.cache, a proxy to the default cache: look behind it.
        backend = caches[DEFAULT_CACHE_ALIAS] if self.cache is default_cache else self.cache
        if isinstance(backend, RedisCache):
            return self._count_in_redis(backend, key)
        return self._count_in_cache(key)

    def _count_in_redis(self, cache: RedisCache, key: str) -> tuple[int, float]:
        # Django's key (prefix and version), so the cache API reads the same counter.
        redis_key = cache.make_and_validate_key(key)
        client = cache._cache.get_client(redis_key, write=True)  # type: ignore[attr-defined]  # Django's own client
        pipe = client.pipeline(transaction=True)
        pipe.incr(redis_key)
        pipe.expire(redis_key, self.duration, nx=True)
        pipe.pttl(redis_key)
        count, _, left_ms = pipe.execute()
        # PTTL is negative only if the key vanished (flushed) after the EXEC: a fresh window.
        return int(count), (left_ms / 1000 if left_ms > 0 else float(self.duration))

    def _count_in_cache(self, key: str) -> tuple[int, float]:
        now = self.timer()
        window = self.cache.get(key)
        ends, count = window if window is not None and window[0] > now else (now + self.duration, 0)
        self.cache.set(key, (ends, count + 1), max(1, math.ceil(ends - now)))
        return count + 1, ends - now

    def cache_key_for(self, ident: str) -> str:
        return self.cache_format % {"scope": self.scope, "ident": ident}


class ParticipantThrottle(_ConfiguredRateThrottle):
    """API writes (issue a comparison, vote, renew a lease) per participant: far above human speed."""

    scope = "vote"
    who = "this participant"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if request.method in SAFE_METHODS or request_token(request) is not None:
            return None
        if request.user and request.user.is_authenticated:
            return self.cache_key_for(f"user-{request.user.pk}")
        session_key = request.session.session_key
        # A first request has no session yet: the per-IP limit covers it.
        return self.cache_key_for(f"session-{session_key}") if session_key else None


class IpThrottle(_ConfiguredRateThrottle):
    """Every request without a token, per client address (NUM_PROXIES says which one to trust)."""

    scope = "anon"
    who = "this address"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if request_token(request) is not None:
            return None
        return self.cache_key_for(self.get_ident(request))


class NewSessionThrottle(_ConfiguredRateThrottle):
    """Comparisons issued to sessions that hold none yet, per client address (NUM_PROXIES as for IpThrottle).

    Every comparison reserves a use of two image sets until it is voted or its lease runs out, and a session
    holds at most two at once; without this limit, a client dropping its cookie could reserve a campaign's
    sets faster than anyone votes. Counted only where the caller says the request would create a participant
    (arena.api.NextComparisonApi and the vote page), so people who keep their session are never slowed.
    """

    scope = "new_session"
    who = "new sessions from this address"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return self.cache_key_for(self.get_ident(request))


class TokenThrottle(_ConfiguredRateThrottle):
    """Every request made with an API token, per token."""

    scope = "token"
    who = "this API token"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        token = request_token(request)
        return self.cache_key_for(f"token-{token.pk}") if token is not None else None
