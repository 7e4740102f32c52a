"""A simulated crowd's votes reach an export only with --include-simulated, and the manifest says so and adds up."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from arena.models import Comparison, Vote
from arena.simulation import plan_simulation, simulate_votes
from exports.services import ExportError
from tests.arena.simulated import measured_campaign
from tests.exports.conftest import vote_all
from tests.exports.helpers import export

pytestmark = pytest.mark.django_db


@pytest.fixture
def mixed(db):  # type: ignore[no-untyped-def]
    """A measured campaign with people's votes (one of them a gold check) and a simulated crowd's."""
    campaign = measured_campaign(prompts=2, per_queue=3, votes_per_pair=4)
    vote_all(campaign, participants=4, per_participant=3)
    first = Comparison.objects.filter(campaign=campaign, status="voted").order_by("pk").first()
    Comparison.objects.filter(pk=first.pk).update(is_gold=True)
    plan = plan_simulation(
        campaign_slug=campaign.slug, criterion="diversity", judge="discrepancy:colour", comparisons=8, seed=2
    )
    assert simulate_votes(plan=plan).voted == 8
    return campaign


def test_pair_formats_leave_simulated_votes_out_unless_asked(mixed, tmp_path):
    simulated = Vote.objects.simulated().filter(comparison__campaign=mixed).count()
    counted = Vote.objects.counted().filter(comparison__campaign=mixed).count()
    assert simulated == 16
    assert counted > 0

    default = export(mixed, "population-jsonl", tmp_path / "people", copy_images=False).manifest
    assert default["filters"]["include_simulated"] is False
    assert default["counts"]["votes"]["simulated_excluded"] == simulated
    assert default["counts"]["votes"]["read"] == counted
    lines = [json.loads(line) for line in (tmp_path / "people" / "population.jsonl").read_text().splitlines()]
    assert sum(line["votes"]["total"] for line in lines) == counted

    both = export(mixed, "population-jsonl", tmp_path / "all", copy_images=False, include_simulated=True).manifest
    assert both["filters"]["include_simulated"] is True
    assert both["counts"]["votes"]["simulated_included"] == simulated
    assert both["counts"]["votes"]["read"] == counted + simulated
    lines = [json.loads(line) for line in (tmp_path / "all" / "population.jsonl").read_text().splitlines()]
    assert sum(line["votes"]["total"] for line in lines) == counted + simulated


def test_the_vote_log_holds_simulated_votes_only_when_asked(mixed, tmp_path):
    everyone = Vote.objects.filter(comparison__campaign=mixed).count()
    simulated = Vote.objects.simulated().filter(comparison__campaign=mixed).count()

    export(mixed, "votes-csv", tmp_path / "people")
    log = pd.read_csv(tmp_path / "people" / "votes.csv")
    assert len(log) == everyone - simulated
    assert "simulated" not in set(log["participant_kind"])

    result = export(mixed, "votes-csv", tmp_path / "all", include_simulated=True)
    log = pd.read_csv(tmp_path / "all" / "votes.csv")
    assert len(log) == everyone
    assert (log["participant_kind"] == "simulated").sum() == simulated
    assert result.manifest["counts"]["votes"]["simulated_included"] == simulated


@pytest.mark.parametrize("include", [False, True])
@pytest.mark.parametrize("fmt", ["population-jsonl", "popalign-csv", "votes-csv"])
def test_manifest_counts_add_up_with_a_simulated_crowd(mixed, tmp_path, fmt, include):
    one = {"criterion": "diversity"} if fmt == "popalign-csv" else {}
    votes = Vote.objects.filter(comparison__campaign=mixed)
    if one:
        votes = votes.filter(criterion__key="diversity")

    counts = export(mixed, fmt, tmp_path / fmt, include_simulated=include, **one).manifest["counts"]["votes"]

    parts = {k: v for k, v in counts.items() if k not in ("on_exported_criteria", "read")}
    assert counts["on_exported_criteria"] == sum(parts.values()) == votes.count(), counts
    key = "simulated_included" if include else "simulated_excluded"
    assert counts[key] == votes.filter(comparison__participant__kind="simulated").count() > 0
    if "read" in counts:
        assert counts["read"] == counts["counted"] + (counts[key] if include else 0)


def test_the_leaderboard_export_refuses_simulated_votes(mixed, tmp_path):
    with pytest.raises(ExportError, match="ranks people's votes only"):
        export(mixed, "leaderboard-csv", tmp_path / "board", include_simulated=True)
    assert not (tmp_path / "board").exists()


def test_the_command_takes_include_simulated_and_the_manifest_records_it(mixed, tmp_path):
    out = tmp_path / "popalign"
    call_command(
        "export_preferences",
        "--campaign", mixed.slug, "--format", "popalign-csv", "--criterion", "diversity", "--out", str(out),
        "--include-simulated", "--no-progress",
        stdout=io.StringIO(), stderr=io.StringIO(),
    )  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["filters"]["include_simulated"] is True
    assert manifest["counts"]["votes"]["simulated_included"] == 8
    assert "simulated crowd" in (out / "README.md").read_text()

    with pytest.raises(CommandError, match="--include-simulated does not apply"):
        call_command(
            "export_preferences",
            "--campaign", mixed.slug, "--format", "leaderboard-csv", "--out", str(tmp_path / "board"),
            "--include-simulated",
            stdout=io.StringIO(), stderr=io.StringIO(),
        )  # fmt: skip
