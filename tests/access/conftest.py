"""Users and API tokens for the access tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from access.services import create_api_token
from tests.arena.conftest import arena_campaign  # noqa: F401

# The exports API tests' fixtures (a campaign with votes, a temporary exports folder).
from tests.exports.conftest import exports_root, voted_campaign  # noqa: F401


@pytest.fixture
def staff(db):  # type: ignore[no-untyped-def]
    return get_user_model().objects.create_user("staff", password="x", is_staff=True)


@pytest.fixture
def member(db):  # type: ignore[no-untyped-def]
    return get_user_model().objects.create_user("member", password="x")


@pytest.fixture
def issuer(db):  # type: ignore[no-untyped-def]
    """A superuser: may give any user a token with any scope, so endpoint tests can hold any token."""
    return get_user_model().objects.create_superuser("issuer", password="x")


@pytest.fixture
def token_client(staff, issuer) -> Callable[..., APIClient]:  # type: ignore[no-untyped-def]
    """An API client sending a fresh token of `user` (staff by default) with `scopes`, issued by a superuser."""

    def build(*scopes: str, user=None, worker_limits=None) -> APIClient:  # type: ignore[no-untyped-def]
        issued = create_api_token(
            user=user or staff, name="test", scopes=scopes, requested_by=issuer, worker_limits=worker_limits
        )
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.key}")
        return client

    return build
