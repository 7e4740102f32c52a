"""The ASGI server with DEBUG off: pages render and WhiteNoise serves hashed static files."""

from __future__ import annotations

import re
import urllib.request

import pytest

from tests.servers import asgi_server, manage, site_env

# Runs once in CI, on PostgreSQL + Redis (see .ci/run); the fast suite runs on both databases.
pytestmark = pytest.mark.slow


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (local test server)
        return response.status, dict(response.headers), response.read()


@pytest.fixture(scope="module")
def production_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    env = site_env(
        tmp,
        migrated=True,
        DEBUG="false",
        SECRET_KEY="a-test-secret-that-is-not-the-default",
        STATIC_ROOT=str(tmp / "static"),
    )
    for command in (["seed_demo"], ["collectstatic", "--noinput"]):
        manage(env, *command)
    with asgi_server(env) as base:
        yield base


def test_campaign_list_renders_with_debug_off(production_server):
    status, headers, body = fetch(production_server + "/")
    assert status == 200
    assert "Demo: which set of shapes is better?" in body.decode()
    assert headers["X-Frame-Options"] == "DENY"


def test_whitenoise_serves_the_hashed_stylesheet_with_a_long_cache_lifetime(production_server):
    _, _, body = fetch(production_server + "/")
    match = re.search(r'href="(/static/css/site\.[0-9a-f]{12}\.css)"', body.decode())
    assert match, "the page links the hashed stylesheet that collectstatic wrote"
    status, headers, css = fetch(production_server + match.group(1))
    assert status == 200
    assert b".campaign-card" in css
    assert "max-age=315360000" in headers["Cache-Control"]


def test_every_page_forbids_inline_scripts_and_framing(production_server):
    _, headers, _ = fetch(production_server + "/")
    policy = headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy
    assert "'unsafe-inline'" not in policy
    assert "frame-ancestors 'none'" in policy
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_responses_report_the_servers_own_time(production_server):
    _, headers, _ = fetch(production_server + "/api/v1/campaigns/")
    match = re.fullmatch(r"app;dur=(\d+\.\d)", headers["Server-Timing"])
    assert match, headers["Server-Timing"]
    assert 0 < float(match.group(1)) < 10_000


def test_the_site_also_runs_under_uvicorn_with_several_workers(tmp_path):
    secret = "a-test-secret-that-is-not-the-default"
    env = site_env(tmp_path, migrated=True, DEBUG="false", SECRET_KEY=secret, STATIC_ROOT=str(tmp_path / "static"))
    for command in (["seed_demo"], ["collectstatic", "--noinput"]):
        manage(env, *command)
    with asgi_server(env, "uvicorn", workers=2) as base:
        statuses = {fetch(base + path)[0] for path in ["/", "/api/v1/campaigns/demo/"] * 4}
    assert statuses == {200}
