"""Consent in a real browser: the text before the first comparison, accepting leads to it, declining ends politely."""

from __future__ import annotations

import pytest

from tests.browser.conftest import wait_until

SITE_SEED = """
from annotation.models import Campaign
from annotation.services import SeedReport, set_campaign_status, sync_criteria
from generation.models import Prompt
from generation.services import GeneratorSpec, sync_generator

campaign = Campaign.objects.create(
    slug="consent", title="Consent study", population_size=2, votes_per_pair=5,
    consent_text="## Your consent\\n\\nYour votes are used for **research**. <b>not bold</b>",
)
sync_criteria(campaign=campaign, criteria=[("quality", "Which set looks better?")], report=SeedReport())
for seed in (1, 2):
    generator, _ = sync_generator(spec=GeneratorSpec(
        name=f"consent-model-{seed}", display_name=f"Model {seed}", description="", source="builtin:tiny-random",
        settings={"steps": 2, "width": 32, "height": 32, "init_seed": seed}))
    campaign.generators.add(generator)
campaign.prompts.add(Prompt.objects.create(caption="a circle", category="consent"))
set_campaign_status(campaign=campaign, status="open")
"""

pytestmark = pytest.mark.browser

DECISIONS = (
    "SELECT version, accepted FROM annotation_consentdecision "
    "WHERE campaign_id = (SELECT id FROM annotation_campaign WHERE slug = 'consent') ORDER BY id"
)


@pytest.fixture(scope="module")
def consent_site(shared_site):
    return shared_site.base, shared_site


def test_accepting_the_consent_shows_the_first_comparison(browser, consent_site):
    base, site = consent_site
    page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(base + "/c/consent/")
    page.wait_for_selector("#consent")
    assert "Your consent" in page.inner_text("#consent-text")
    assert page.inner_text("#consent-text strong") == "research"
    assert "<b>not bold</b>" in page.inner_text("#consent-text"), "HTML in the text is shown, not rendered"
    assert page.query_selector("#grid-left") is None, "no comparison before consent"
    with page.expect_navigation():  # accepted: the page reloads with the first comparison
        page.click("#consent-accept")
    wait_until(page, "document.querySelectorAll('#grid-left img').length === 2")
    assert site.query(DECISIONS) == [(1, True)]
    assert errors == [], "the page runs under its Content-Security-Policy without errors"
    page.close()


def test_declining_ends_participation_with_a_polite_page(browser, consent_site):
    base, site = consent_site
    page = browser.new_page()
    page.goto(base + "/c/consent/")
    page.wait_for_selector("#consent-decline")
    page.click("#consent-decline")
    page.wait_for_selector("#ended-message")
    assert "You chose not to take part" in page.inner_text("#ended-message")
    # Coming back shows the same end, not the consent again
    page.goto(base + "/c/consent/")
    page.wait_for_selector("#ended-message")
    assert [row for row in site.query(DECISIONS) if not row[1]] == [(1, False)]
    page.close()
