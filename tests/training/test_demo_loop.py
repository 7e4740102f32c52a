"""demo_loop: the whole loop on the demo's shapes models, shortened, from an empty database to the figure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from annotation.models import Campaign
from arena.models import Vote
from arena.selectors import get_leaderboard
from generation.models import Generator
from training.demo_loop import PRESERVED
from training.models import TrainingRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_the_loop_votes_trains_puts_the_model_in_the_arena_and_measures_it(tmp_path, settings):
    settings.VAR_DIR = tmp_path / "var"
    docs = tmp_path / "docs"

    call_command(
        "demo_loop", "--comparisons", "12", "--steps", "3", "--eval-seeds", "2", "--docs", str(docs),
    )  # fmt: skip

    campaign = Campaign.objects.get(slug="popalign-loop")
    tuned = Generator.objects.get(name="base-popalign")
    assert campaign.generators.filter(pk=tuned.pk).exists()
    assert TrainingRun.objects.get(generator=tuned).steps == 3
    assert tuned.populations.filter(status="ready").exists()  # generated after it joined the arena
    simulated = Vote.objects.filter(comparison__campaign=campaign, comparison__participant__kind="simulated")
    assert simulated.count() >= 12 * campaign.criteria.count()
    # The simulated crowd trained the model but ranks nothing: the human leaderboard has no votes.
    assert get_leaderboard(campaign=campaign, criterion="diversity")["votes"] == 0
    # train_generator's evaluation held base and the tuned model to the captions that name a colour.
    trained = json.loads((Path(settings.TRAINED_MODELS_DIR) / "base-popalign" / "training.json").read_text())
    assert set(PRESERVED) <= set(trained["evaluation"]["captions"])
    assert trained["evaluation"]["samples_per_caption"] == 2
    assert "colour" in trained["evaluation"]["tuned"]["faithfulness_by_attribute"]
    record = json.loads((docs / "bias-loop.json").read_text())
    assert set(record["results"]) == {"base", "diverse-prompting", "base-popalign"}
    assert (docs / "bias-loop.svg").read_text().startswith("<svg")

    # A second run is a run of its own: a new campaign and a new model name, nothing mixed in.
    call_command("demo_loop", "--comparisons", "4", "--steps", "1", "--eval-seeds", "2", "--docs", str(docs))
    assert Campaign.objects.filter(slug="popalign-loop-2").exists()
    assert Generator.objects.filter(name="base-popalign-2").exists()


def test_bad_loop_options_are_refused(db):
    with pytest.raises(CommandError, match="--comparisons must be at least 1"):
        call_command("demo_loop", "--comparisons", "0")
    with pytest.raises(CommandError, match="--eval-seeds must be at least 2"):
        call_command("demo_loop", "--eval-seeds", "1")
    assert not Campaign.objects.exists()
