"""Reads for API tokens: find the usable token behind a presented key; the generators a worker token may serve."""

from __future__ import annotations

from access.hooks import LIMIT_KINDS
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


def get_worker_generator_ids(*, token: ApiToken) -> set[int] | None:
    """The generators whose work `token` may claim and fill, None for any; read now (a campaign's change).

    A limit naming only things since deleted, or a kind no app registers, allows nothing.
    """
    if not token.is_limited:
        return None
    allowed: set[int] = set()
    for kind_name, ids in token.worker_limits.items():
        kind = LIMIT_KINDS.get(kind_name)
        if kind is not None and ids:
            allowed |= kind.generator_ids(ids)
    return allowed
