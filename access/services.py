"""Writes for API tokens: create one (the plain key is returned once), revoke one, note its use."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from access.keys import KEY_PREFIX, hash_key
from access.models import ApiToken, Scope
from core.errors import ApplicationError

# A busy token would otherwise write its row on every request.
LAST_USED_GRANULARITY = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    key: str  # the plain key: give it to the caller now, it is not stored anywhere


def clean_scopes(scopes: Iterable[str]) -> list[str]:
    """The scopes in their canonical order; an unknown or missing scope is an error naming the valid ones."""
    wanted = {scope.strip() for scope in scopes if scope.strip()}
    unknown = sorted(wanted - set(Scope.values))
    if unknown:
        raise ApplicationError(
            f"unknown scope {', '.join(unknown)}; valid scopes: {', '.join(Scope.values)}", code="invalid_scope"
        )
    if not wanted:
        raise ApplicationError(f"give at least one scope of: {', '.join(Scope.values)}", code="invalid_scope")
    return [scope for scope in Scope.values if scope in wanted]


@transaction.atomic
def create_api_token(
    *, user: User, name: str, scopes: Iterable[str], expires_at: datetime | None = None
) -> IssuedToken:
    name = name.strip()
    if not name:
        raise ApplicationError("an API token needs a name", code="invalid")
    if expires_at is not None and expires_at <= timezone.now():
        raise ApplicationError("expires_at is in the past", code="invalid")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        scopes=clean_scopes(scopes),
        key_hash=hash_key(key),
        key_hint=key[-4:],
        expires_at=expires_at,
    )
    return IssuedToken(token=token, key=key)


@transaction.atomic
def revoke_api_token(*, token: ApiToken) -> bool:
    """Revoke now; False when it already was (revoking twice keeps the first time)."""
    revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    token.refresh_from_db(fields=["revoked_at"])
    return revoked == 1


def record_token_use(*, token: ApiToken, now: datetime | None = None) -> None:
    """Stamp last_used_at, at most once per LAST_USED_GRANULARITY, with one conditional UPDATE."""
    now = now or timezone.now()
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_GRANULARITY:
        return
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_GRANULARITY)
    ApiToken.objects.filter(stale, pk=token.pk).update(last_used_at=now)
    token.last_used_at = now
