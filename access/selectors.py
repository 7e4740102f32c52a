"""Reads for API tokens: find the usable token behind a presented key."""

from __future__ import annotations

from access.keys import KEY_PREFIX, hash_key
from access.models import ApiToken
from core.errors import ApplicationError


class InvalidToken(ApplicationError):
    code = "authentication_failed"
    status = 401


def get_usable_token(*, key: str) -> ApiToken:
    """The token for `key`, or InvalidToken saying why not (unknown, revoked, expired, inactive owner)."""
    if not key.startswith(KEY_PREFIX):
        raise InvalidToken(f"not a PopArena API token (they start with {KEY_PREFIX!r})")
    # Looked up by hash: the plain key is never stored, and comparing hashes leaks nothing useful.
    token = ApiToken.objects.select_related("user").filter(key_hash=hash_key(key)).first()
    if token is None:
        raise InvalidToken("unknown API token")
    problem = token.problem()
    if problem is not None:
        raise InvalidToken(problem)
    return token
