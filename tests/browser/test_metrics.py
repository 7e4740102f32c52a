"""The leaderboard's population metrics in a real browser: shares a person can read, charts whose labels fit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser.conftest import wait_until

ARTIFACTS = Path(os.environ.get("POPARENA_ARTIFACTS", Path(__file__).resolve().parents[2] / "artifacts"))

# The shapes toy model (fewer steps than the demo, to stay quick) skewed and diversified, measured by the
# worker itself right after it stores each population (the population_ready hook).
SITE_SEED = """
from annotation.models import Campaign
from annotation.demo import DEMO_METRICS
from annotation.services import SeedReport, set_campaign_status, sync_criteria
from generation.models import Prompt
from generation.offline import SHAPE_COLOURS
from generation.services import GeneratorSpec, sync_generator

campaign = Campaign.objects.create(
    slug="shapes", title="Shapes study", population_size=6, votes_per_pair=2, metrics_attributes=DEMO_METRICS
)
sync_criteria(campaign=campaign, criteria=[("diversity", "Which set is more varied?")], report=SeedReport())
for name, extra in (("base", {}), ("diverse-prompting", {"augment": {"colour": list(SHAPE_COLOURS)}})):
    generator, _ = sync_generator(spec=GeneratorSpec(
        name=name, display_name=name, description="", source="builtin:shapes",
        settings={"steps": 8, "guidance_scale": 4.0, "width": 32, "height": 32, **extra}))
    campaign.generators.add(generator)
for caption in ("a circle", "a square"):
    campaign.prompts.add(Prompt.objects.create(caption=caption, category="shape only"))
set_campaign_status(campaign=campaign, status="open")
# The per-prompt images name each set's generator: only the campaign's managers see them.
from django.contrib.auth import get_user_model
get_user_model().objects.create_user("staff", password="staff-password", is_staff=True)

# A second study of the same populations whose CLIP folder has since moved (Campaign.save lets such a
# campaign be paused): the worker's hook skips it and still measures for "shapes"; its page says why.
moved = Campaign.objects.create(slug="moved", title="Moved CLIP", population_size=6, metrics_attributes=DEMO_METRICS)
sync_criteria(campaign=moved, criteria=[("diversity", "Which set is more varied?")], report=SeedReport())
moved.generators.set(campaign.generators.all())
moved.prompts.set(campaign.prompts.all())
set_campaign_status(campaign=moved, status="open")
Campaign.objects.filter(pk=moved.pk).update(metrics_attributes={
    **DEMO_METRICS, "gender": {"backend": "clip", "model": "/gone/clip-folder", "classes": ["a man", "a woman"]}})
"""

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def shapes_site(shared_site):  # type: ignore[no-untyped-def]
    return shared_site.base


def test_the_leaderboard_shows_each_generator_s_class_shares_and_one_prompt_s_labelled_images(browser, shapes_site):  # type: ignore[no-untyped-def]
    # A visitor sees the pooled metrics but no set image by image: that would name sides still to be served.
    visitor = browser.new_page(viewport={"width": 1280, "height": 900})
    visitor.goto(shapes_site + "/c/shapes/leaderboard/")
    wait_until(visitor, "document.getElementById('metrics').dataset.loaded === 'true'")
    assert visitor.locator("#prompt-view").count() == 0
    assert visitor.locator("#metrics-table tbody tr").count() == 2
    visitor.close()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(shapes_site + "/admin/login/?next=/c/shapes/leaderboard/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", "staff-password")
    page.click("input[type=submit]")
    page.wait_for_url("**/c/shapes/leaderboard/")
    wait_until(page, "document.getElementById('metrics').dataset.loaded === 'true'")

    # The table says, per generator, which colour is most common: base's open colour is mostly red.
    base_row = page.locator("#metrics-table tbody tr[data-generator='base']")
    assert base_row.locator("td.top-class").first.inner_text().startswith("red ")
    assert page.locator("#metrics-table tbody tr").count() == 2
    # Vendi and faithfulness carry their bootstrap intervals over the two prompts, as the API does.
    for measure in ("vendi", "faithfulness"):
        shown = base_row.locator(f"td.{measure}").inner_text()
        assert " [" in shown, (measure, shown)
        assert " – " in shown, (measure, shown)
    assert "Pooled" in page.inner_text("#metrics-legend")
    # A stacked bar per attribute, one segment per class seen, each with a tooltip.
    charts = page.locator(".share-chart")
    assert charts.count() == 2
    colour_chart = page.locator(".share-chart[data-attribute='colour']")
    assert colour_chart.locator("rect.segment title").count() >= 3
    assert "red" in colour_chart.locator("rect.segment title").first.text_content()
    # Every label in the charts lies inside its drawing.
    outside = page.evaluate(
        """Array.from(document.querySelectorAll('.share-chart svg')).flatMap(svg => {
             const width = svg.viewBox.baseVal.width, height = svg.viewBox.baseVal.height;
             return Array.from(svg.querySelectorAll('text')).filter(t => {
               const b = t.getBBox();
               return b.x < 0 || b.y < 0 || b.x + b.width > width + 0.5 || b.y + b.height > height + 0.5;
             }).map(t => t.textContent);
           })"""
    )
    assert outside == []
    # The agreement table lists each measure (no votes yet), and one prompt's images carry their labels.
    assert page.locator("#agreement-table tbody tr").count() >= 4
    wait_until(page, "document.querySelectorAll('#prompt-view .labelled-grid figure').length === 12")
    captions = page.locator("#prompt-view .prompt-side[data-generator='base'] figcaption").all_inner_texts()
    assert len(captions) == 6
    assert all(" / " in caption for caption in captions), captions
    assert sum(caption.startswith("red") for caption in captions) >= 2
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "leaderboard-metrics.png"), full_page=True)
    page.close()


def test_the_metrics_fit_a_phone(browser, shapes_site):  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(shapes_site + "/c/shapes/leaderboard/")
    wait_until(page, "document.getElementById('metrics').dataset.loaded === 'true'")

    # Wide tables scroll inside their own box; nothing else of the metrics runs off the screen.
    overflowing = page.evaluate(
        """Array.from(document.querySelectorAll('#metrics *'))
             .filter(e => !e.closest('.metrics-wrap') || e.classList.contains('metrics-wrap'))
             .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
             .map(e => e.tagName + ' ' + (e.id || e.getAttribute('class') || ''))"""
    )
    assert overflowing == []
    page.close()


def test_a_campaign_whose_clip_folder_moved_says_so_where_the_metrics_would_be(browser, shapes_site):  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(shapes_site + "/c/moved/leaderboard/")
    wait_until(page, "document.getElementById('metrics').dataset.error === 'true'")

    note = page.inner_text("#metrics-note")
    assert "gender.model: not a model this server offers" in note, note
    assert page.locator("#metrics-body").is_hidden()
    page.close()
