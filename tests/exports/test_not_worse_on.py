"""`--not-worse-on`: a pair is kept only where its winner did not also lose on another criterion."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from annotation.models import Participant
from arena.issuing import NothingReady, issue_comparison
from arena.voting import VoteInput, cast_votes
from exports.services import ExportError
from tests.exports.helpers import db_pairs, db_winner, export

pytestmark = pytest.mark.django_db


def kept_pairs(folder) -> set[str]:  # type: ignore[no-untyped-def]
    lines = (folder / "population.jsonl").read_text().splitlines()
    return {json.loads(line)["pair_id"] for line in lines}


def pair_id(criterion: str, pair: frozenset[int]) -> str:
    low, high = sorted(pair)
    return f"{criterion}:{low}-{high}"


def test_a_winner_that_lost_on_the_other_criterion_is_dropped_and_counted(voted_campaign, tmp_path):
    campaign = voted_campaign(participants=16, per_participant=5)
    # Recount from the database: decided diversity pairs, and those whose winner lost on quality.
    counts = db_pairs(campaign)
    decided = {pair for (key, pair), c in counts.items() if key == "diversity" and db_winner(c, pair) is not None}
    worse = set()
    for pair in decided:
        winner = db_winner(counts[("diversity", pair)], pair)
        loser = next(iter(pair - {winner}))
        quality = counts.get(("quality", pair))
        if quality is not None and quality[loser] > quality[winner]:
            worse.add(pair)
    assert worse, "the campaign has pairs whose winner lost on quality"
    assert decided - worse, "and pairs whose winner did not"

    everything = export(campaign, "population-jsonl", tmp_path / "all", criterion="diversity", copy_images=False)
    guarded = export(
        campaign,
        "population-jsonl",
        tmp_path / "guarded",
        criterion="diversity",
        copy_images=False,
        not_worse_on=("quality",),
    )

    assert kept_pairs(tmp_path / "all") == {pair_id("diversity", p) for p in decided}
    assert kept_pairs(tmp_path / "guarded") == {pair_id("diversity", p) for p in decided - worse}
    pairs = guarded.manifest["counts"]["pairs"]
    assert pairs["dropped"]["worse_on_quality"] == len(worse)
    assert pairs["dropped"]["tie"] == everything.manifest["counts"]["pairs"]["dropped"]["tie"]
    assert pairs["judged"] == everything.manifest["counts"]["pairs"]["judged"], "guard pairs are not exported pairs"
    assert guarded.manifest["counts"]["votes"]["read"] == everything.manifest["counts"]["votes"]["read"]
    assert guarded.manifest["filters"]["not_worse_on"] == ["quality"]
    card = (tmp_path / "guarded" / "README.md").read_text()
    assert "not_worse_on" in card
    assert "worse_on_quality" in card


def test_the_command_takes_the_flag_and_says_what_it_dropped(voted_campaign, tmp_path):
    campaign = voted_campaign(participants=16, per_participant=5)
    out = io.StringIO()
    call_command(
        "export_preferences",
        "--campaign", campaign.slug, "--format", "popalign-csv", "--criterion", "diversity",
        "--not-worse-on", "quality", "--out", str(tmp_path / "csv"), "--no-progress",
        stdout=out, stderr=io.StringIO(),
    )  # fmt: skip
    manifest = json.loads((tmp_path / "csv" / "manifest.json").read_text())
    dropped = manifest["counts"]["pairs"]["dropped"]["worse_on_quality"]
    assert dropped > 0
    assert f"{dropped} worse_on_quality" in out.getvalue()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"not_worse_on": ("beauty",)}, "--not-worse-on: unknown criterion 'beauty'"),
        ({"not_worse_on": ("diversity",)}, "--not-worse-on diversity names the exported criterion itself"),
        ({"not_worse_on": ("quality", "quality")}, "--not-worse-on names 'quality' twice"),
        ({"format": "votes-csv", "criterion": None}, "--not-worse-on does not apply to votes-csv"),
    ],
)
def test_bad_guards_are_refused_naming_the_flag(voted_campaign, tmp_path, options, message):
    campaign = voted_campaign(participants=2, per_participant=2)
    args = {"format": "popalign-csv", "criterion": "diversity", "not_worse_on": ("quality",), **options}
    flags = ["--campaign", campaign.slug, "--format", args["format"], "--out", str(tmp_path / "x"), "--no-progress"]
    if args["criterion"]:
        flags += ["--criterion", args["criterion"]]
    for key in args["not_worse_on"]:
        flags += ["--not-worse-on", key]
    with pytest.raises(CommandError, match=message):
        call_command("export_preferences", *flags, stdout=io.StringIO(), stderr=io.StringIO())
    assert not (tmp_path / "x").exists()
    with pytest.raises(ExportError):
        export(campaign, args["format"], tmp_path / "y", criterion=args["criterion"], not_worse_on=args["not_worse_on"])


def test_a_guard_that_leaves_nothing_is_refused_naming_it(arena_campaign, tmp_path):
    # Given a crowd that always prefers the left set on diversity and the right one on quality: in every
    # pair of sets, the one shown on the left more often wins diversity and loses quality.
    campaign = arena_campaign(generators=3, prompts=2, votes_per_pair=3)
    for _ in range(12):
        voter = Participant.objects.create()
        for _ in range(4):
            try:
                comparison = issue_comparison(campaign=campaign, participant=voter)
            except NothingReady:
                break
            votes = [VoteInput("diversity", "left"), VoteInput("quality", "right")]
            cast_votes(token=comparison.token, participant=voter, votes=votes, dwell_ms=2000)
    counts = db_pairs(campaign)
    decided = [pair for (key, pair), c in counts.items() if key == "diversity" and db_winner(c, pair) is not None]
    assert decided
    assert all(
        db_winner(counts[("quality", p)], p) not in (None, db_winner(counts[("diversity", p)], p)) for p in decided
    )
    # Without the guard the pairs export; with it, the command refuses, naming the flag, and writes nothing
    export(campaign, "popalign-csv", tmp_path / "plain", criterion="diversity")
    with pytest.raises(CommandError, match="--not-worse-on quality leaves nothing to export"):
        call_command(
            "export_preferences",
            "--campaign", campaign.slug, "--format", "popalign-csv", "--criterion", "diversity",
            "--not-worse-on", "quality", "--out", str(tmp_path / "guarded"), "--no-progress",
            stdout=io.StringIO(), stderr=io.StringIO(),
        )  # fmt: skip
    assert not (tmp_path / "guarded").exists()
