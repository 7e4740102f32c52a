"""After training: base and tuned sampled on the held-out captions, read by the campaign's backends, reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from generation import shapes
from generation.pipelines import PipelineSpec, generate, load_pipeline
from tests.factories import CampaignFactory, PromptFactory
from tests.training.conftest import TINY_SETTINGS
from training import evaluation

pytestmark = pytest.mark.django_db

COLOUR = {"colour": {"backend": "shapes", "classes": list(shapes.COLOURS)}}


def campaign_export(popalign_export, captions: list[str], metrics: dict | None = COLOUR) -> Path:  # type: ignore[no-untyped-def]
    """An export captioned "a circle" of a campaign that also asks for `captions`."""
    campaign = CampaignFactory(slug="shapes", metrics_attributes=metrics or {})
    campaign.prompts.set([PromptFactory(caption=c) for c in ["a circle", *captions]])
    export = popalign_export()
    (export / "manifest.json").write_text(json.dumps({"format": "popalign-csv", "campaign": {"slug": "shapes"}}))
    return export


def train(export: Path, *extra: str) -> None:
    call_command(
        "train_generator", "--export", str(export), "--objective", "popalign", "--base", "tiny-base", "--name",
        "tuned", "--steps", "1", "--batch", "2", "--no-progress", *extra,
    )  # fmt: skip


def record() -> dict:
    return json.loads((Path(settings.TRAINED_MODELS_DIR) / "tuned" / "training.json").read_text())


def test_base_and_tuned_are_read_on_the_captions_training_held_out(tiny_base, popalign_export, capsys):
    export = campaign_export(popalign_export, ["a red circle", "a blue square"])

    train(export, "--eval-samples", "3")

    found = record()["evaluation"]
    assert found["captions"] == ["a blue square", "a red circle"]
    assert found["samples_per_caption"] == 3
    assert found["base"]["images"] == found["tuned"]["images"] == 6
    assert set(found["base"]["faithfulness_by_attribute"]) == {"colour"}
    # Recounted here: the base sampled on the same seeds and read by the shapes reader.
    spec = PipelineSpec.from_settings(tiny_base.source, TINY_SETTINGS)
    pipe = load_pipeline(spec, device="cpu", cache_dir=Path(settings.POPARENA_MODEL_CACHE))
    per_draw = []
    for draw in evaluation.draws(3):
        seeds = [evaluation.image_seed(draw, i, 2) for i in range(2)]
        images = generate(pipe, spec, ["a blue square", "a red circle"], seeds)
        read = [shapes.classify(image.image).colour for image in images]
        per_draw.append(((read[0] == "blue") + (read[1] == "red")) / 2)
    assert found["base"]["faithfulness_by_attribute"]["colour"]["value"] == pytest.approx(sum(per_draw) / 3, abs=1e-4)
    # and it is printed, base -> tuned.
    out = capsys.readouterr().out
    assert "Base and tuned on 2 held-out caption(s), 3 samples each" in out
    assert "colour faithfulness" in out


def test_a_fall_in_faithfulness_is_a_warning(tiny_base, popalign_export, capsys, monkeypatch):
    export = campaign_export(popalign_export, ["a red circle"])
    monkeypatch.setattr(evaluation, "faithfulness_drops", lambda base, tuned: [("colour faithfulness", 0.95, 0.85)])

    train(export, "--eval-samples", "2")

    err = capsys.readouterr().err
    assert "WARNING: colour faithfulness fell by 10.0 points on the held-out captions (0.950 -> 0.850)." in err
    assert record()["evaluation"]["warnings"] == [
        "colour faithfulness fell by 10.0 points on the held-out captions (0.950 -> 0.850)"
    ]


@pytest.mark.parametrize(
    ("captions", "metrics", "reason"),
    [
        ([], COLOUR, "no held-out captions"),
        (["a red circle"], None, "campaign 'shapes' measures no attributes"),
    ],
)
def test_without_held_out_captions_or_attributes_the_record_says_why(
    tiny_base, popalign_export, capsys, captions, metrics, reason
):
    train(campaign_export(popalign_export, captions, metrics))

    assert reason in record()["evaluation"]["skipped"]
    assert f"No evaluation: {reason}" in capsys.readouterr().out


def test_an_export_of_no_campaign_here_is_trained_and_says_it_was_not_evaluated(tiny_base, popalign_export):
    train(popalign_export(), "--preserve", "a red circle")
    assert "the export's campaign is not in this database" in record()["evaluation"]["skipped"]


def test_one_sample_per_caption_is_refused(tiny_base, popalign_export):
    with pytest.raises(CommandError, match="--eval-samples must be 0 .no evaluation. or at least 2"):
        train(popalign_export(), "--eval-samples", "1")
