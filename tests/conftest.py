"""Shared fixtures: media files go to a temporary folder, throttle counts start afresh, in every test.

Under pytest-xdist (`-n 2`, as .ci/run runs the fast tests) each worker has its own test database
(pytest-django names them per worker) and, here, its own key prefix in the shared Redis cache and
channel layer, so one worker's cached campaigns, throttle windows and group messages never reach another.
"""

from __future__ import annotations

import os

import pytest
from django.conf import settings

_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if _WORKER:
    # Read before any cache or channel layer is built: both are made lazily, on first use.
    for alias in settings.CACHES.values():
        alias["KEY_PREFIX"] = f"{alias.get('KEY_PREFIX', '')}{_WORKER}"
    for layer in settings.CHANNEL_LAYERS.values():
        if "prefix" in layer.get("CONFIG", {}):
            layer["CONFIG"]["prefix"] = f"{layer['CONFIG']['prefix']}{_WORKER}"


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.MEDIA_ROOT = tmp_path / "media"


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
