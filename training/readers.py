"""Reads a PopArena export back the way the preference trainers read it. Pure (no Django).

- `popalign-csv`: `train.csv` with PopAlign's columns `jpg_0, jpg_1, caption, label`, paths relative to
  the CSV's folder; `label` 0 means `jpg_0` is from the preferred population (1 would mean `jpg_1`).
  The extra `comparison_id` column, when present, groups a population pair's N rows.
- `pickapic-parquet`: `data/train-*.parquet` with Pick-a-Pic v2's columns; `jpg_0`/`jpg_1` are the image
  bytes and `label_0` says which side won. Ties (0.5/0.5) are left out, as Diffusion-DPO does; rows of
  one judged pair share a `ranking_id`.
- `kto-csv`: `train_processed_v3.csv` with Diffusion-KTO's `file_name, caption, split`, where `split` is
  `exclusive_win` (desirable), `exclusive_lose` (undesirable) or `intersections` (left out, as the
  trainer does).

Every problem is found before training starts and named in a ReaderError: a missing file or column,
an image that is missing or unreadable, an empty export, images of different sizes, a pair whose
sides hold different numbers of images.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exports.rows import TRAIN
from exports.writers import KTO_CSV, PICKAPIC_PARQUET, POPALIGN_CSV
from exports.writers.kto_csv import KTO_BOTH, KTO_COLUMNS, KTO_LOSE, KTO_WIN, kto_file
from exports.writers.pickapic_parquet import PickapicParquetWriter
from exports.writers.popalign_csv import popalign_file

# The exporter's own names for its formats and files: what it writes is what is read back.
FORMATS = (POPALIGN_CSV, PICKAPIC_PARQUET, KTO_CSV)
# exports.selectors.MANIFEST; that module needs Django, and this one stays pure.
MANIFEST = "manifest.json"
POPALIGN_FILE = popalign_file(TRAIN)
KTO_FILE = kto_file(TRAIN)
# The columns each trainer requires; the exporter's extra columns are optional here.
POPALIGN_COLUMNS = ("jpg_0", "jpg_1", "caption", "label")
PICKAPIC_COLUMNS = ("caption", "jpg_0", "jpg_1", "label_0", "label_1", "ranking_id")


class ReaderError(ValueError):
    """The export cannot be trained on; the message names the file, row or column."""


@dataclass(frozen=True)
class PairSample:
    """One winner image and one loser image for the same caption; `group` is their population pair."""

    caption: str
    winner: bytes
    loser: bytes
    group: str


@dataclass(frozen=True)
class LabelledImage:
    caption: str
    image: bytes
    desirable: bool


@dataclass
class PreferenceData:
    """What an export holds for training: winner/loser pairs, or per-image labels (KTO)."""

    format: str
    folder: Path
    pairs: list[PairSample] = field(default_factory=list)
    labelled: list[LabelledImage] = field(default_factory=list)
    image_size: tuple[int, int] = (0, 0)
    manifest_sha256: str | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def is_paired(self) -> bool:
        return bool(self.pairs)

    @property
    def population_size(self) -> int:
        """N: rows of one population pair (the same for every pair; checked when read)."""
        sizes = {n for n in _group_sizes(self.pairs).values()}
        return sizes.pop() if len(sizes) == 1 else 0

    def labelled_images(self) -> list[LabelledImage]:
        """Per-image labels: as read from kto-csv, or winners desirable and losers undesirable from pairs."""
        if self.labelled:
            return list(self.labelled)
        seen: dict[bytes, LabelledImage] = {}
        for pair in self.pairs:
            seen.setdefault(pair.winner, LabelledImage(pair.caption, pair.winner, True))
            seen.setdefault(pair.loser, LabelledImage(pair.caption, pair.loser, False))
        return list(seen.values())

    def summary(self) -> str:
        if self.pairs:
            groups = len(_group_sizes(self.pairs))
            text = (
                f"{len(self.pairs)} winner/loser image pairs from {groups} population pairs (N={self.population_size})"
            )
        else:
            good = sum(1 for item in self.labelled if item.desirable)
            text = f"{len(self.labelled)} labelled images ({good} desirable, {len(self.labelled) - good} undesirable)"
        skipped = ", ".join(f"{n} {why}" for why, n in self.skipped.items() if n)
        return text + (f"; left out: {skipped}" if skipped else "")


def detect_format(folder: Path) -> str:
    """The export's format: its manifest's `format`, else the files it holds."""
    manifest = folder / MANIFEST
    if manifest.is_file():
        try:
            name = json.loads(manifest.read_text(encoding="utf-8")).get("format")
        except (ValueError, AttributeError) as exc:
            raise ReaderError(f"{manifest} is not valid JSON: {exc}") from exc
        if name in FORMATS:
            return str(name)
        if name:
            raise ReaderError(
                f"{folder} is a {name} export; training reads {', '.join(FORMATS)} (export one with --format)"
            )
    if (folder / POPALIGN_FILE).is_file():
        return POPALIGN_CSV
    if (folder / KTO_FILE).is_file():
        return KTO_CSV
    if list((folder / PickapicParquetWriter.DATA_DIR).glob(f"{TRAIN}-*.parquet")):
        return PICKAPIC_PARQUET
    raise ReaderError(
        f"{folder} holds no training data: expected {POPALIGN_FILE} (popalign-csv), {KTO_FILE} (kto-csv) "
        "or data/train-*.parquet (pickapic-parquet)"
    )


def read_export(folder: Path | str) -> PreferenceData:
    """Read the export in `folder` (its train split) and check it whole; ReaderError names the first problem."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ReaderError(f"export folder {str(folder)!r} does not exist")
    fmt = detect_format(folder)
    data = PreferenceData(format=fmt, folder=folder)
    manifest = folder / MANIFEST
    if manifest.is_file():
        raw = manifest.read_bytes()
        data.manifest_sha256 = hashlib.sha256(raw).hexdigest()
        data.manifest = json.loads(raw)
    if fmt == POPALIGN_CSV:
        data.pairs = list(_read_popalign(folder))
    elif fmt == KTO_CSV:
        data.labelled = list(_read_kto(folder, data.skipped))
    else:
        data.pairs = list(_read_pickapic(folder, data.skipped))
    if not data.pairs and not data.labelled:
        raise ReaderError(f"the export in {folder} has no rows to train on ({fmt}, train split)")
    if data.pairs:
        _check_sides(data.pairs)
    data.image_size = _check_images(data)
    return data


# --- formats ------------------------------------------------------------------------------------------


def _csv_rows(path: Path, columns: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    if not path.is_file():
        raise ReaderError(f"{path.name} is missing from {path.parent}")
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in columns if c not in (reader.fieldnames or ())]
        if missing:
            raise ReaderError(f"{path.name} lacks the column(s) {', '.join(missing)}")
        yield from enumerate(reader, start=2)


def _image_file(folder: Path, name: str, where: str) -> bytes:
    if not name:
        raise ReaderError(f"{where}: the image path is empty")
    path = (folder / name).resolve()
    if folder.resolve() not in path.parents:
        raise ReaderError(f"{where}: image path {name!r} leaves the export folder")
    if not path.is_file():
        raise ReaderError(f"{where}: image {name!r} is missing")
    return path.read_bytes()


def _read_popalign(folder: Path) -> Iterator[PairSample]:
    path = folder / POPALIGN_FILE
    cache: dict[str, bytes] = {}
    for line, row in _csv_rows(path, POPALIGN_COLUMNS):
        where = f"{POPALIGN_FILE} line {line}"
        label = row["label"].strip()
        if label not in ("0", "1"):
            raise ReaderError(f"{where}: label must be 0 (jpg_0 preferred) or 1 (jpg_1 preferred), got {label!r}")
        for column in ("jpg_0", "jpg_1"):
            if row[column] not in cache:
                cache[row[column]] = _image_file(folder, row[column], where)
        first, second = cache[row["jpg_0"]], cache[row["jpg_1"]]
        winner, loser = (first, second) if label == "0" else (second, first)
        group = row.get("comparison_id") or f"{row['caption']}|{row.get('population_w_id', '')}"
        yield PairSample(_caption(row["caption"], where), winner, loser, group)


def _read_kto(folder: Path, skipped: dict[str, int]) -> Iterator[LabelledImage]:
    for line, row in _csv_rows(folder / KTO_FILE, KTO_COLUMNS):
        where = f"{KTO_FILE} line {line}"
        label = row["split"].strip()
        if label == KTO_BOTH:
            skipped["images on both sides"] = skipped.get("images on both sides", 0) + 1
            continue
        if label not in (KTO_WIN, KTO_LOSE):
            raise ReaderError(f"{where}: split must be {KTO_WIN}, {KTO_LOSE} or {KTO_BOTH}, got {label!r}")
        image = _image_file(folder, row["file_name"], where)
        yield LabelledImage(_caption(row["caption"], where), image, label == KTO_WIN)


def _read_pickapic(folder: Path, skipped: dict[str, int]) -> Iterator[PairSample]:
    import pyarrow.parquet as pq

    shards = sorted((folder / PickapicParquetWriter.DATA_DIR).glob(f"{TRAIN}-*.parquet"))
    if not shards:
        raise ReaderError(f"{folder / PickapicParquetWriter.DATA_DIR} holds no {TRAIN}-*.parquet shard")
    for shard in shards:
        try:
            table = pq.read_table(shard)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise ReaderError(f"{shard.name} is not a readable Parquet file: {exc}") from exc
        missing = [c for c in PICKAPIC_COLUMNS if c not in table.column_names]
        if missing:
            raise ReaderError(f"{shard.name} lacks the column(s) {', '.join(missing)}")
        columns = table.select(list(PICKAPIC_COLUMNS)).to_pydict()
        for index in range(table.num_rows):
            where = f"{shard.name} row {index}"
            label_0, label_1 = columns["label_0"][index], columns["label_1"][index]
            if label_0 == label_1:
                skipped["ties"] = skipped.get("ties", 0) + 1
                continue
            jpg_0, jpg_1 = columns["jpg_0"][index], columns["jpg_1"][index]
            if not jpg_0 or not jpg_1:
                raise ReaderError(f"{where}: jpg_0 or jpg_1 holds no image bytes")
            winner, loser = (jpg_0, jpg_1) if label_0 > label_1 else (jpg_1, jpg_0)
            caption = _caption(columns["caption"][index] or "", where)
            yield PairSample(caption, winner, loser, f"ranking-{columns['ranking_id'][index]}")


def _caption(value: str, where: str) -> str:
    if not value.strip():
        raise ReaderError(f"{where}: the caption is empty")
    return value


# --- checks -------------------------------------------------------------------------------------------


def _group_sizes(pairs: Iterable[PairSample]) -> dict[str, int]:
    sizes: dict[str, int] = defaultdict(int)
    for pair in pairs:
        sizes[pair.group] += 1
    return sizes


def _check_sides(pairs: Sequence[PairSample]) -> None:
    """Each population pair's sides hold the same number of images, and every pair holds the same N."""
    winners: dict[str, set[bytes]] = defaultdict(set)
    losers: dict[str, set[bytes]] = defaultdict(set)
    for pair in pairs:
        winners[pair.group].add(pair.winner)
        losers[pair.group].add(pair.loser)
    for group in winners:
        if len(winners[group]) != len(losers[group]):
            raise ReaderError(
                f"population pair {group!r}: the winning side has {len(winners[group])} images and the losing side "
                f"{len(losers[group])}; sets of different N cannot be compared"
            )
    sizes = sorted(set(_group_sizes(pairs).values()))
    if len(sizes) > 1:
        raise ReaderError(
            f"population pairs of different N in one export ({', '.join(map(str, sizes))} images per side); "
            "export one campaign's pairs"
        )


def _check_images(data: PreferenceData) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    seen: dict[bytes, tuple[int, int]] = {}
    blobs = (
        [b for pair in data.pairs for b in (pair.winner, pair.loser)]
        if data.pairs
        else [i.image for i in data.labelled]
    )
    for blob in blobs:
        if blob in seen:
            continue
        try:
            with Image.open(io.BytesIO(blob)) as image:
                image.load()
                seen[blob] = image.size
        except (UnidentifiedImageError, OSError) as exc:
            raise ReaderError(f"an image in the export cannot be decoded ({exc})") from exc
    sizes = sorted(set(seen.values()))
    if len(sizes) != 1:
        raise ReaderError(f"the export's images have different sizes ({', '.join(f'{w}x{h}' for w, h in sizes)})")
    return sizes[0]
