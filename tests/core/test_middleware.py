"""The cookies MTurk's cross-site frame needs, only where it needs them, with CSRF still checked.

A real browser framing the page from another site is tests/browser/test_mturk_frame.py; these pin the
headers: which responses carry `SameSite=None; Secure; Partitioned` and which keep `SameSite=Lax`.
"""

from __future__ import annotations

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory

from annotation.models import Campaign, Criterion
from core.middleware import CROSS_SITE_FRAME_SESSION_KEY, CrossSiteFrameCookiesMiddleware
from tests.factories import CampaignFactory, GeneratorFactory, PromptFactory
from tests.test_settings import manage

pytestmark = pytest.mark.django_db

ENTRY = "/c/hit/?workerId=W1&assignmentId=A1&hitId=H1&turkSubmitTo=https%3A%2F%2Fwww.mturk.com"
PREVIEW = "/c/hit/?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H1&turkSubmitTo=https%3A%2F%2Fwww.mturk.com"


@pytest.fixture
def hit():
    campaign = CampaignFactory(slug="hit", access=Campaign.Access.MTURK, participant_quota=2)
    campaign.generators.set([GeneratorFactory(), GeneratorFactory()])
    campaign.prompts.set([PromptFactory()])
    Criterion.objects.create(campaign=campaign, key="quality", question="Which set looks better?")
    return campaign


def set_cookies(response: HttpResponse) -> dict[str, str]:
    """Each cookie's Set-Cookie line, as the server writes it."""
    return {name: morsel.OutputString() for name, morsel in response.cookies.items()}


def test_without_the_setting_the_mturk_pages_keep_lax_cookies(client, hit, settings):
    settings.CROSS_SITE_FRAME_COOKIES = False
    cookies = set_cookies(client.get(ENTRY))
    assert set(cookies) == {"sessionid", "csrftoken"}
    for line in cookies.values():
        assert "SameSite=Lax" in line
        assert "Partitioned" not in line


def test_with_the_setting_the_mturk_worker_s_cookies_are_sent_in_a_cross_site_frame(client, hit, settings):
    settings.CROSS_SITE_FRAME_COOKIES = True
    response = client.get(ENTRY)
    assert response.status_code == 200
    cookies = set_cookies(response)
    assert set(cookies) == {"sessionid", "csrftoken"}
    for line in cookies.values():
        assert "SameSite=None" in line
        assert "Secure" in line
        assert line.endswith("; Partitioned")
    # The rest of each cookie is as Django made it.
    assert "HttpOnly" in cookies["sessionid"]
    assert "HttpOnly" not in cookies["csrftoken"], "the page's script reads the CSRF token from its cookie"
    assert "Max-Age=" in cookies["sessionid"]


def test_with_the_setting_other_pages_keep_lax_cookies(client, hit, settings):
    settings.CROSS_SITE_FRAME_COOKIES = True
    CampaignFactory(slug="open-to-all")
    for path in ("/c/open-to-all/", "/admin/login/"):
        cookies = set_cookies(Client().get(path))
        assert "csrftoken" in cookies, path
        for line in cookies.values():
            assert "SameSite=Lax" in line, path
            assert "Partitioned" not in line, path


def test_an_mturk_preview_creates_no_session_and_its_page_may_be_framed_by_mturk(client, hit, settings):
    settings.CROSS_SITE_FRAME_COOKIES = True
    response = client.get(PREVIEW)
    assert response.status_code == 200
    assert "sessionid" not in response.cookies
    assert (
        "frame-ancestors https://www.mturk.com https://workersandbox.mturk.com https://worker.mturk.com"
        in response["Content-Security-Policy"]
    )


def test_frame_ancestors_come_from_their_setting(client, hit, settings):
    settings.MTURK_FRAME_ANCESTORS = ["https://framer.example"]
    response = client.get(ENTRY)
    policy = response["Content-Security-Policy"]
    assert policy.endswith("; frame-ancestors https://framer.example")
    # The assignment is still handed back only to MTurk's sites.
    assert "form-action 'self' https://www.mturk.com https://workersandbox.mturk.com;" in policy
    assert "X-Frame-Options" not in response


def test_later_responses_of_a_framed_session_keep_the_cookies_the_frame_sends(settings):
    # Given a session an MTurk page began in the frame, and another that never was framed
    settings.CROSS_SITE_FRAME_COOKIES = True

    def api_call(request: HttpRequest) -> HttpResponse:
        response = HttpResponse("{}")
        response.set_cookie("sessionid", "new-key", httponly=True, samesite="Lax")
        return response

    middleware = CrossSiteFrameCookiesMiddleware(api_call)
    lines = []
    for framed in (True, False):
        request = RequestFactory().post("/api/v1/comparisons/t/votes")
        request.session = SessionStore()
        if framed:
            request.session[CROSS_SITE_FRAME_SESSION_KEY] = True
        lines.append(set_cookies(middleware(request))["sessionid"])
    # Then only the framed session's cookie is re-set for the frame
    assert "SameSite=None" in lines[0]
    assert lines[0].endswith("; Partitioned")
    assert "SameSite=Lax" in lines[1]
    assert "Partitioned" not in lines[1]


def test_csrf_is_still_checked_for_the_framed_session(hit, settings):
    settings.CROSS_SITE_FRAME_COOKIES = True
    browser = Client(enforce_csrf_checks=True)
    browser.get(ENTRY)
    token = browser.cookies["csrftoken"].value
    refused = browser.post(ENTRY)
    assert refused.status_code == 403
    assert "CSRF" in refused.content.decode()
    # The page's script sends the token from the cookie as a header: the check passes.
    assert browser.post(ENTRY, HTTP_X_CSRFTOKEN=token).status_code == 200


def test_the_setting_is_read_strictly(tmp_path):
    # A typo must not quietly leave MTurk's frame without its cookies (or turn them on).
    result = manage(tmp_path, "check", CROSS_SITE_FRAME_COOKIES="ture")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("PopArena configuration error: CROSS_SITE_FRAME_COOKIES: ")
