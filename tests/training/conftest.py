"""Training fixtures: a tiny random-weight base generator at 32x32, and exports made by hand or by the exporter."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from generation import shapes
from generation.models import Generator
from tests.arena.conftest import arena_campaign  # noqa: F401 (the fixtures, shared)
from tests.exports.conftest import exports_root, voted_campaign  # noqa: F401

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SIZE = 32
TINY_SETTINGS = {"steps": 2, "guidance_scale": 0.0, "width": SIZE, "height": SIZE, "init_seed": 3}


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built-in pipelines are built once per session and loaded through from_pretrained from here."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(autouse=True)
def _training_folders(settings, tmp_path, model_cache):  # type: ignore[no-untyped-def]
    settings.POPARENA_MODEL_CACHE = model_cache
    settings.TRAINED_MODELS_DIR = tmp_path / "trained"


@pytest.fixture
def tiny_base(db) -> Generator:
    return Generator.objects.create(name="tiny-base", source="builtin:tiny-random", settings=TINY_SETTINGS)


def picture(colour: str, seed: int, size: int = SIZE) -> bytes:
    """A circle of `colour` on white as the shapes data set draws them, placed and sized by `seed`."""
    rng = random.Random(seed)
    half = rng.randint(6, 10)
    centre = (rng.randint(half, SIZE - half), rng.randint(half, SIZE - half))
    image = shapes.render(shapes.Attributes("circle", colour, "white"), centre=centre, half_size=half)
    if size != SIZE:
        image = image.resize((size, size))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


WriteExport = Callable[..., Path]


@pytest.fixture
def popalign_export(tmp_path) -> WriteExport:
    """Write a popalign-csv export: `pairs` population pairs of `n` blue (winning) and `n` red (losing) circles."""

    def write(
        *, pairs: int = 3, n: int = 4, loser_n: int | None = None, size: int = SIZE, caption: str = "a circle"
    ) -> Path:
        folder = tmp_path / f"export-{pairs}-{n}-{loser_n}-{size}"
        (folder / "images").mkdir(parents=True)
        rows = []
        for pair in range(pairs):
            names = {}
            for side, colour, count in (("w", "blue", n), ("l", "red", loser_n or n)):
                names[side] = []
                for i in range(count):
                    data = picture(colour, seed=pair * 1000 + (side == "l") * 100 + i, size=size)
                    name = f"images/{hashlib.sha256(data).hexdigest()}.png"
                    (folder / name).write_bytes(data)
                    names[side].append(name)
            for w, lo in zip(names["w"], names["l"], strict=False):
                rows.append((w, lo, caption, 0, f"c{pair}", f"{pair}1", f"{pair}2"))
            if loser_n and loser_n > n:
                rows.append((names["w"][0], names["l"][-1], caption, 0, f"c{pair}", f"{pair}1", f"{pair}2"))
        with open(folder / "train.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(
                ["jpg_0", "jpg_1", "caption", "label", "comparison_id", "population_w_id", "population_l_id"]
            )
            writer.writerows(rows)
        (folder / "manifest.json").write_text(json.dumps({"format": "popalign-csv"}))
        return folder

    return write
