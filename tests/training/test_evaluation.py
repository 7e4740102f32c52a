"""Faithfulness per attribute and attribute shares from samples, against counts made by hand."""

from __future__ import annotations

import pytest

from metrics.config import parse_attributes
from training import evaluation
from training.evaluation import Estimate, Evaluation, Sample

COLOUR, BACKGROUND = parse_attributes(
    {
        "colour": {"backend": "shapes", "classes": ["red", "blue", "yellow"]},
        "background": {"backend": "shapes", "classes": ["white", "yellow"]},
    }
)


def read_as(reading: dict[str, dict[tuple[str, int], str | None]]):  # type: ignore[no-untyped-def]
    """A labeller that reads each (caption, draw) picture as the table says; pictures are their own keys."""

    def labels(spec, images):  # type: ignore[no-untyped-def]
        return [reading[spec.name].get(image) for image in images]

    return labels


def test_faithfulness_counts_the_named_captions_and_shares_the_open_ones():
    # Given two draws of three captions: one names the colour red, one leaves the colour open,
    # and "a yellow triangle" names its colour (not its background, by the shapes grammar).
    captions = ("a red circle", "a circle", "a yellow triangle")
    samples = [Sample(c, d, (c, d)) for d in (0, 1) for c in captions]  # type: ignore[arg-type]
    colour = {
        ("a red circle", 0): "red", ("a circle", 0): "red", ("a yellow triangle", 0): "yellow",
        ("a red circle", 1): "blue", ("a circle", 1): "blue", ("a yellow triangle", 1): "yellow",
    }  # fmt: skip
    background = {(c, d): "white" for c in captions for d in (0, 1)}

    found = evaluation.evaluate(samples, [COLOUR, BACKGROUND], read_as({"colour": colour, "background": background}))

    # Colour faithfulness per draw: draw 0 both named colours read right (1.0), draw 1 one of two (0.5).
    assert found.faithfulness_by_attribute["colour"].value == pytest.approx(0.75)
    # No caption names a background, so there is no background faithfulness, and the pooled figure is colour's.
    assert "background" not in found.faithfulness_by_attribute
    assert found.faithfulness is not None
    assert found.faithfulness.value == pytest.approx(0.75)
    # Red share where the colour is open ("a circle" only): draw 0 red, draw 1 blue.
    assert found.shares["colour"]["red"].value == pytest.approx(0.5)
    assert found.shares["colour"]["blue"].value == pytest.approx(0.5)
    assert found.shares["colour"]["yellow"].value == 0.0
    assert found.counts["colour"] == {"red": 1, "blue": 1}
    # The background is open on "a red circle" and "a circle"; "a yellow triangle" names yellow in its leading
    # phrase, which the metrics' open rule (names_attribute) takes as naming the background too: left out.
    assert found.shares["background"]["white"].value == 1.0
    assert found.counts["background"] == {"white": 4}
    assert found.images == 6
    # Two draws of 1.0 and 0.5: the bootstrap's interval spans exactly those two.
    assert (found.faithfulness_by_attribute["colour"].low, found.faithfulness_by_attribute["colour"].high) == (
        0.5,
        1.0,
    )


def test_a_background_named_after_its_noun_counts_for_background_faithfulness():
    samples = [Sample("a shape on a yellow background", d, d) for d in range(4)]  # type: ignore[arg-type]
    reading = {"background": {0: "yellow", 1: "yellow", 2: "white", 3: "yellow"}, "colour": {}}

    found = evaluation.evaluate(samples, [COLOUR, BACKGROUND], read_as(reading))

    assert found.faithfulness_by_attribute["background"].value == pytest.approx(0.75)
    assert "background" not in found.shares
    # The colour is open there: none of the four was read as a colour of the three.
    assert found.shares["colour"]["red"].value == 0.0
    assert found.counts["colour"] == {"None": 4}


def test_the_clip_score_is_averaged_per_draw():
    samples = [Sample(c, d, (c, d)) for d in (0, 1) for c in ("a cat", "a dog")]  # type: ignore[arg-type]
    scores = {("a cat", 0): 30.0, ("a dog", 0): 20.0, ("a cat", 1): 10.0, ("a dog", 1): None}

    found = evaluation.evaluate(samples, [], read_as({}), clip_score=lambda image, caption: scores[image])

    assert found.clip_score is not None
    assert found.clip_score.value == pytest.approx((25.0 + 10.0) / 2)
    assert found.faithfulness is None


def estimate(value: float) -> Estimate:
    return Estimate(value, value - 0.01, value + 0.01)


def report(faithfulness: float, colour: float) -> Evaluation:
    return Evaluation(
        images=10,
        faithfulness=estimate(faithfulness),
        faithfulness_by_attribute={"colour": estimate(colour)},
        shares={},
        counts={},
    )


def test_a_fall_of_more_than_five_points_is_reported_and_a_smaller_one_is_not():
    base = report(0.90, 0.95)
    assert evaluation.faithfulness_drops(base, report(0.86, 0.95)) == []
    assert evaluation.faithfulness_drops(base, report(0.91, 0.89)) == [("colour faithfulness", 0.95, 0.89)]
    drops = evaluation.faithfulness_drops(base, report(0.80, 0.95))
    assert drops == [("faithfulness", 0.90, 0.80)]


def test_an_image_seed_is_distinct_for_every_image_of_every_draw():
    seeds = {evaluation.image_seed(d, i, 5) for d in evaluation.draws(4) for i in range(5)}
    assert len(seeds) == 20
