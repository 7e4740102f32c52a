"""The API docs page in a real browser: Swagger UI renders from our static files under our CSP."""

from __future__ import annotations

import pytest

from tests.browser.conftest import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_api_docs_render_the_poparena_api_with_no_csp_errors(page, live_server):
    problems: list[str] = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    outside: list[str] = []
    page.on("request", lambda request: request.url.startswith(live_server.url) or outside.append(request.url))
    page.goto(live_server.url + "/api/docs/")
    wait_until(page, "!!document.querySelector('.swagger-ui .info .title')")
    assert "PopArena API" in page.locator(".swagger-ui .info .title").inner_text()
    # The operations are listed, so the schema loaded too.
    wait_until(page, "document.querySelectorAll('.opblock').length > 5")
    assert page.locator(".opblock-summary-path", has_text="/api/v1/health").count() == 1
    assert problems == []
    assert outside == []
