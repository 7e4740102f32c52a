"""Writes for API tokens: create one (the plain key is returned once), revoke one, note its use.

Who may create which token is decided here, once, for the admin and `create_api_token` alike:
- a user creates tokens only for themselves, with the scopes their role allows (`allowed_scopes`):
  everyone `read` and `vote`; staff and researchers also `manage` and `export`; `worker` only staff
  who manage every campaign (a researcher's worker token could claim and fill any study's work);
- a superuser may create a token for any user, with any scope (say, a `worker` token for a service account);
- only a token with the `worker` scope may be limited, to generators or campaigns (`worker_limits`).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from access.hooks import LIMIT_KINDS, is_narrowed_staff
from access.keys import KEY_PREFIX, hash_key
from access.models import ApiToken, Scope
from core.errors import ApplicationError, Forbidden

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


def allowed_scopes(user: Any) -> list[str]:
    """The scopes a token of `user` may hold by their role, in canonical order (none for an inactive account)."""
    if not (user.is_authenticated and user.is_active):
        return []
    if user.is_superuser:
        return list(Scope.values)
    allowed = {Scope.READ, Scope.VOTE}
    if user.is_staff:
        allowed |= {Scope.MANAGE, Scope.EXPORT}
        if not is_narrowed_staff(user):
            allowed.add(Scope.WORKER)
    return [scope for scope in Scope.values if scope in allowed]


def check_token_request(*, requested_by: Any, user: Any, scopes: Iterable[str]) -> list[str]:
    """The cleaned scopes if `requested_by` may give `user` a token with them; Forbidden or ApplicationError if not."""
    cleaned = clean_scopes(scopes)
    if requested_by.is_active and requested_by.is_superuser:
        return cleaned
    if user.pk != requested_by.pk:
        raise Forbidden("you may create API tokens only for yourself; superusers may create them for others")
    refused = [scope for scope in cleaned if scope not in allowed_scopes(user)]
    if refused:
        allowed = ", ".join(allowed_scopes(user)) or "none"
        raise Forbidden(
            f"your role does not allow the {', '.join(refused)} scope (yours: {allowed})", code="scope_not_allowed"
        )
    return cleaned


def clean_worker_limits(*, scopes: Iterable[str], limits: Mapping[str, Iterable[int]] | None) -> dict[str, list[int]]:
    """Worker limits as stored: known kinds, existing ids, sorted; only for a token with the `worker` scope."""
    cleaned: dict[str, list[int]] = {}
    for kind_name, ids in (limits or {}).items():
        kind = LIMIT_KINDS.get(kind_name)
        if kind is None:
            raise ApplicationError(
                f"a worker token can be limited to {', '.join(sorted(LIMIT_KINDS)) or 'nothing'}, not {kind_name!r}",
                code="invalid_limit",
            )
        wanted = sorted(set(ids))
        unknown = sorted(set(wanted) - {pk for pk, _ in kind.choices()})
        if unknown:
            raise ApplicationError(f"no {kind_name} with id {', '.join(map(str, unknown))}", code="invalid_limit")
        if wanted:
            cleaned[kind_name] = wanted
    if cleaned and Scope.WORKER not in set(scopes):
        raise ApplicationError("only a token with the worker scope can be limited to generators or campaigns")
    return cleaned


def limit_ids_by_name(*, kind_name: str, names: Iterable[str]) -> list[int]:
    """The ids of the named generators or campaigns; an ApplicationError names those that do not exist."""
    kind = LIMIT_KINDS.get(kind_name)
    if kind is None:
        raise ApplicationError(f"a worker token cannot be limited to {kind_name}", code="invalid_limit")
    wanted = list(dict.fromkeys(names))
    found = kind.ids_by_name(wanted)
    missing = [name for name in wanted if name not in found]
    if missing:
        raise ApplicationError(f"no {kind_name} named {', '.join(map(repr, missing))}", code="invalid_limit")
    return [found[name] for name in wanted]


@transaction.atomic
def create_api_token(
    *,
    user: User,
    name: str,
    scopes: Iterable[str],
    expires_at: datetime | None = None,
    requested_by: Any = None,
    worker_limits: Mapping[str, Iterable[int]] | None = None,
) -> IssuedToken:
    """Create a token of `user` as `requested_by` asks (the owner when not given), by the module's rules."""
    scopes = check_token_request(requested_by=requested_by or user, user=user, scopes=scopes)
    limits = clean_worker_limits(scopes=scopes, limits=worker_limits)
    name = name.strip()
    if not name:
        raise ApplicationError("an API token needs a name", code="invalid")
    if expires_at is not None and expires_at <= timezone.now():
        raise ApplicationError("expires_at is in the past", code="invalid")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        scopes=scopes,
        key_hash=hash_key(key),
        key_hint=key[-4:],
        expires_at=expires_at,
        worker_limits=limits,
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
