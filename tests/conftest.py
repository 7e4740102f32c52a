"""Shared fixtures: media files go to a temporary folder (or bucket), throttle counts start afresh, in every test.

POPARENA_TEST_STORAGE picks where media live for the whole run: `filesystem` (the default: a temporary folder per
test) or `s3` (a fresh bucket per test on moto's standalone S3 server, one server per test process, configured as
config/settings.py configures django-storages, and the servers and workers tests start pointed at a bucket of
that server through the environment), so the same tests run on a second storage (README "Testing"; CI runs only
the tests that take `media_storage`, tests/object_storage.py, on both: they choose their storage themselves).

Under pytest-xdist (`-n 2`, as .ci/run runs the fast tests) each worker has its own test database
(pytest-django names them per worker) and, here, its own key prefix in the shared Redis cache and
channel layer, so one worker's cached campaigns, throttle windows and group messages never reach another.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from django.conf import settings

_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
TEST_STORAGES = ("filesystem", "s3")
TEST_STORAGE = os.environ.get("POPARENA_TEST_STORAGE", "filesystem")
if TEST_STORAGE not in TEST_STORAGES:
    raise pytest.UsageError(f"POPARENA_TEST_STORAGE={TEST_STORAGE!r}: expected one of {', '.join(TEST_STORAGES)}")
if _WORKER:
    # Read before any cache or channel layer is built: both are made lazily, on first use.
    for alias in settings.CACHES.values():
        alias["KEY_PREFIX"] = f"{alias.get('KEY_PREFIX', '')}{_WORKER}"
    for layer in settings.CHANNEL_LAYERS.values():
        if "prefix" in layer.get("CONFIG", {}):
            layer["CONFIG"]["prefix"] = f"{layer['CONFIG']['prefix']}{_WORKER}"


@pytest.fixture(scope="session", autouse=True)
def _s3_for_the_run() -> Iterator[str | None]:
    """Under POPARENA_TEST_STORAGE=s3: moto's S3 server for this process, and a bucket on it named in the
    environment that the servers and workers tests start inherit (tests/servers.py copies os.environ)."""
    if TEST_STORAGE != "s3":
        yield None
        return
    from tests.object_storage import ACCESS_KEY, REGION, SECRET_KEY, make_bucket, running_moto

    with running_moto() as endpoint:
        os.environ.update(
            AWS_STORAGE_BUCKET_NAME=make_bucket(endpoint),
            AWS_S3_ENDPOINT_URL=endpoint,
            AWS_S3_REGION_NAME=REGION,
            AWS_ACCESS_KEY_ID=ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        )
        yield endpoint


@pytest.fixture(autouse=True)
def _media_root(request, settings, tmp_path, monkeypatch, _s3_for_the_run):  # type: ignore[no-untyped-def]
    settings.MEDIA_ROOT = tmp_path / "media"
    if _s3_for_the_run and "media_storage" not in request.fixturenames:
        from tests.object_storage import make_bucket, use_s3

        use_s3(settings, monkeypatch, _s3_for_the_run, make_bucket(_s3_for_the_run))
        yield
        written = [p for p in settings.MEDIA_ROOT.rglob("*") if p.is_file()] if settings.MEDIA_ROOT.exists() else []
        assert written == [], f"media written to the local disk with S3 storage on: {written}"
        return
    yield


@pytest.fixture(autouse=True)
def _no_expiry_runs_yet():  # type: ignore[no-untyped-def]
    """Lapsed leases are expired at most once a second per campaign in a process (arena.issuing): start afresh."""
    from arena.issuing import _last_expiry

    _last_expiry.clear()


@pytest.fixture(autouse=True)
def _no_dwell_floor(settings):  # type: ignore[no-untyped-def]
    """Tests vote the instant a comparison is issued; tests/arena/test_quality_checks.py sets the floor."""
    settings.VOTE_MIN_DWELL_MS = 0


@pytest.fixture(autouse=True)
def _fresh_throttle_counts(monkeypatch):  # type: ignore[no-untyped-def]
    """Every test starts with no throttle history, so the suite's own heavy API use is never throttled.

    The counts go to a private in-memory cache rather than the configured one: clearing that
    would flush the whole shared Redis database in the PostgreSQL + Redis run.
    tests/access/test_throttling.py also checks the throttles against the configured cache.
    """
    from django.core.cache.backends.locmem import LocMemCache
    from rest_framework.throttling import SimpleRateThrottle

    counts = LocMemCache("tests-throttle-counts", {})
    counts.clear()
    monkeypatch.setattr(SimpleRateThrottle, "cache", counts)


@pytest.fixture(autouse=True)
def _metrics_models_dir(settings, tmp_path_factory):  # type: ignore[no-untyped-def]
    """Local CLIP models are taken only from METRICS_MODELS_DIR; tests build theirs under pytest's temporary folder."""
    settings.METRICS_MODELS_DIR = tmp_path_factory.getbasetemp()
