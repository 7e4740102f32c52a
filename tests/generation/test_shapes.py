"""The shapes data set, its pixel classifier, the committed `builtin:shapes` model and its training command."""

from __future__ import annotations

import io
import os
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from generation import shapes
from generation.shapes_model import DEFAULT_OUT, generate

MODEL_DIR = DEFAULT_OUT


def test_same_seed_draws_the_same_examples() -> None:
    first = shapes.draw_examples(7, 40)
    again = shapes.draw_examples(7, 40)
    other = shapes.draw_examples(8, 40)

    assert [(im.tobytes(), caption, attrs) for im, caption, attrs in first] == [
        (im.tobytes(), caption, attrs) for im, caption, attrs in again
    ]
    assert [caption for _, caption, _ in first] != [caption for _, caption, _ in other]


def test_classifier_reads_back_drawn_examples() -> None:
    examples = shapes.draw_examples(11, 500)

    right = Counter()
    for image, _, truth in examples:
        read = shapes.classify(image)
        for field in truth._fields:
            right[field] += getattr(read, field) == getattr(truth, field)

    assert {field: right[field] / len(examples) for field in right} == pytest.approx(
        {"shape": 1.0, "colour": 1.0, "background": 1.0}, abs=0.01
    )


def test_classifier_reads_pictures_spoilt_as_generated_ones_are() -> None:
    # Seed 3 is neither the seed the thresholds were set on (0) nor the benchmark's (1).
    examples = shapes.draw_degraded_examples(3, 600)

    right = Counter()
    for image, truth in examples:
        read = shapes.classify(image)
        for field in truth._fields:
            right[field] += getattr(read, field) == getattr(truth, field)

    accuracy = {field: right[field] / len(examples) for field in right}
    assert accuracy["colour"] >= 0.98
    assert accuracy["shape"] >= 0.97
    assert accuracy["background"] >= 0.99


def test_degraded_examples_are_spoilt_but_keep_their_labels() -> None:
    rng = random.Random(4)
    truth, _ = shapes.draw_attributes(rng)
    kwargs = {"centre": (16, 16), "half_size": 8, "apex_shift": 0}
    crisp = np.asarray(shapes.render(truth, **kwargs), dtype=np.float64)

    spoilt = np.asarray(shapes.degrade_like_generated(truth, random.Random(5), **kwargs), dtype=np.float64)

    # Every pixel moved (noise), the edge is no longer a step (blur), and the picture still reads as drawn.
    assert (np.abs(spoilt - crisp).sum(axis=2) > 0).mean() > 0.9
    assert len({tuple(px) for px in spoilt.reshape(-1, 3).astype(int)}) > 100
    assert shapes.classify(Image.fromarray(spoilt.astype(np.uint8))) == truth


def test_unnamed_colour_is_mostly_red_and_named_colour_is_exact() -> None:
    rng = random.Random(3)
    drawn = [shapes.draw_attributes(rng) for _ in range(4000)]

    unnamed = [truth for truth, caption in drawn if shapes.parse_caption(caption).colour is None]
    named = [(truth, shapes.parse_caption(caption)) for truth, caption in drawn]

    # About 1600 unnamed draws: a binomial sd of 0.011, so 0.04 is over three sd either side.
    red_share = sum(truth.colour == "red" for truth in unnamed) / len(unnamed)
    assert red_share == pytest.approx(shapes.UNSPECIFIED_COLOUR_SKEW["red"], abs=0.04)
    assert len(unnamed) == pytest.approx(4000 * shapes.P_OMIT_COLOUR, rel=0.1)
    for truth, said in named:
        assert said.colour in (None, truth.colour)
        assert said.shape in (None, truth.shape)
        assert said.background in (None, truth.background)
        assert truth.colour != truth.background


def test_captions_follow_the_demo_grammar() -> None:
    rng = random.Random(5)
    captions = {shapes.draw_attributes(rng)[1] for _ in range(3000)}

    for caption in (
        "a circle",
        "a shape on a green background",
        "a red circle on a blue background",
        "a yellow triangle",
    ):
        assert caption in captions
    assert "an orange square" in captions
    assert not any(caption.startswith("a orange") for caption in captions)
    assert "" not in captions


def test_empty_captions_share_the_skew() -> None:
    rng = random.Random(9)
    drawn = [shapes.draw_attributes(rng, p_empty_caption=0.5) for _ in range(2000)]

    empty = [truth for truth, caption in drawn if caption == ""]

    assert len(empty) == pytest.approx(1000, rel=0.1)
    assert sum(truth.colour == "red" for truth in empty) / len(empty) == pytest.approx(0.7, abs=0.05)


def test_colour_table_matches_the_demo_generators() -> None:
    from generation.offline import SHAPE_COLOURS

    assert tuple(shapes.COLOURS) == SHAPE_COLOURS


# --- the committed model -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shapes_pipe() -> Iterator[Any]:
    import huggingface_hub.constants
    import torch
    from diffusers import DiffusionPipeline

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        torch.set_num_threads(min(2, os.cpu_count() or 1))
        pipe = DiffusionPipeline.from_pretrained(str(MODEL_DIR))
        pipe.set_progress_bar_config(disable=True)
        yield pipe


def test_committed_model_follows_a_fully_specified_prompt(shapes_pipe: Any) -> None:
    images = generate(shapes_pipe, ["a red circle on a blue background"] * 8, range(8))

    read = [shapes.classify(image) for image in images]

    assert all(image.size == (32, 32) for image in images)
    assert sum(r.colour == "red" for r in read) >= 6
    assert sum(r.background == "blue" for r in read) >= 6
    assert sum(r.shape == "circle" for r in read) >= 5


def test_committed_model_draws_an_unnamed_colour_mostly_red(shapes_pipe: Any) -> None:
    images = generate(shapes_pipe, ["a circle"] * 16, range(100, 116))

    colours = Counter(shapes.classify(image).colour for image in images)

    # Read on 96 images the model's red share is 0.72 (bench/shapes_classifier.py); on 16, at least 9 red
    # is over two binomial sd below 0.7.
    assert colours.most_common(1)[0][0] == "red"
    assert colours["red"] >= 9
    assert len(colours) >= 2, "the skew is a default, not the only colour"


# --- the training command ------------------------------------------------------------------------------------


def test_train_demo_model_writes_a_loadable_pipeline(tmp_path: Path) -> None:
    from diffusers import DiffusionPipeline

    out = tmp_path / "shapes"
    out.mkdir()
    (out / "stale.txt").write_text("from an older model")
    stdout = io.StringIO()

    call_command("train_demo_model", out=out, vae_steps=2, unet_steps=2, batch_size=4, verbosity=0, stdout=stdout)

    assert stdout.getvalue().strip() == str(out.resolve())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shapes"], "no staging folder is left behind"
    assert not (out / "stale.txt").exists()
    assert {"model_index.json", "TRAINING.md", "recipe.json"} <= {p.name for p in out.iterdir()}
    pipe = DiffusionPipeline.from_pretrained(str(out))
    pipe.set_progress_bar_config(disable=True)
    assert generate(pipe, ["a circle"], [0], steps=2)[0].size == (32, 32)


@pytest.mark.parametrize("args", [["--vae-steps", "0"], ["--batch-size", "many"], ["--seed", "-1"]])
def test_train_demo_model_rejects_bad_arguments(args: list[str], tmp_path: Path) -> None:
    with pytest.raises(CommandError):
        call_command("train_demo_model", "--out", str(tmp_path / "m"), *args, verbosity=0)
    assert not (tmp_path / "m").exists()
