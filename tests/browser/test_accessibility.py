"""Every page passes axe-core's WCAG 2.1 AA rules in Chromium, as a participant and as staff reach them.

A study like the demo's, with what the demo leaves out (consent, a questionnaire, a quota with a completion
code), so each page is checked with the content it has in use: a vote page with its images, a leaderboard
with votes, its chart, heatmap and population metrics, a quality page with a participant. Participants go
through their pages twice, on a desktop and on a phone (a phone's viewport, user agent and touch), and on the
phone no page is wider than the screen. An MTurk campaign beside it gives the pages a crowd worker meets (the
HIT's preview, the "take part through your platform" refusal), and the API's documentation is checked too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
hit = Campaign.objects.create(
    slug="a11y-hit", title="Accessibility HIT", access="mturk", population_size=4, votes_per_pair=2,
    participant_quota=1, instructions=DEMO_INSTRUCTIONS,
)
sync_criteria(campaign=hit, criteria=list(DEMO_CRITERIA), report=SeedReport())
hit.generators.set(campaign.generators.all())
hit.prompts.set(campaign.prompts.all())
set_campaign_status(campaign=hit, status="open")
get_user_model().objects.create_user("a11y-staff", password="a11y-staff-password", is_staff=True)
"""

# What every visitor and every member of staff can open, in the order they meet the pages.
JOURNEY = (
    "campaign list",
    "consent",
    "questionnaire",
    "questionnaire with errors",
    "vote page",
    "completion page",
    "withdrawal page",
    "leaderboard with metrics",
    "withdrawal done",
)
ELSEWHERE = (
    "MTurk preview",
    "take part through the platform",
    "unknown campaign",
    "API documentation",
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
# A phone as Playwright describes it (viewport, scale, touch, a mobile user agent: another client, so the
# phone is issued sets of its own).
PHONE = "Pixel 5"


def _journey(page, base: str, check: Callable[[Any, str], None]) -> None:
    """A participant from the list to the end: consent, questionnaire (once with errors), a comparison, the
    code, the withdrawal page and the board, then withdrawing."""
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
    page.goto(base + "/c/a11y/withdraw/")
    page.check("#withdraw-confirm")
    page.click("#withdraw-submit")
    page.wait_for_url(base + "/c/a11y/ended/")
    check(page, "withdrawal done")


def test_every_page_passes_axe_core_wcag_21_aa(browser, playwright, shared_site):
    base = shared_site.base
    found: dict[str, list[str]] = {}
    too_wide: dict[str, tuple[int, int]] = {}

    def check(page, name: str) -> None:
        found[name] = [str(violation) for violation in axe_violations(page)]

    def check_phone(page, name: str) -> None:
        check(page, f"{name} (phone)")
        widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        if widths[0] > widths[1]:
            too_wide[name] = (widths[0], widths[1])

    # A participant on a desktop, then one on a phone.
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    _journey(context.new_page(), base, check)
    context.close()
    context = browser.new_context(**playwright.devices[PHONE])
    _journey(context.new_page(), base, check_phone)
    context.close()

    # What a crowd worker meets before taking part, a link to no study, and the API's documentation.
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(base + "/c/a11y-hit/?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H1")
    page.wait_for_selector("#preview")
    check(page, "MTurk preview")
    response = page.goto(base + "/c/a11y-hit/")
    assert response is not None
    assert response.status == 403
    check(page, "take part through the platform")
    response = page.goto(base + "/c/no-such-study/")
    assert response is not None
    assert response.status == 404
    check(page, "unknown campaign")
    page.goto(base + "/api/docs/")
    page.wait_for_selector(".swagger-ui .opblock")
    page.click(".opblock-summary-control")  # one operation open, with its example bodies
    page.wait_for_selector(".opblock-body .highlight-code")
    check(page, "API documentation")
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

    phone = tuple(f"{name} (phone)" for name in JOURNEY)
    assert list(found) == [*JOURNEY, *phone, *ELSEWHERE, *STAFF_PAGES]
    failing = {name: problems for name, problems in found.items() if problems}
    assert failing == {}, "\n".join(f"{name}:\n  " + "\n  ".join(problems) for name, problems in failing.items())
    assert too_wide == {}, f"wider than the phone's screen (page width, screen width): {too_wide}"
    # The quality page names its columns for people, not as the CSV does, and fits a 1280 px page: the wide
    # table scrolls inside its own keyboard-reachable region (axe's scrollable-region-focusable above).
    assert quality_headers == [QUALITY_COLUMN_LABELS[field] for field in QUALITY_CSV_FIELDS]
    assert not any("_" in header for header in quality_headers), quality_headers
    assert quality_width <= 1280
