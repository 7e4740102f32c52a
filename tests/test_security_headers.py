"""With DEBUG off behind a TLS proxy: HSTS, secure cookies, no framing except MTurk's entry page.

The JSON API under /api/v1/ runs through its own, shorter middleware chain (config/api_handler.py);
these tests go through the real server, so they cover that chain as deployed.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from http.client import HTTPResponse

import pytest

from tests.servers import asgi_server, manage, site_env

SETUP = (
    "from annotation.models import Campaign;"
    "Campaign.objects.create(slug='hit', title='A HIT', access='mturk', status='open', population_size=2)"
)
# A logged-in staff session, printed as its cookie value (made the way a login makes it).
STAFF_SESSION = (
    "from django.contrib.auth.models import User; from django.test import Client;"
    "user = User.objects.create_superuser('boss', 'boss@example.org', 'not-used');"
    "client = Client(); client.force_login(user); print(client.cookies['sessionid'].value)"
)
MTURK_ENTRY = "/c/hit/?workerId=W1&assignmentId=A1&hitId=H1&turkSubmitTo=https%3A%2F%2Fwww.mturk.com"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def fetch(url: str, *, body: object = None, headers: dict[str, str] | None = None) -> HTTPResponse:
    """GET (or POST `body` as JSON) as the TLS proxy forwards it (X-Forwarded-Proto: https); any status comes back."""
    data = None if body is None else json.dumps(body).encode()
    sent = {"X-Forwarded-Proto": "https", **({"Content-Type": "application/json"} if data else {}), **(headers or {})}
    request = urllib.request.Request(url, data=data, headers=sent)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        return opener.open(request, timeout=10)
    except urllib.error.HTTPError as error:
        return error  # type: ignore[return-value]


@pytest.fixture(scope="module")
def production_site(tmp_path_factory):  # type: ignore[no-untyped-def]
    """(base URL, a logged-in staff user's session cookie value)."""
    tmp = tmp_path_factory.mktemp("secure")
    env = site_env(
        tmp,
        DEBUG="false",
        SECRET_KEY="a-test-secret-that-is-not-the-default",
        BEHIND_TLS_PROXY="true",
        STATIC_MANIFEST="false",
    )
    manage(env, "migrate", "--noinput")
    manage(env, "shell", "--no-imports", "-c", SETUP)
    session = manage(env, "shell", "--no-imports", "-c", STAFF_SESSION).strip().splitlines()[-1]
    with asgi_server(env) as base:
        yield base, session


@pytest.fixture(scope="module")
def production_server(production_site):  # type: ignore[no-untyped-def]
    return production_site[0]


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


def test_a_logged_in_session_must_send_its_csrf_token_to_write_through_the_api(production_site):
    base, session = production_site
    url = base + "/api/v1/campaigns/hit/prompts"
    add = {"prompts": [{"caption": "a baker"}]}
    origin = "https://" + urllib.parse.urlsplit(base).netloc
    # Given a staff member's session cookie, as a page on another site could make the browser send it:
    forged = fetch(url, body=add, headers={"Cookie": f"sessionid={session}", "Origin": origin})
    assert forged.status == 403
    assert "CSRF" in json.load(forged)["error"]["message"]
    # A token from another origin does not pass either.
    token = "a" * 32
    with_token = {"Cookie": f"sessionid={session}; csrftoken={token}", "X-CSRFToken": token}
    elsewhere = fetch(url, body=add, headers={**with_token, "Origin": "https://evil.example"})
    assert elsewhere.status == 403
    assert "CSRF" in json.load(elsewhere)["error"]["message"]
    # The site's own page sends the token from its cookie: the write goes through.
    own = fetch(url, body=add, headers={**with_token, "Origin": origin})
    assert own.status in (200, 201), json.load(own)
    assert "a baker" in json.dumps(json.load(fetch(url, headers={"Cookie": f"sessionid={session}"})))


def test_the_api_answers_with_a_policy_for_data_and_pages_keep_theirs(production_server):
    api = fetch(production_server + "/api/v1/campaigns/")
    assert api.headers["Content-Security-Policy"].startswith("default-src 'none';")
    assert api.headers["X-Content-Type-Options"] == "nosniff"
    assert api.headers["Referrer-Policy"] == "same-origin"
    page = fetch(production_server + "/")
    assert "script-src 'self';" in page.headers["Content-Security-Policy"]
    # The API's own errors keep the JSON shape under the shorter chain, NUL bytes included.
    missing = fetch(production_server + "/api/v1/campaigns/nope/")
    assert missing.status == 404
    assert json.load(missing)["error"]["code"]
    nul = fetch(production_server + "/api/v1/campaigns/%00/")
    assert nul.status == 400
    assert "NUL" in json.load(nul)["error"]["message"]
