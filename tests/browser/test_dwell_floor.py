"""The vote page under the production dwell floor: a too-early answer is said, and a later vote counts."""

from __future__ import annotations

import pytest

from tests.browser.conftest import wait_until
from tests.browser.test_voting import SETUP, votes_in_database
from tests.servers import asgi_server, manage, site_env

pytestmark = pytest.mark.browser

# Answers both questions in the same task that sees the first comparison on screen: sooner than any person could.
ANSWER_AT_ONCE = """async () => {
  while (document.querySelectorAll('#grid-left img').length < 4) {
    await new Promise((resolve) => requestAnimationFrame(resolve));
  }
  document.querySelector('fieldset[data-key=diversity] button[data-choice=left]').click();
  document.querySelector('fieldset[data-key=quality] button[data-choice=right]').click();
}"""


@pytest.fixture(scope="module")
def default_floor_site(tmp_path_factory):
    var = tmp_path_factory.mktemp("dwell-site")
    env = site_env(var)
    env.pop("VOTE_MIN_DWELL_MS")  # the production default (500 ms), not the 0 the other servers run with
    manage(env, "migrate", "--noinput")
    manage(env, "shell", "--no-imports", "-c", SETUP)
    manage(env, "run_generation_worker", "--once", "--campaign", "browser")
    with asgi_server(env) as base:
        yield base, env


def test_a_vote_sooner_than_the_default_floor_is_refused_on_the_page_and_a_later_one_counts(page, default_floor_site):
    base, env = default_floor_site
    # Given the vote page under the default floor of 500 ms,
    page.goto(base + "/c/browser/")
    # when both questions are answered the moment the first comparison is on screen,
    page.evaluate(ANSWER_AT_ONCE)
    # then the page says the vote came too early, and nothing is stored;
    wait_until(page, "!document.querySelector('#error').hidden")
    assert "at least 500 ms" in page.inner_text("#error")
    assert votes_in_database(env) == []
    # and a vote on the comparison now on screen, after looking at it for longer than the floor, counts.
    wait_until(page, "document.querySelectorAll('#grid-left img').length === 4")
    page.wait_for_timeout(700)  # a person looking at the images, not a wait for the page
    page.click("fieldset[data-key=diversity] button[data-choice=right]")
    page.click("fieldset[data-key=quality] button[data-choice=tie]")
    page.wait_for_selector("#reveal:not([hidden])")
    assert votes_in_database(env) == [("diversity", "right"), ("quality", "tie")]
