"""DRF authentication by `Authorization: Bearer pa_...`; sessions (with CSRF) stay for the browser."""

from __future__ import annotations

from typing import Any

from django.contrib.sessions.backends.base import SessionBase
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from access.models import ApiToken
from access.selectors import InvalidToken, get_usable_token
from access.services import record_token_use

KEYWORD = b"bearer"


def _bearer(request: Request) -> list[bytes] | None:
    parts = get_authorization_header(request).split()
    return parts if parts and parts[0].lower() == KEYWORD else None


class TokenRequestSession(SessionBase):
    """A token request's session: usable during the request, never stored nor sent as a cookie.

    Services remember things in the session (the participant's id); for a script or worker
    that would otherwise leave a new session row behind on every request.
    """

    def exists(self, session_key: str) -> bool:
        return False

    def create(self) -> None:
        pass

    def save(self, must_create: bool = False) -> None:
        pass

    def delete(self, session_key: str | None = None) -> None:
        pass

    def load(self) -> dict[str, Any]:
        return {}

    @property
    def modified(self) -> bool:
        return False

    @modified.setter
    def modified(self, value: bool) -> None:
        pass


class ApiTokenAuthentication(BaseAuthentication):
    """Sets request.user to the token's owner and request.auth to the ApiToken.

    A request without a bearer header is left to the next class (the session); one with a
    wrong, revoked or expired token is refused with 401 instead of falling back.
    """

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        parts = _bearer(request)
        if parts is None:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("the Authorization header must be 'Bearer pa_...' with one key")
        try:
            key = parts[1].decode("ascii")
        except UnicodeDecodeError as error:
            raise exceptions.AuthenticationFailed("the API token contains non-ASCII characters") from error
        try:
            token = get_usable_token(key=key)
        except InvalidToken as error:
            raise exceptions.AuthenticationFailed(error.message) from error
        record_token_use(token=token)
        request._request.session = TokenRequestSession()
        return token.user, token

    def authenticate_header(self, request: Request) -> str | None:
        # Only a request that tried a token gets 401 + WWW-Authenticate; one with neither token
        # nor session keeps DRF's 403 for session-only clients, as before tokens existed.
        return 'Bearer realm="api"' if _bearer(request) is not None else None
