"""`import_prompts` adds a whole prompt file to a campaign, or nothing at all."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from generation.models import Prompt
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db

OCCUPATIONS = Path(__file__).resolve().parents[2] / "prompts" / "occupations.csv"


def test_occupations_import_into_a_campaign_and_a_second_import_adds_nothing():
    campaign = CampaignFactory()
    out = StringIO()
    call_command("import_prompts", str(OCCUPATIONS), campaign=campaign.slug, stdout=out)
    count = campaign.prompts.count()
    assert count >= 50
    assert f"{count} added to {campaign.slug}" in out.getvalue()
    call_command("import_prompts", str(OCCUPATIONS), campaign=campaign.slug, stdout=StringIO())
    assert campaign.prompts.count() == count
    assert Prompt.objects.count() == count


def test_a_bad_row_imports_nothing_and_names_the_line(tmp_path):
    campaign = CampaignFactory()
    bad = tmp_path / "prompts.csv"
    bad.write_text("caption,category\na doctor,health\na nurse,health\n,health\n")
    with pytest.raises(CommandError, match="prompts.csv line 4: 'caption' is empty"):
        call_command("import_prompts", str(bad), campaign=campaign.slug)
    assert not Prompt.objects.exists()


def test_unknown_campaign_and_missing_file_are_clear_errors(tmp_path):
    with pytest.raises(CommandError, match="no campaign with slug 'nope'"):
        call_command("import_prompts", str(OCCUPATIONS), campaign="nope")
    with pytest.raises(CommandError, match="cannot read"):
        call_command("import_prompts", str(tmp_path / "missing.csv"), campaign="nope")
    assert not Prompt.objects.exists()
