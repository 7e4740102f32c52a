"""Schemathesis against our own OpenAPI schema: every operation, no 5xx, responses as documented.

The schema is loaded from /api/schema/ through the WSGI handler, so requests go through the
whole Django stack (middleware, authentication, throttles) on the test database. Each generated
request is sent twice: as an anonymous caller with the generated path, and with a staff token
holding every scope on the campaign that exists, so the staff and write paths are reached too.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from access.models import Scope
from access.services import create_api_token
from tests.arena.conftest import arena_campaign  # noqa: F401 (the fixture, shared)
from tests.exports.conftest import exports_root  # noqa: F401

# Runs once in CI, on PostgreSQL + Redis (see .ci/run); the fast suite runs on both databases.
pytestmark = pytest.mark.slow

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def study(arena_campaign, exports_root):  # type: ignore[no-untyped-def]  # noqa: F811
    return arena_campaign()


@pytest.fixture
def keep_test_connection():  # type: ignore[no-untyped-def]
    """As Django's test client does: a request must not close the connection holding the test's transaction."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def staff_token(django_user_model) -> str:  # type: ignore[no-untyped-def]
    staff = django_user_model.objects.create_user("fuzz-staff", password="x", is_staff=True)
    return create_api_token(user=staff, name="fuzz", scopes=Scope.values).key


# Building the schema touches no table, so it is loaded once, at collection.
schema = schemathesis.openapi.from_wsgi("/api/schema/", WSGIHandler())


@pytest.mark.django_db
@schema.parametrize()
# Derandomized: the same cases every run (CI included), so a failure recurs; POPARENA_FUZZ_RANDOM=1 explores fresh
# ones (hypothesis then prints how to reproduce a failure).
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize=os.environ.get("POPARENA_FUZZ_RANDOM") != "1",
)
def test_every_operation_answers_as_documented(case, study, staff_token, keep_test_connection):  # type: ignore[no-untyped-def]
    case.call_and_validate(checks=CHECKS)
    if "slug" in (case.path_parameters or {}):
        case.path_parameters["slug"] = "study"
    case.call_and_validate(checks=CHECKS, headers={"Authorization": f"Bearer {staff_token}"})
