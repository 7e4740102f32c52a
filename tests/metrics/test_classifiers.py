"""The backends: the shapes reader, and zero-shot CLIP through a tiny random-weight model loaded from a folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from generation import shapes
from metrics.classifiers import BackendError, ClipBackend, ShapesBackend, load_backend
from metrics.config import parse_attributes
from tests.metrics.conftest import drawn


def test_shapes_backend_reads_the_configured_field_and_leaves_classes_outside_the_list_unlabelled() -> None:
    backend = ShapesBackend()
    (colour,) = parse_attributes({"colour": {"backend": "shapes", "classes": ["red", "blue"]}})
    (background,) = parse_attributes({"bg": {"backend": "shapes", "field": "background", "classes": ["grey", "white"]}})
    pictures = [drawn("red"), drawn("blue", "white"), drawn("green")]

    assert backend.labels(pictures, colour) == ["red", "blue", None]
    assert backend.labels(pictures, background) == ["grey", "white", "grey"]


def test_shapes_backend_reads_degraded_pictures_as_drawn() -> None:
    examples = shapes.draw_degraded_examples(21, 200)
    (colour,) = parse_attributes({"colour": {"backend": "shapes", "classes": list(shapes.COLOURS)}})

    read = ShapesBackend().labels([image for image, _ in examples], colour)

    assert sum(r == truth.colour for r, (_, truth) in zip(read, examples, strict=True)) >= 196


def test_shapes_faithfulness_is_the_share_matching_what_the_caption_names() -> None:
    backend = ShapesBackend()
    pictures = [drawn("red", "blue"), drawn("red", "grey"), drawn("green", "blue"), drawn("red", "blue", "square")]

    assert backend.faithfulness(pictures, "a red circle on a blue background") == pytest.approx(0.25)
    assert backend.faithfulness(pictures, "a red shape") == pytest.approx(0.75)
    assert backend.faithfulness(pictures, "a shape") is None, "a caption that names nothing cannot be followed"


def test_shapes_diversity_feature_tells_pictures_apart() -> None:
    from metrics.measures import vendi_score

    backend = ShapesBackend()
    same = backend.embed([drawn("red")] * 4)
    varied = backend.embed([drawn("red"), drawn("blue", "white"), drawn("green", "black", "square"), drawn("yellow")])

    assert vendi_score(same) == pytest.approx(1.0)
    assert vendi_score(varied) > 2.0


def test_tiny_clip_loads_from_its_folder_and_labels_every_image_with_a_class(tiny_clip: Path) -> None:
    backend = ClipBackend(str(tiny_clip))
    (spec,) = parse_attributes(
        {
            "gender": {
                "backend": "clip",
                "model": str(tiny_clip),
                "classes": ["a man", "a woman"],
                "template": "a photo of {}",
            }
        }
    )
    pictures = [drawn("red"), drawn("blue", "white"), drawn("green", "black")]

    labels = backend.labels(pictures, spec)
    embeddings = backend.embed(pictures)
    score = backend.clip_score(pictures, "a red circle")

    assert len(labels) == 3
    assert set(labels) <= {"a man", "a woman"}
    assert embeddings.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)
    assert score is not None
    assert 0.0 <= score <= 100.0
    # The same images read the same way twice: the loaded model is deterministic.
    assert backend.labels(pictures, spec) == labels


def test_clip_none_below_leaves_images_with_no_good_match_unlabelled(tiny_clip: Path) -> None:
    backend = ClipBackend(str(tiny_clip))
    pictures = [drawn("red"), drawn("blue", "white")]
    base = {"backend": "clip", "model": str(tiny_clip), "classes": ["a man", "a woman"]}
    (loose,) = parse_attributes({"gender": {**base, "none_below": 0}})
    (strict,) = parse_attributes({"gender": {**base, "none_below": 100}})
    scores = 100 * backend.image_embeddings(pictures) @ backend.text_embeddings(["a man", "a woman"]).T

    assert backend.labels(pictures, strict) == [None, None], "no CLIP score reaches 100"
    expected = [None if row.max() < 0 else ["a man", "a woman"][int(row.argmax())] for row in scores]
    assert backend.labels(pictures, loose) == expected


def test_a_clip_folder_that_is_not_a_model_is_refused_with_its_name(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()

    with pytest.raises(BackendError, match="empty"):
        ClipBackend(str(tmp_path / "empty"))
    with pytest.raises(BackendError, match="no such folder"):
        ClipBackend(str(tmp_path / "missing"))


def test_backends_stay_resident() -> None:
    assert load_backend("shapes") is load_backend("shapes")
    with pytest.raises(BackendError, match="unknown backend"):
        load_backend("dino")
