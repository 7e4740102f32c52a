"""Which client a request comes from, as a salted hash that rotates daily: never the address itself.

A participant who saw a set's generator revealed must not be shown that set again, nor under a fresh session
(a cleared cookie, a private window) of the same browser. Sessions are free to make; the client behind them
is approximated by its address (as NUM_PROXIES says to read it, the per-address throttle's rule) and its user
agent. Both are hashed with a random salt made for each UTC day and kept only in the shared cache: once a
day's salt is gone, that day's hashes cannot be turned back into addresses, and hashes of two days cannot be
linked. People behind one address with the same browser build share a hash, so they are kept from each
other's revealed sets too: a cost in fresh sets, never a wrong vote.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime

from django.core.cache import cache
from django.http import HttpRequest
from rest_framework.throttling import BaseThrottle

SALT_TTL_S = 2 * 24 * 60 * 60
_salts: dict[str, str] = {}


def _salt(day: str) -> str:
    salt = _salts.get(day)
    if salt is None:
        # add() keeps the first process's salt, so every web process of a deployment hashes alike.
        cache.add(f"client-salt:{day}", secrets.token_hex(16), SALT_TTL_S)
        salt = cache.get(f"client-salt:{day}") or secrets.token_hex(16)
        _salts.clear()
        _salts[day] = salt
    return salt


def client_hash(request: HttpRequest, *, now: datetime | None = None) -> str:
    """32 hex digits naming this request's client for today; the same address and user agent give the same."""
    day = (now or datetime.now(UTC)).strftime("%Y-%m-%d")
    address = BaseThrottle().get_ident(request)  # type: ignore[arg-type]  # reads request.META only
    agent = request.META.get("HTTP_USER_AGENT", "")
    return hmac.new(_salt(day).encode(), f"{address}\n{agent}".encode(), hashlib.sha256).hexdigest()[:32]
