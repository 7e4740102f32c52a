"""With DEBUG off behind a TLS proxy: HSTS, secure cookies, no framing except MTurk's entry page."""

from __future__ import annotations

import urllib.request
from http.client import HTTPResponse

import pytest

from tests.servers import asgi_server, manage, server_env

SETUP = (
    "from annotation.models import Campaign;"
    "Campaign.objects.create(slug='hit', title='A HIT', access='mturk', status='open', population_size=2)"
)
MTURK_ENTRY = "/c/hit/?workerId=W1&assignmentId=A1&hitId=H1&turkSubmitTo=https%3A%2F%2Fwww.mturk.com"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def fetch(url: str) -> HTTPResponse:
    """GET as the TLS proxy forwards it (X-Forwarded-Proto: https); any status comes back, not raised."""
    request = urllib.request.Request(url, headers={"X-Forwarded-Proto": "https"})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        return opener.open(request, timeout=10)
    except urllib.error.HTTPError as error:
        return error  # type: ignore[return-value]


@pytest.fixture(scope="module")
def production_server(tmp_path_factory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("secure")
    env = server_env(
        tmp,
        DEBUG="false",
        SECRET_KEY="a-test-secret-that-is-not-the-default",
        BEHIND_TLS_PROXY="true",
        STATIC_MANIFEST="false",
    )
    manage(env, "migrate", "--noinput")
    manage(env, "shell", "--no-imports", "-c", SETUP)
    with asgi_server(env) as base:
        yield base


def test_https_responses_carry_hsts(production_server):
    response = fetch(production_server + "/api/v1/health")
    assert response.status == 200
    assert response.headers["Strict-Transport-Security"] == "max-age=2592000"


def test_cookies_are_secure_and_http_only(production_server):
    # The admin login page sets the CSRF cookie; the MTurk entry page starts a participant session.
    cookies = fetch(production_server + "/admin/login/").headers.get_all("Set-Cookie") or []
    cookies += fetch(production_server + MTURK_ENTRY).headers.get_all("Set-Cookie") or []
    by_name = {cookie.split("=", 1)[0]: cookie for cookie in cookies}
    assert set(by_name) >= {"csrftoken", "sessionid"}
    for cookie in by_name.values():
        assert "; Secure" in cookie
    assert "; HttpOnly" in by_name["sessionid"]


@pytest.mark.parametrize(
    "path", ["/", "/api/v1/health", "/api/v1/campaigns/", "/api/docs/", "/admin/login/", "/c/hit/"]
)
def test_every_page_refuses_framing(production_server, path):
    response = fetch(production_server + path)
    # /c/hit/ opened outside MTurk is the "how to take part" page, a 403.
    assert response.status in (200, 302, 403)
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_only_the_mturk_entry_page_may_be_framed_and_only_by_mturk(production_server):
    response = fetch(production_server + MTURK_ENTRY)
    assert response.status == 200
    assert "X-Frame-Options" not in response.headers
    assert (
        "frame-ancestors https://www.mturk.com https://workersandbox.mturk.com"
        in (response.headers["Content-Security-Policy"])
    )
