"""The leaderboard page's group selector, group test and weighted board in a real browser."""

from __future__ import annotations

import random

import pytest

from arena import group_boards
from arena.tallies import recount_tallies
from tests.arena.test_group_agreement import crowd as agreement_crowd  # noqa: F401  (a fixture)
from tests.arena.test_group_boards import crowd, make_study
from tests.browser.conftest import wait_until
from tests.metrics.conftest import study  # noqa: F401  (the fixture agreement_crowd builds on)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def board(live_server, monkeypatch):
    monkeypatch.setattr(group_boards, "GROUP_ROUNDS", 20)
    monkeypatch.setattr(group_boards, "GROUP_PERMUTATIONS", 19)
    campaign = make_study()
    rng = random.Random(11)
    crowd(campaign, "woman", 6, "narrow", rng)
    crowd(campaign, "man", 6, "wide", rng)
    crowd(campaign, "prefer not to say", 2, "base", rng)
    recount_tallies(campaign=campaign)
    campaign.population_targets = {"margins": [{"questions": ["gender"], "shares": {"man": 0.3, "woman": 0.7}}]}
    campaign.save(update_fields=["population_targets"])
    return live_server.url + "/c/groups/leaderboard/"


def meta(page) -> str:
    return page.locator("#meta").inner_text()


def test_a_group_board_is_shown_and_a_small_group_is_not(page, board):
    page.goto(board)
    page.wait_for_selector("#board tbody tr")

    # When a group is chosen, the board is that group's: narrow first for the women.
    page.select_option("#group", "gender:woman")
    wait_until(page, "document.getElementById('meta').textContent.includes('gender: woman')")
    assert "6 participants" in meta(page)
    assert page.locator("#board tbody tr").first.get_attribute("data-generator") == "narrow"

    # A group of two is never shown: no rows, and the page says why.
    page.select_option("#group", "gender:prefer not to say")
    wait_until(page, "document.getElementById('meta').textContent.includes('not shown')")
    assert page.locator("#board tbody tr").count() == 0
    assert "fewer than 5 participants" in meta(page)


def test_the_group_test_and_the_weighted_board_render(page, board):
    page.goto(board)
    page.click("#group-test-form button")
    wait_until(page, "document.getElementById('group-test-result').textContent.includes('p = ')")
    result = page.locator("#group-test-result").inner_text()
    assert "1 smaller group(s) left out" in result
    sizes = page.locator("#group-sizes tbody").inner_text()
    assert "woman" in sizes
    assert "man" in sizes
    assert "prefer not to say" not in sizes

    page.click("#weighted-show")
    wait_until(page, "document.getElementById('weighted-meta').textContent.includes('effective sample size')")
    assert page.locator("#weighted-board tbody tr").count() == 3
    assert page.locator("#weighted-composition tbody tr").count() == 2


@pytest.fixture
def measured(live_server, agreement_crowd):  # type: ignore[no-untyped-def]  # noqa: F811
    """tests/arena/test_group_agreement.py's crowd (6 "varied", 5 "plain", 2 "other") on measured image sets."""
    return live_server.url + "/c/study/leaderboard/"


def agreement_rows(page) -> list[str]:  # type: ignore[no-untyped-def]
    return page.locator("#agreement-table tbody tr").all_inner_texts()


def test_the_group_selector_narrows_the_metrics_agreement_to_the_group(page, measured):  # type: ignore[no-untyped-def]
    page.goto(measured)
    wait_until(page, "document.getElementById('metrics').dataset.loaded === 'true'")
    assert "Everyone's counted votes" in page.locator("#agreement-scope").inner_text()

    # When the varied group is picked, the agreement is theirs: the colour's discrepancy agrees on all 24 votes.
    page.select_option("#group", "taste:varied")
    wait_until(page, "document.getElementById('agreement-scope').textContent.includes('taste: varied')")
    assert "bootstrap over its participants" in page.locator("#agreement-scope").inner_text()
    colour = next(row for row in agreement_rows(page) if "discrepancy:colour" in row)
    assert "100%" in colour
    assert "24" in colour

    # A group of two shows no agreement, says why, and the metrics table stays.
    page.select_option("#group", "taste:other")
    wait_until(page, "document.getElementById('agreement-scope').textContent.includes('not shown')")
    assert agreement_rows(page) == []
    assert "fewer than 5 participants" in page.locator("#agreement-scope").inner_text()
    assert page.locator("#metrics-table tbody tr").count() == 3
