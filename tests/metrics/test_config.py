"""Attribute configurations: every bad one refused naming its field, on its own and when a campaign is saved."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from annotation.models import Campaign
from metrics.config import ConfigError, parse_attributes
from tests.factories import CampaignFactory

COLOUR = {"backend": "shapes", "classes": ["red", "green", "blue"]}


def test_a_good_configuration_parses_with_a_uniform_target_by_default() -> None:
    (spec,) = parse_attributes({"colour": COLOUR})

    assert spec.backend == "shapes"
    assert spec.field == "colour"
    assert spec.classes == ("red", "green", "blue")
    assert spec.target == pytest.approx({"red": 1 / 3, "green": 1 / 3, "blue": 1 / 3})


def test_a_clip_attribute_keeps_its_model_template_and_threshold(tmp_path) -> None:
    (spec,) = parse_attributes(
        {
            "gender": {
                "backend": "clip",
                "model": "openai/clip-vit-large-patch14",
                "classes": ["a man", "a woman"],
                "template": "a photo of {}",
                "none_below": 18,
                "target": {"a man": 0.5, "a woman": 0.5},
            }
        }
    )

    assert (spec.model, spec.template, spec.none_below) == ("openai/clip-vit-large-patch14", "a photo of {}", 18.0)


def test_the_fingerprint_changes_with_anything_that_changes_results() -> None:
    base = parse_attributes({"colour": COLOUR})[0].key

    assert parse_attributes({"colour": COLOUR})[0].key == base
    assert parse_attributes({"colour": {**COLOUR, "classes": ["red", "blue", "green"]}})[0].key != base
    assert parse_attributes({"colour": {**COLOUR, "target": {"red": 0.5, "green": 0.25, "blue": 0.25}}})[0].key != base


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        ({"colour": {"backend": "dino", "classes": ["red", "blue"]}}, "colour.backend", "unknown backend"),
        ({"colour": {"backend": "shapes", "classes": []}}, "colour.classes", "non-empty"),
        ({"colour": {"backend": "shapes", "classes": ["red", "red"]}}, "colour.classes", "listed twice"),
        ({"colour": {"backend": "shapes", "classes": ["red"]}}, "colour.classes", "at least two"),
        ({"colour": {"backend": "shapes", "classes": ["red", "teal"]}}, "colour.classes", "'teal'"),
        ({"colour": {**COLOUR, "target": {"red": 0.5, "green": 0.3, "blue": 0.1}}}, "colour.target", "sum to 1"),
        ({"colour": {**COLOUR, "target": {"red": 0.5, "green": 0.5}}}, "colour.target", "missing"),
        ({"colour": {**COLOUR, "target": {"red": 1.0, "green": 0.0, "blue": 0.0}}}, "colour.target", "above 0"),
        ({"colour": {**COLOUR, "colours": 3}}, "colour.colours", "unknown setting"),
        ({"hue": {"backend": "shapes", "classes": ["red", "blue"]}}, "hue.field", "shapes backend reads"),
        ({"gender": {"backend": "clip", "classes": ["a man", "a woman"]}}, "gender.model", "needs a model"),
        (
            {"gender": {"backend": "clip", "model": "/no/such/clip", "classes": ["a man", "a woman"]}},
            "gender.model",
            "no such folder",
        ),
        (
            {"gender": {"backend": "clip", "model": "o/m", "classes": ["a", "b"], "template": "a photo"}},
            "gender.template",
            "{}",
        ),
        (
            {"gender": {"backend": "clip", "model": "o/m", "classes": ["a", "b"], "none_below": "high"}},
            "gender.none_below",
            "number",
        ),
        (["colour"], "attributes", "object"),
    ],
)
def test_bad_configurations_are_refused_naming_the_field(raw: object, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_attributes(raw)

    assert caught.value.field == field
    assert words in str(caught.value)


@pytest.mark.django_db
def test_a_campaign_with_a_bad_configuration_is_not_saved_and_the_error_names_the_field() -> None:
    campaign = CampaignFactory(metrics_attributes={"colour": COLOUR})

    campaign.metrics_attributes = {"colour": {"backend": "shapes", "classes": ["red", "red"]}}
    with pytest.raises(ValidationError) as caught:
        campaign.save()

    assert "colour.classes" in str(caught.value.message_dict["metrics_attributes"])
    campaign.refresh_from_db()
    assert campaign.metrics_attributes == {"colour": COLOUR}, "the stored configuration is unchanged"
    with pytest.raises(ValidationError):
        CampaignFactory(slug="other", metrics_attributes={"x": {"backend": "nope", "classes": ["a", "b"]}})
    assert not Campaign.objects.filter(slug="other").exists()


@pytest.mark.django_db
def test_a_campaign_whose_clip_folder_moved_can_still_be_paused(tmp_path) -> None:
    folder = tmp_path / "clip"
    folder.mkdir()
    campaign = CampaignFactory(
        metrics_attributes={"gender": {"backend": "clip", "model": str(folder), "classes": ["a man", "a woman"]}}
    )
    folder.rmdir()

    campaign.status = Campaign.Status.PAUSED
    campaign.save(update_fields=["status"])

    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED
    with pytest.raises(ValidationError, match="not a model this server offers"):
        campaign.save()
