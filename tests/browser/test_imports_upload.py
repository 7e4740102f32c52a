"""The staff page's zip upload of image sets made elsewhere, in a real browser: imported whole, refused whole, once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.generation.importing_fixtures import image_folder, rows_for, zipped

pytestmark = pytest.mark.browser

# A researcher's draft campaign with two prompts and no generator yet: the shared site's worker makes nothing for it.
SITE_SEED = """
from django.contrib.auth.models import User
from annotation.models import Campaign
from annotation.services import grant_researcher_role
from generation.models import Prompt

owner = User.objects.create_user("importer", password="importer-pw-1")
grant_researcher_role(user=owner)
campaign = Campaign.objects.create(
    slug="imported-sets", title="Imported sets", owner=owner, population_size=2, votes_per_pair=1)
for caption in ("an imported doctor", "an imported nurse"):
    campaign.prompts.add(Prompt.objects.get_or_create(caption=caption, category="imports", owner=owner)[0])
"""
SLUG = "imported-sets"
GENERATOR = "collected-by-hand"


def sets_of(shared_site, generator: str) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    return shared_site.query(
        "SELECT p.status, count(i.id) FROM generation_population p "
        "JOIN generation_generator g ON g.id = p.generator_id LEFT JOIN generation_image i ON i.population_id = p.id "
        "WHERE g.name = ? GROUP BY p.id, p.status",
        generator,
    )


def upload(page, base: str, archive: Path) -> str:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/staff/campaigns/{SLUG}/")
    page.set_input_files("#imports input[type=file]", str(archive))
    page.click("#import-submit")
    page.wait_for_url(f"{base}/staff/campaigns/{SLUG}/")
    return page.inner_text("main")


def test_a_researcher_uploads_a_zip_of_image_sets_on_the_staff_page(shared_site, page, tmp_path):
    base = shared_site.base
    # Given the researcher who owns the campaign, logged in,
    page.goto(base + "/staff/")
    page.fill("#id_username", "importer")
    page.fill("#id_password", "importer-pw-1")
    page.click("input[type=submit]")
    page.wait_for_url(base + "/staff/")
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)

    # when they upload a zip with a bad row (a prompt the campaign lacks) beside two good sets,
    good = rows_for(GENERATOR, "an imported doctor", 2) + rows_for(GENERATOR, "an imported nurse", 2, start=10)
    bad = [*good, {"file_name": "stray.png", "prompt": "an imported pilot", "generator": GENERATOR}]
    refused = tmp_path / "bad.zip"
    refused.write_bytes(zipped(image_folder(tmp_path / "bad", bad), under="sets"))
    shown = upload(page, base, refused)
    # then the page names the row and says nothing was stored, and nothing was;
    assert "the import was refused and nothing was stored" in shown
    assert f"metadata.jsonl line 5: prompt 'an imported pilot' is not one of campaign '{SLUG}'" in shown
    assert sets_of(shared_site, GENERATOR) == []

    # when they upload the two good sets (the same pictures, the bad row left out),
    accepted = tmp_path / "good.zip"
    accepted.write_bytes(zipped(image_folder(tmp_path / "good", good)))
    shown = upload(page, base, accepted)
    # then both are stored as ready sets of two of a new imported generator, which the page now lists,
    assert "4 image(s) read: 2 new set(s) of 4 image(s) stored" in shown
    assert f"new imported generator(s): {GENERATOR}" in shown
    assert sorted(sets_of(shared_site, GENERATOR)) == [("ready", 2), ("ready", 2)]
    assert GENERATOR in page.inner_text("main")

    # and the same zip once more adds nothing.
    shown = upload(page, base, accepted)
    assert "2 set(s) were imported before and added nothing" in shown
    assert len(sets_of(shared_site, GENERATOR)) == 2
    assert errors == []
