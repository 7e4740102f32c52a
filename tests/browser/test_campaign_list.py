"""A visitor's first look: the campaign list in a real browser, on a laptop and on a phone."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def demo_site(live_server):
    call_command("seed_demo", stdout=StringIO())
    return live_server.url


def test_visitor_sees_the_demo_campaign_card(page, demo_site):
    page.goto(demo_site + "/")
    card = page.locator(".campaign-card[data-slug=demo]")
    assert card.locator("h2").inner_text() == "Demo: which set of shapes is better?"
    assert "6 images per side" in card.inner_text()
    # The stylesheet loaded: cards sit on a white background, not the browser default.
    background = card.evaluate("el => getComputedStyle(el).backgroundColor")
    assert background == "rgb(255, 255, 255)"


def test_campaign_cards_fit_a_phone_screen_without_sideways_scrolling(browser, demo_site):
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    page = context.new_page()
    page.goto(demo_site + "/")
    page_width = page.evaluate("document.documentElement.scrollWidth")
    card_box = page.locator(".campaign-card").first.bounding_box()
    context.close()
    assert page_width <= 375
    assert card_box is not None
    assert card_box["x"] >= 0
    assert card_box["x"] + card_box["width"] <= 375
