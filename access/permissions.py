"""Scope checks for token requests; session requests keep the view's own rules (staff, public).

A token may only do what its scopes name: the default permission lets a token read with
`read` and write with `vote`; views that need more declare `HasScope(...)` or
`StaffOrScope(...)`, so a `worker`-only token reaches the worker endpoints and nothing else.
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from access.models import ApiToken


class InsufficientScope(exceptions.PermissionDenied):
    default_code = "insufficient_scope"


def request_token(request: Request) -> ApiToken | None:
    """The ApiToken the request authenticated with, or None for a session or anonymous request."""
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, ApiToken) else None


def require_scope(token: ApiToken, scopes: tuple[str, ...]) -> None:
    if not set(scopes) & set(token.scopes):
        needed = " or ".join(repr(scope) for scope in scopes)
        held = ", ".join(token.scopes) or "none"
        raise InsufficientScope(f"this API token lacks the {needed} scope this endpoint needs (its scopes: {held})")


class ScopeAware(BasePermission):
    """Marker base: views whose permissions include one of these have thought about tokens."""


class TokenScopes(ScopeAware):
    """The default: sessions and anonymous callers as before; a token needs `read` to read, `vote` to write."""

    def has_permission(self, request: Request, view: Any) -> bool:
        token = request_token(request)
        if token is not None:
            require_scope(token, ("read",) if request.method in SAFE_METHODS else ("vote",))
        return True


def HasScope(*scopes: str) -> type[BasePermission]:  # noqa: N802 (reads as a class in permission_classes)
    """A token must hold one of `scopes`; session requests pass (combine with IsAdminUser for staff)."""

    class _HasScope(ScopeAware):
        def has_permission(self, request: Request, view: Any) -> bool:
            token = request_token(request)
            if token is not None:
                require_scope(token, scopes)
            return True

    _HasScope.__name__ = _HasScope.__qualname__ = f"HasScope({', '.join(scopes)})"
    return _HasScope


def StaffOrScope(*scopes: str, write: tuple[str, ...] | None = None) -> type[BasePermission]:  # noqa: N802
    """A staff session, or a token (of any owner) holding one of `scopes` (one of `write` for a write, if given)."""

    class _StaffOrScope(ScopeAware):
        message = "staff only: log in as staff or send an API token with the scope this endpoint needs"

        def has_permission(self, request: Request, view: Any) -> bool:
            token = request_token(request)
            if token is not None:
                require_scope(token, scopes if write is None or request.method in SAFE_METHODS else write)
                return True
            return bool(request.user and request.user.is_staff)

    named = ", ".join(scopes) + (f"; write: {', '.join(write)}" if write else "")
    _StaffOrScope.__name__ = _StaffOrScope.__qualname__ = f"StaffOrScope({named})"
    return _StaffOrScope


class WorkerTokenOnly(ScopeAware):
    """The generation worker's endpoints: an API token holding `worker`; no session, no other scope suffices."""

    message = "generation workers only: send an API token with the 'worker' scope"

    def has_permission(self, request: Request, view: Any) -> bool:
        token = request_token(request)
        if token is None:
            # Said in words for anonymous callers too (DRF's default there names no scope).
            denied = exceptions.PermissionDenied if request.user.is_authenticated else exceptions.NotAuthenticated
            raise denied(self.message)
        require_scope(token, ("worker",))
        return True
