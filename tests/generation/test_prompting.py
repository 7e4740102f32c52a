"""Prompt augmentation inserts open attributes, keeps named ones, and is reproducible."""

from __future__ import annotations

from collections import Counter

from generation.prompting import augment_caption, generation_prompt, names_attribute

COLOURS = {"colour": ["red", "orange", "blue", "green"]}


def test_open_colour_is_inserted_after_the_article_with_the_right_article():
    prompts = {augment_caption("a circle", COLOURS, seed) for seed in range(200)}
    assert prompts == {"a red circle", "an orange circle", "a blue circle", "a green circle"}


def test_draws_are_roughly_uniform_and_reproducible_from_the_seed():
    counts = Counter(augment_caption("a shape on a green background", COLOURS, seed) for seed in range(4000))
    assert all(900 < n < 1100 for n in counts.values()), counts
    assert augment_caption("a circle", COLOURS, 7) == augment_caption("a circle", COLOURS, 7)


def test_a_caption_that_names_the_attribute_is_kept():
    assert augment_caption("a red shape", COLOURS, 3) == "a red shape"
    # Only the leading noun phrase counts: the background's colour is not the shape's.
    assert (
        augment_caption("a shape on a green background", {"colour": ["red"]}, 1) == "a red shape on a green background"
    )


def test_an_attribute_is_named_in_the_leading_noun_phrase_or_right_before_its_own_name():
    colours = COLOURS["colour"]
    assert names_attribute("a red circle on a blue background", "colour", colours)
    assert names_attribute("A Blue shape", "colour", colours)
    assert not names_attribute("a shape on a green background", "colour", colours)
    assert names_attribute("a shape on a green background", "background", colours)
    assert not names_attribute("a circle", "background", colours)
    assert not names_attribute("a reddish circle", "colour", colours), "whole words only"
    # Augmentation follows the same rule: a background named after the shape is not drawn again.
    assert augment_caption("a shape on a green background", {"background": ["red", "green"]}, 0) == (
        "a shape on a green background"
    )


def test_single_value_pins_the_attribute_and_template_wraps_the_result():
    text = generation_prompt("a doctor", template="a realistic photo of {prompt}", augment={"g": ["female"]}, seed=0)
    assert text == "a realistic photo of a female doctor"
    assert generation_prompt("doctors", template="{prompt}", augment={"g": ["female"]}, seed=0) == "female doctors"
    assert generation_prompt("a doctor", template="{prompt}", augment=None, seed=0) == "a doctor"
