"""Voting in a real browser against the live ASGI server, with images made by the worker."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.browser.conftest import wait_until
from tests.servers import manage, site_query

ARTIFACTS = Path(os.environ.get("POPARENA_ARTIFACTS", Path(__file__).resolve().parents[2] / "artifacts"))

# A small campaign on two visibly different random-weight stand-ins, built through the services, and a third with
# room for a few more votes, for the swap-before-the-answer test; their image sets are made before the tests.
SITE_SEED = """
from annotation.models import Campaign
from annotation.services import SeedReport, set_campaign_status, sync_criteria
from generation.models import Prompt
from generation.services import GeneratorSpec, sync_generator

campaign = Campaign.objects.create(slug="browser", title="Browser study", population_size=4, votes_per_pair=2)
criteria = [("diversity", "Which set is more varied?"), ("quality", "Which set looks better?")]
sync_criteria(campaign=campaign, criteria=criteria, report=SeedReport())
for seed, palette in ((1, [0.6, 0.1, -0.5]), (2, [-0.5, 0.1, 0.6])):
    generator, _ = sync_generator(spec=GeneratorSpec(
        name=f"hidden-model-{seed}", display_name=f"Model {seed}", description="", source="builtin:tiny-random",
        settings={"steps": 2, "width": 32, "height": 32, "init_seed": seed, "palette": palette}))
    campaign.generators.add(generator)
for caption in ("a circle", "a square", "a triangle"):
    campaign.prompts.add(Prompt.objects.create(caption=caption, category="shape"))
set_campaign_status(campaign=campaign, status="open")

swap = Campaign.objects.create(slug="swap", title="Swap study", population_size=2, votes_per_pair=1)
sync_criteria(campaign=swap, criteria=criteria, report=SeedReport())
swap.generators.set(campaign.generators.all())
for caption in ("a red dot", "a blue dot", "a green dot"):
    swap.prompts.add(Prompt.objects.create(caption=caption, category="dot"))
set_campaign_status(campaign=swap, status="open")
"""

# A campaign on the same generators whose images are not made yet: a test watches them arrive.
SITE_SEED_WAITING = """
from annotation.models import Campaign
from annotation.services import SeedReport, set_campaign_status, sync_criteria
from generation.models import Prompt

later = Campaign.objects.create(slug="later", title="Later study", population_size=2)
criteria = [("diversity", "Which set is more varied?"), ("quality", "Which set looks better?")]
sync_criteria(campaign=later, criteria=criteria, report=SeedReport())
later.generators.set(Campaign.objects.get(slug="browser").generators.all())
later.prompts.add(Prompt.objects.create(caption="a star", category="shape"))
set_campaign_status(campaign=later, status="open")
"""

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def arena_site(shared_site):
    return shared_site.base, shared_site.env, shared_site.env


def votes_in_database(env: dict[str, str], campaign: str = "browser") -> list[tuple[str, str]]:
    """The campaign's votes in the order they were stored: (criterion, choice)."""
    return site_query(
        env,
        "SELECT c.key, v.choice FROM arena_vote v JOIN annotation_criterion c ON c.id = v.criterion_id "
        "WHERE c.campaign_id = (SELECT id FROM annotation_campaign WHERE slug = ?) ORDER BY v.id",
        campaign,
    )


def grid_images_loaded(page, side: str) -> int:
    return page.evaluate(
        f"""Array.from(document.querySelectorAll('#grid-{side} img'))
             .filter(img => img.complete && img.naturalWidth > 0).length"""
    )


def test_vote_with_mouse_and_keyboard_then_see_the_reveal_and_the_next_comparison_without_reload(browser, arena_site):
    base, database, _ = arena_site
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    console_errors: list[str] = []
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    page.goto(base + "/c/browser/")
    wait_until(page, "document.querySelectorAll('#grid-left img').length === 4")
    wait_until(
        page, "Array.from(document.querySelectorAll('.grid img')).every(img => img.complete && img.naturalWidth > 0)"
    )
    assert grid_images_loaded(page, "left") == grid_images_loaded(page, "right") == 4
    # Both grids fit a laptop screen without scrolling.
    assert page.evaluate("document.documentElement.scrollHeight") <= 768 + 40
    page.evaluate("window.__sameDocument = true")
    first_images = page.eval_on_selector_all(".grid img", "imgs => imgs.map(i => i.src)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "vote-page.png"))

    # Mouse: one answer per criterion; the second sends the votes.
    page.click("fieldset[data-key=diversity] button[data-choice=left]")
    page.click("fieldset[data-key=quality] button[data-choice=tie]")
    page.wait_for_selector("#reveal:not([hidden])")
    assert "left was Model" in page.inner_text("#reveal")
    sources = "JSON.stringify(Array.from(document.querySelectorAll('.grid img')).map(i => i.src))"
    wait_until(page, f"{sources} !== {json.dumps(json.dumps(first_images))}")
    assert page.evaluate("window.__sameDocument") is True, "the next comparison came without a page reload"
    assert "1 comparison voted" in page.inner_text("#progress")

    # Keyboard: 2 (right) answers the highlighted first question, 4 (both bad) the second.
    page.keyboard.press("2")
    page.keyboard.press("4")
    wait_until(page, "document.querySelector('#progress').textContent.startsWith('2 comparisons')")
    assert page.evaluate("window.__sameDocument") is True
    assert votes_in_database(database) == [
        ("diversity", "left"),
        ("quality", "tie"),
        ("diversity", "right"),
        ("quality", "both_bad"),
    ]
    assert console_errors == [], "the page runs under its Content-Security-Policy without errors"
    page.close()


def test_a_click_on_an_image_opens_it_large(browser, arena_site):
    base, _, _ = arena_site
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.goto(base + "/c/browser/")
    page.wait_for_selector("#grid-right img")
    page.click("#grid-right img >> nth=0")
    assert page.is_visible("#zoom")
    width = page.evaluate("document.getElementById('zoom-image').getBoundingClientRect().width")
    assert width > 300
    page.keyboard.press("Escape")
    assert not page.is_visible("#zoom")
    page.close()


def test_phone_layout_stacks_the_sets(browser, arena_site):
    base, _, _ = arena_site
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.goto(base + "/c/browser/")
    page.wait_for_selector("#grid-right img")
    left = page.locator("#grid-left").bounding_box()
    right = page.locator("#grid-right").bounding_box()
    assert right["y"] >= left["y"] + left["height"]
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    context.close()


def test_a_waiting_page_shows_the_queue_and_swaps_in_the_comparison_when_images_are_ready(browser, arena_site):
    base, _, env = arena_site
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.goto(base + "/c/later/")
    page.wait_for_selector("#waiting:not([hidden])")
    assert "Images are still being generated" in page.inner_text("#waiting")
    wait_until(page, "document.getElementById('queue').textContent.includes('Image sets ready: 0 of 4')")
    queue = page.inner_text("#queue")
    assert "being made now: 0; waiting their turn: 4" in queue
    # The same generators just made the other campaigns' sets: their measured speed gives the estimate.
    assert "images/s, the first comparison should be ready in about" in queue
    page.evaluate("window.__sameDocument = true")
    # When the worker makes the images, the comparison appears without a reload.
    manage(env, "run_generation_worker", "--once", "--campaign", "later")
    page.wait_for_selector("#grid-left img", timeout=15_000)
    assert page.is_hidden("#waiting")
    assert page.evaluate("window.__sameDocument") is True
    assert page.inner_text("#prompt") == "a star"
    page.close()


def test_the_leaderboard_page_updates_live_when_someone_votes(browser, arena_site):
    base, _, _ = arena_site
    board = browser.new_page(viewport={"width": 1280, "height": 900})
    board.goto(base + "/c/browser/leaderboard/")
    board.wait_for_selector("#live.on")
    before = board.inner_text("#meta")
    votes_before = int(before.split()[0])
    board.evaluate("window.__sameDocument = true")
    # Someone else votes in another browser.
    voter = browser.new_context().new_page()
    voter.goto(base + "/c/browser/")
    voter.wait_for_selector("#grid-left img")
    voter.keyboard.press("1")
    voter.keyboard.press("1")
    voter.wait_for_selector("#reveal:not([hidden])")
    wait_until(board, f"parseInt(document.getElementById('meta').textContent) === {votes_before + 1}")
    assert board.evaluate("window.__sameDocument") is True
    assert board.locator("#board tbody tr").count() == 2
    assert board.locator("#chart circle").count() == 2
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    board.screenshot(path=str(ARTIFACTS / "leaderboard.png"), full_page=True)
    board.close()
    voter.close()


def test_the_next_comparison_is_on_screen_before_the_server_has_answered_the_vote(browser, arena_site):
    base, database, _ = arena_site
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    # The first comparison comes with the page; the only comparisons/next request is the prefetch behind it.
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if "/comparisons/next" in request.url else None)
    with page.expect_request_finished(lambda request: "/comparisons/next" in request.url, timeout=10_000):
        page.goto(base + "/c/swap/")
    page.wait_for_selector("#grid-left img")
    sources = "JSON.stringify(Array.from(document.querySelectorAll('.grid img')).map(i => i.src))"
    first = page.evaluate(sources)
    held: list = []
    # Hold the vote's response back: the participant must not wait for it to see the next sets.
    page.route("**/votes", lambda route: held.append(route))
    votes_before = len(votes_in_database(database, "swap"))
    page.keyboard.press("1")
    page.keyboard.press("1")
    wait_until(page, f"{sources} !== {json.dumps(first)}", timeout_s=2)
    assert held, "the vote request was sent"
    assert page.is_hidden("#reveal"), "the reveal waits for the server's answer"
    # The vote asks for the comparison after the one now on screen: no separate request for it.
    assert "next" in held[0].request.post_data_json
    held[0].continue_()
    page.wait_for_selector("#reveal:not([hidden])")
    assert len(votes_in_database(database, "swap")) == votes_before + 2
    answer = held[0].request.response()
    assert answer is not None
    following = answer.json()["next"]
    assert following is not None, "the vote's answer brought the comparison after the one on screen"
    # The page preloads the images of the comparison the vote brought, in the same step in which it would
    # otherwise ask for one: once they have loaded, a second request would have been sent.
    urls = json.dumps(following["left"]["images"] + following["right"]["images"])
    wait_until(page, f"{urls}.every(u => performance.getEntriesByName(new URL(u, location.href).href).length > 0)")
    assert len(asked) == 1, asked
    context.close()
