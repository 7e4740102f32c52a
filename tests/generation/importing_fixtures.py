"""Import layouts built the way their tools write them: ImageFolder files, Parquet, a datasets save_to_disk folder."""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

SIZE = 32


def picture(number: int, *, size: tuple[int, int] = (SIZE, SIZE), blank: bool = False, fmt: str = "PNG") -> bytes:
    """A distinct noisy picture per `number` (or one flat black square), encoded as `fmt`."""
    width, height = size
    if blank:
        pixels = np.zeros((height, width, 3), dtype=np.uint8)
    else:
        pixels = np.random.default_rng(number).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def rows_for(generator: str, prompt: str, count: int, *, start: int = 0, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"file_name": f"{generator}-{start + i}.png", "prompt": prompt, "generator": generator, "seed": start + i}
        | extra
        for i in range(count)
    ]


def image_folder(
    folder: Path, rows: Sequence[dict[str, Any]], *, images: dict[str, bytes] | None = None, csv: bool = False
) -> Path:
    """An ImageFolder: each row's file (a distinct picture unless `images` gives its bytes) and the metadata file."""
    folder.mkdir(parents=True, exist_ok=True)
    images = images or {}
    for row in rows:
        name = row.get("file_name")
        if name and name not in images and not row.get("_missing"):
            (folder / name).write_bytes(picture(zlib.crc32(name.encode())))
        if name in images:
            (folder / name).write_bytes(images[name])
    clean = [{k: v for k, v in row.items() if not k.startswith("_")} for row in rows]
    if csv:
        import csv as csv_module

        columns = sorted({key for row in clean for key in row})
        with (folder / "metadata.csv").open("w", newline="") as handle:
            writer = csv_module.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(clean)
    else:
        (folder / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in clean))
    return folder


def table_rows(rows: Sequence[dict[str, Any]], images: dict[str, bytes | None] | None = None) -> dict[str, list[Any]]:
    """Columns for a datasets/pyarrow table: `image` as datasets.Image stores it ({bytes, path})."""
    images = images or {}
    columns: dict[str, list[Any]] = {"image": [], "prompt": [], "generator": [], "seed": []}
    for row in rows:
        name = row["file_name"]
        data = images[name] if name in images else picture(zlib.crc32(name.encode()))
        columns["image"].append({"bytes": data, "path": name})
        columns["prompt"].append(row.get("prompt"))
        columns["generator"].append(row.get("generator"))
        columns["seed"].append(row.get("seed"))
    return columns


def parquet_file(path: Path, rows: Sequence[dict[str, Any]], images: dict[str, bytes | None] | None = None) -> Path:
    """A Parquet file as `datasets.Dataset.to_parquet` writes one with an Image feature."""
    import datasets

    features = datasets.Features(
        {
            "image": datasets.Image(),
            "prompt": datasets.Value("string"),
            "generator": datasets.Value("string"),
            "seed": datasets.Value("int64"),
        }
    )
    datasets.Dataset.from_dict(table_rows(rows, images), features=features).to_parquet(str(path))
    return path


def saved_dataset(folder: Path, rows: Sequence[dict[str, Any]], images: dict[str, bytes | None] | None = None) -> Path:
    """A `datasets` save_to_disk folder with an Image column."""
    import datasets

    features = datasets.Features(
        {
            "image": datasets.Image(),
            "prompt": datasets.Value("string"),
            "generator": datasets.Value("string"),
            "seed": datasets.Value("int64"),
        }
    )
    datasets.Dataset.from_dict(table_rows(rows, images), features=features).save_to_disk(str(folder))
    return folder


def zipped(folder: Path, *, under: str = "") -> bytes:
    """The folder as a zip (its files under `under/` when given, as zipping a folder in a file manager does)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, f"{under}/{path.relative_to(folder)}" if under else str(path.relative_to(folder)))
    return buffer.getvalue()
