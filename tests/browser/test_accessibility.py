"""Every page passes axe-core's WCAG 2.1 AA rules in Chromium, as a participant and as staff reach them.

A study like the demo's, with what the demo leaves out (consent, a questionnaire, a quota with a completion
code), so each page is checked with the content it has in use: a vote page with its images, a leaderboard
with votes, its chart, heatmap and population metrics, a quality page with a participant.
"""

from __future__ import annotations

import pytest

from quality.scoring import QUALITY_COLUMN_LABELS, QUALITY_CSV_FIELDS
from tests.browser.accessibility import axe_violations
from tests.browser.conftest import wait_until

pytestmark = pytest.mark.browser

SITE_SEED = """
from django.contrib.auth import get_user_model
from annotation.demo import DEMO_CRITERIA, DEMO_INSTRUCTIONS, DEMO_METRICS
from annotation.models import Campaign
from annotation.questionnaire import QuestionSpec, save_question
from annotation.services import SeedReport, set_campaign_status, sync_criteria
from generation.models import Prompt
from generation.offline import SHAPE_COLOURS
from generation.services import GeneratorSpec, sync_generator

campaign = Campaign.objects.create(
    slug="a11y", title="Accessibility study", population_size=4, votes_per_pair=2, participant_quota=1,
    completion_code="A11Y-DONE", instructions=DEMO_INSTRUCTIONS, metrics_attributes=DEMO_METRICS,
    consent_text="## Your consent\\n\\nYour votes are used for **research** only.",
)
sync_criteria(campaign=campaign, criteria=list(DEMO_CRITERIA), report=SeedReport())
for name, extra in (("a11y-base", {}), ("a11y-diverse", {"augment": {"colour": list(SHAPE_COLOURS)}})):
    generator, _ = sync_generator(spec=GeneratorSpec(
        name=name, display_name=f"{name} (shapes toy model)", description="", source="builtin:shapes",
        settings={"steps": 8, "guidance_scale": 4.0, "width": 32, "height": 32, **extra}))
    campaign.generators.add(generator)
campaign.prompts.add(Prompt.objects.create(caption="a circle", category="a11y"))
save_question(campaign=campaign, spec=QuestionSpec(
    key="age", text="How old are you?", kind="number", min_value=18, max_value=99, position=0))
save_question(campaign=campaign, spec=QuestionSpec(
    key="vision", text="Do you wear glasses?", kind="single", choices=("yes", "no"), sensitive=True, position=1))
set_campaign_status(campaign=campaign, status="open")
get_user_model().objects.create_user("a11y-staff", password="a11y-staff-password", is_staff=True)
"""

# What every visitor and every member of staff can open, in the order they meet the pages.
PARTICIPANT_PAGES = (
    "campaign list",
    "consent",
    "questionnaire",
    "questionnaire with errors",
    "vote page",
    "completion page",
    "withdrawal page",
    "leaderboard with metrics",
)
STAFF_PAGES = (
    "staff dashboard",
    "new-campaign form",
    "staff campaign page",
    "staff participants page",
    "quality page",
    "leaderboard for staff",
    "exports page",
)


def test_every_page_passes_axe_core_wcag_21_aa(browser, shared_site):
    base = shared_site.base
    found: dict[str, list[str]] = {}

    def check(page, name: str) -> None:
        found[name] = [str(violation) for violation in axe_violations(page)]

    # A participant: the list, the consent, the questionnaire (once with errors), a comparison, the code.
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(base + "/")
    check(page, "campaign list")
    page.goto(base + "/c/a11y/")
    page.wait_for_selector("#consent-accept")
    check(page, "consent")
    with page.expect_navigation():
        page.click("#consent-accept")
    page.goto(base + "/c/a11y/questions/")
    page.wait_for_selector("#questionnaire")
    check(page, "questionnaire")
    page.click("#questionnaire button[type=submit]")
    page.wait_for_selector("#questionnaire-errors")
    check(page, "questionnaire with errors")
    page.fill("fieldset[data-key=age] input[type=text]", "34")
    page.check("fieldset[data-key=vision] input[value=no]")
    page.click("#questionnaire button[type=submit]")
    page.wait_for_url(base + "/c/a11y/")
    wait_until(page, "Array.from(document.querySelectorAll('.grid img')).filter(i => i.complete).length === 8")
    check(page, "vote page")
    page.click("fieldset[data-key=diversity] button[data-choice=right]")
    page.click("fieldset[data-key=quality] button[data-choice=left]")
    page.wait_for_url(base + "/c/a11y/done/")
    assert page.inner_text("#completion-code") == "A11Y-DONE"
    check(page, "completion page")
    page.goto(base + "/c/a11y/withdraw/")
    check(page, "withdrawal page")
    page.goto(base + "/c/a11y/leaderboard/")
    page.wait_for_selector("#board tbody tr")
    wait_until(page, "document.getElementById('metrics').dataset.loaded === 'true'")
    check(page, "leaderboard with metrics")
    context.close()

    # Staff: the dashboard, the forms, the campaign's pages and the quality report with that participant in it.
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(base + "/admin/login/?next=/staff/")
    page.fill("#id_username", "a11y-staff")
    page.fill("#id_password", "a11y-staff-password")
    page.click("input[type=submit]")
    page.wait_for_url(base + "/staff/")
    check(page, "staff dashboard")
    page.goto(base + "/staff/campaigns/new/")
    check(page, "new-campaign form")
    page.goto(base + "/staff/campaigns/a11y/")
    check(page, "staff campaign page")
    page.goto(base + "/staff/campaigns/a11y/participants/")
    check(page, "staff participants page")
    page.goto(base + "/c/a11y/quality/")
    page.wait_for_selector("#quality tbody tr")
    check(page, "quality page")
    quality_headers = page.locator("#quality thead th").all_inner_texts()
    quality_width = page.evaluate("document.documentElement.scrollWidth")
    page.goto(base + "/c/a11y/leaderboard/")
    wait_until(page, "document.querySelectorAll('#prompt-view .labelled-grid figure').length === 8")
    check(page, "leaderboard for staff")
    page.goto(base + "/admin/exports/campaigns/a11y/")
    check(page, "exports page")
    context.close()

    assert list(found) == [*PARTICIPANT_PAGES, *STAFF_PAGES]
    failing = {name: problems for name, problems in found.items() if problems}
    assert failing == {}, "\n".join(f"{name}:\n  " + "\n  ".join(problems) for name, problems in failing.items())
    # The quality page names its columns for people, not as the CSV does, and fits a 1280 px page: the wide
    # table scrolls inside its own keyboard-reachable region (axe's scrollable-region-focusable above).
    assert quality_headers == [QUALITY_COLUMN_LABELS[field] for field in QUALITY_CSV_FIELDS]
    assert not any("_" in header for header in quality_headers), quality_headers
    assert quality_width <= 1280
