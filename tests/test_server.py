"""The ASGI server with DEBUG off: pages render and WhiteNoise serves hashed static files."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (local test server)
        return response.status, dict(response.headers), response.read()


@pytest.fixture(scope="module")
def production_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(
        DEBUG="false",
        SECRET_KEY="a-test-secret-that-is-not-the-default",
        POPARENA_VAR_DIR=str(tmp),
        STATIC_ROOT=str(tmp / "static"),
    )
    for command in (["migrate", "--noinput"], ["seed_demo"], ["collectstatic", "--noinput"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            fetch(base + "/")
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError(f"server did not start: {server.stderr.read().decode()[-2000:]}") from None
            time.sleep(0.3)
    yield base
    server.terminate()
    server.wait(timeout=10)


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
