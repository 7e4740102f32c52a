"""The vote page under the production dwell floor: a too-early answer is said, and a later vote counts."""

from __future__ import annotations

import pytest

from tests.browser.conftest import wait_until
from tests.browser.test_voting import SETUP, votes_in_database
from tests.servers import asgi_server, manage, site_env

pytestmark = pytest.mark.browser

SOURCES = "JSON.stringify(Array.from(document.querySelectorAll('.grid img')).map(i => i.src))"

# Answers both questions the moment the first comparison is on screen, sooner than any person could: run in the
# page before its own scripts (an init script), so no round trip to the test adds to the time.
ANSWER_AT_ONCE = """(() => {
  const answer = () => {
    if (document.querySelectorAll('#grid-left img').length < 4) return requestAnimationFrame(answer);
    document.querySelector('fieldset[data-key=diversity] button[data-choice=left]').click();
    document.querySelector('fieldset[data-key=quality] button[data-choice=right]').click();
  };
  requestAnimationFrame(answer);
})();"""


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
    # when both questions are answered the moment the first comparison is on screen,
    page.add_init_script(ANSWER_AT_ONCE)
    page.goto(base + "/c/browser/")
    # then the page says the vote came too early, keeps the same comparison on screen, and stores nothing;
    wait_until(page, "!document.querySelector('#error').hidden")
    assert "at least 500 ms" in page.inner_text("#error")
    first = page.evaluate(SOURCES)
    page.wait_for_timeout(700)  # a person looking at the images, not a wait for the page
    assert page.evaluate(SOURCES) == first
    assert votes_in_database(env) == []
    # and after that look, longer than the floor, one more answer sends the vote again, and it counts.
    page.click("fieldset[data-key=diversity] button[data-choice=right]")
    page.wait_for_selector("#reveal:not([hidden])")
    assert votes_in_database(env) == [("diversity", "right"), ("quality", "right")]
