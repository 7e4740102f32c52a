"""The export_preferences command: a thin interface that reports what it wrote and fails clearly."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from exports.writers import FORMATS

pytestmark = pytest.mark.django_db


def run(*args: object) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("export_preferences", *map(str, args), "--no-progress", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_command_writes_a_dataset_and_says_what_it_wrote(voted_campaign, tmp_path):
    campaign = voted_campaign(participants=4)
    target = tmp_path / "out"
    out, _ = run("--campaign", campaign.slug, "--format", "popalign-csv", "--criterion", "diversity", "--out", target)
    counts = json.loads((target / "manifest.json").read_text())["counts"]
    assert f"popalign-csv of {campaign.slug}: {counts['rows']['train']} train rows" in out
    assert f"from {counts['pairs']['kept']} of {counts['pairs']['judged']} judged pairs" in out
    assert str(target) in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--campaign", "nope", "--format", "votes-csv"], "no campaign with slug 'nope'"),
        (["--campaign", "study", "--format", "csv"], "invalid choice: 'csv'"),
        (["--campaign", "study", "--format", "popalign-csv", "--criterion", "beauty"], "unknown criterion 'beauty'"),
        (["--campaign", "study", "--format", "kto-csv"], "pass --criterion"),
    ],
)
def test_bad_input_is_a_command_error(arena_campaign, tmp_path, args, message):
    arena_campaign()
    with pytest.raises(CommandError, match=message):
        run(*args, "--out", str(tmp_path / "out"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--format", "votes-csv", "--ties", "soft", "--min-votes", "2"],
            "--ties, --min-votes does not apply to votes-csv",
        ),
        (
            ["--format", "popalign-csv", "--criterion", "diversity", "--ties", "soft"],
            "cannot express a tie: use --ties drop",
        ),
        (["--format", "population-jsonl", "--validation-fraction", "1"], "--validation-fraction must be at least 0"),
    ],
)
def test_a_refused_option_is_named_as_the_command_line_flag(arena_campaign, tmp_path, args, message):
    campaign = arena_campaign()
    with pytest.raises(CommandError, match=message):
        run("--campaign", campaign.slug, *args, "--out", str(tmp_path / "out"))


def test_a_non_empty_folder_needs_overwrite_and_no_votes_is_a_warning(arena_campaign, tmp_path):
    campaign = arena_campaign()
    target = tmp_path / "out"
    _, err = run("--campaign", campaign.slug, "--format", "population-jsonl", "--out", str(target))
    assert "has no votes yet" in err
    with pytest.raises(CommandError, match="not empty; pass --overwrite"):
        run("--campaign", campaign.slug, "--format", "votes-csv", "--out", str(target))
    run("--campaign", campaign.slug, "--format", "votes-csv", "--out", str(target), "--overwrite")
    assert (target / "votes.csv").exists()


def test_help_names_every_format():
    from django.core.management import load_command_class

    command = load_command_class("exports", "export_preferences")
    text = command.create_parser("manage.py", "export_preferences").format_help()
    for name in FORMATS:
        assert name in text
