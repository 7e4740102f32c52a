"""The leaderboard's interval chart in a real browser: every generator's name fits, on a laptop and a phone."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from annotation.models import Campaign
from generation.services import GeneratorSpec, sync_generator

pytestmark = pytest.mark.django_db(transaction=True)

# Names as people write them: many words, and one word too long for a phone's chart.
LONG_NAMES = (
    "Stable Diffusion 1.5 fine-tuned with PopAlign on the occupations export (LoRA rank 8, beta 0.1)",
    "Supercalifragilisticexpialidocious-population-aligned-generator-v2",
)


@pytest.fixture
def board(live_server):
    call_command("seed_demo", stdout=StringIO())
    campaign = Campaign.objects.get(slug="demo")
    for i, display_name in enumerate(LONG_NAMES):
        generator, _ = sync_generator(
            spec=GeneratorSpec(
                name=f"long-name-{i}",
                display_name=display_name,
                description="",
                source="builtin:tiny-random",
                settings={"steps": 2, "width": 32, "height": 32},
            )
        )
        campaign.generators.add(generator)
    return live_server.url + "/c/demo/leaderboard/", set(campaign.generators.values_list("display_name", flat=True))


def chart_labels(page) -> tuple[dict, list[dict]]:  # type: ignore[type-arg]
    """The chart's box and, for each name label, its box, shown text and full name on hover."""
    page.wait_for_selector("#chart text.name")
    chart = page.locator("#chart").bounding_box()
    labels = page.evaluate(
        """Array.from(document.querySelectorAll('#chart text.name')).map(el => {
             const box = el.getBoundingClientRect();
             const title = el.querySelector('title');
             return {
               x: box.x, y: box.y, width: box.width, height: box.height,
               shown: el.querySelector('tspan')
                 ? Array.from(el.querySelectorAll('tspan')).map(t => t.textContent).join(' ')
                 : el.textContent,
               hover: title ? title.textContent : null,
             };
           })"""
    )
    return chart, labels


@pytest.mark.parametrize(
    ("width", "height", "mobile"), [(1280, 800, False), (375, 740, True)], ids=["desktop", "phone"]
)
def test_every_generator_name_lies_inside_the_chart_and_reads_in_full(browser, board, width, height, mobile):
    context = browser.new_context(viewport={"width": width, "height": height}, is_mobile=mobile)
    page = context.new_page()
    url, expected = board
    page.goto(url)
    chart, labels = chart_labels(page)
    page_width = page.evaluate("document.documentElement.scrollWidth")
    wide = page.evaluate(
        f"""Array.from(document.querySelectorAll('body *'))
             .filter(e => e.getBoundingClientRect().right > {width} + 0.5)
             .filter(e => !e.closest('.board-wrap, .heatmap-wrap, .metrics-wrap'))
             .map(e => e.tagName + '#' + e.id + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))
             .slice(0, 8)"""
    )
    context.close()

    assert page_width <= width, f"the page scrolls sideways: {wide}"
    # Every generator of the campaign: the demo's own (Biased prompting's was the one cut off) and the long ones.
    assert {*LONG_NAMES, "Biased prompting (shapes toy model)", "Diverse prompting (shapes toy model)"} <= expected
    names_seen: set[str] = set()
    for label in labels:
        assert label["x"] >= chart["x"], f"{label['shown']!r} starts left of the chart"
        assert label["x"] + label["width"] <= chart["x"] + chart["width"], f"{label['shown']!r} runs past the chart"
        assert label["y"] >= chart["y"]
        assert label["y"] + label["height"] <= chart["y"] + chart["height"]
        # What the reader can get at: the label itself, or its tooltip where it had to be shortened.
        full = label["hover"] or label["shown"]
        names_seen.add(full.split(". ", 1)[1])
        if label["hover"] is not None:
            assert label["shown"].endswith("…")
    assert names_seen == expected
