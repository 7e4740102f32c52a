"""Request throttles: per participant (session or user), per client IP and per API token.

Rates come from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] (THROTTLE_* in the environment),
read per request so that a settings override takes effect; a rate of None turns a throttle
off. Counts live in the Django cache (Redis when REDIS_URL is set, so all server processes
share them).
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from access.permissions import request_token


class _ConfiguredRateThrottle(SimpleRateThrottle):
    who = "this client"

    def get_rate(self) -> str | None:
        # The stubs type the rates as numbers; DRF and our settings give "1200/min" strings.
        rate: Any = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope or "")
        return rate

    def allow_request(self, request: Request, view: Any) -> bool:
        allowed = super().allow_request(request, view)
        if not allowed:
            # Read by core.api.exception_handler to say which limit was hit.
            request.throttled_by = f"{self.who} ({self.rate})"  # type: ignore[attr-defined]
        return allowed

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


class TokenThrottle(_ConfiguredRateThrottle):
    """Every request made with an API token, per token."""

    scope = "token"
    who = "this API token"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        token = request_token(request)
        return self.cache_key_for(f"token-{token.pk}") if token is not None else None
