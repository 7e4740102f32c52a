"""The vote page under the production dwell floor: a too-early answer is said, and a later vote counts."""

from __future__ import annotations

import pytest

from tests.browser.conftest import wait_until
from tests.browser.test_voting import votes_in_database

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


# One comparison of four images a side, on the vote page's stand-ins.
SITE_SEED = """
from annotation.models import Campaign
from annotation.services import SeedReport, set_campaign_status, sync_criteria
from generation.models import Prompt
from generation.services import GeneratorSpec, sync_generator

campaign = Campaign.objects.create(slug="dwell", title="Dwell study", population_size=4, votes_per_pair=2)
criteria = [("diversity", "Which set is more varied?"), ("quality", "Which set looks better?")]
sync_criteria(campaign=campaign, criteria=criteria, report=SeedReport())
for seed, palette in ((1, [0.6, 0.1, -0.5]), (2, [-0.5, 0.1, 0.6])):
    generator, _ = sync_generator(spec=GeneratorSpec(
        name=f"hidden-model-{seed}", display_name=f"Model {seed}", description="", source="builtin:tiny-random",
        settings={"steps": 2, "width": 32, "height": 32, "init_seed": seed, "palette": palette}))
    campaign.generators.add(generator)
campaign.prompts.add(Prompt.objects.create(caption="a circle", category="dwell"))
set_campaign_status(campaign=campaign, status="open")
"""


@pytest.fixture(scope="module")
def default_floor_site(shared_site):
    # The production default (500 ms), not the 0 the shared server runs with.
    with shared_site.serve(unset=["VOTE_MIN_DWELL_MS"]) as base:
        yield base, shared_site.env


def test_a_vote_sooner_than_the_default_floor_is_refused_on_the_page_and_a_later_one_counts(page, default_floor_site):
    base, env = default_floor_site
    # Given the vote page under the default floor of 500 ms,
    # when both questions are answered the moment the first comparison is on screen,
    page.add_init_script(ANSWER_AT_ONCE)
    page.goto(base + "/c/dwell/")
    # then the page says the vote came too early, keeps the same comparison on screen, and stores nothing;
    wait_until(page, "!document.querySelector('#error').hidden")
    assert "at least 500 ms" in page.inner_text("#error")
    first = page.evaluate(SOURCES)
    page.wait_for_timeout(700)  # a person looking at the images, not a wait for the page
    assert page.evaluate(SOURCES) == first
    assert votes_in_database(env, "dwell") == []
    # and after that look, longer than the floor, one more answer sends the vote again, and it counts.
    page.click("fieldset[data-key=diversity] button[data-choice=right]")
    page.wait_for_selector("#reveal:not([hidden])")
    assert votes_in_database(env, "dwell") == [("diversity", "right"), ("quality", "right")]
