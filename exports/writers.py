"""Pure dataset writers, one per export format: they take rows and write files into a folder. No Django."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, NamedTuple, Protocol

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image as PILImage

from exports.rows import (
    BOTH_BAD,
    LEFT,
    OUTCOMES,
    RIGHT,
    TIE,
    TRAIN,
    ImageInfo,
    Moment,
    PairRow,
    ParticipantHasher,
    PopulationInfo,
    count_sample_rows,
    iso_moment,
)

POPULATION_JSONL = "population-jsonl"
POPALIGN_CSV = "popalign-csv"
PICKAPIC_PARQUET = "pickapic-parquet"
KTO_CSV = "kto-csv"
GENAI_BENCH_PARQUET = "genai-bench-parquet"
VOTES_CSV = "votes-csv"
LEADERBOARD_CSV = "leaderboard-csv"

# Hugging Face's own default shard size; a shard is written whole before the next one starts.
DEFAULT_SHARD_BYTES = 500 * 1024 * 1024
# Rows are buffered per row group, and a row group is held about three times over while it is
# written (Python bytes, the Arrow table, the encoded pages): small enough for 1024 px images.
DEFAULT_ROW_GROUP_BYTES = 4 * 1024 * 1024
ROW_GROUP_MAX_ROWS = 1000

ImageLoader = Callable[[ImageInfo], bytes]


@dataclass(frozen=True)
class FormatSpec:
    """What a format needs: which rows feed it, whether one criterion, how ties go, where images go."""

    name: str
    source: str  # "pairs", "votes" or "leaderboard"
    description: str
    single_criterion: bool = False
    default_ties: str | None = None  # None: the format has no ties option
    soft_ties: bool = False  # whether --ties soft can be expressed
    copies_images: bool = False
    embeds_images: bool = False
    splits: bool = False


FORMATS: dict[str, FormatSpec] = {
    spec.name: spec
    for spec in (
        FormatSpec(
            POPULATION_JSONL,
            "pairs",
            "one JSON line per judged pair of populations (canonical; every other format derives from it)",
            default_ties="soft",
            soft_ties=True,
            copies_images=True,
            splits=True,
        ),
        FormatSpec(
            POPALIGN_CSV,
            "pairs",
            "PopAlign trainer CSV: jpg_0 (winner), jpg_1, caption, label=0; N rows per pair; images beside it",
            single_criterion=True,
            default_ties="drop",
            copies_images=True,
            splits=True,
        ),
        FormatSpec(
            PICKAPIC_PARQUET,
            "pairs",
            "Pick-a-Pic v2 Parquet dataset (Diffusion-DPO, reward models): image bytes embedded",
            single_criterion=True,
            default_ties="drop",
            soft_ties=True,
            embeds_images=True,
            splits=True,
        ),
        FormatSpec(
            KTO_CSV,
            "pairs",
            "Diffusion-KTO CSV: one row per image, exclusive_win / exclusive_lose / intersections",
            single_criterion=True,
            default_ties="drop",
            copies_images=True,
            splits=True,
        ),
        FormatSpec(
            GENAI_BENCH_PARQUET,
            "pairs",
            "GenAI-Bench Parquet for judging automatic judges: one row per pair, each population as one grid image",
            single_criterion=True,
            default_ties="soft",
            soft_ties=True,
            embeds_images=True,
        ),
        FormatSpec(VOTES_CSV, "votes", "the raw vote log: one row per vote, sides as displayed"),
        FormatSpec(LEADERBOARD_CSV, "leaderboard", "the Bradley-Terry leaderboard at export time"),
    )
}


class PairWriter(Protocol):
    def write_group(self, rows: Sequence[PairRow]) -> None: ...

    def close(self) -> dict[str, int]:
        """Rows written per split."""
        ...


# --- population-jsonl -----------------------------------------------------------------------------------

POPULATION_JSONL_FILE = "population.jsonl"


class PopulationJsonlWriter:
    """One JSON line per judged pair, exactly `PairRow.as_dict()`, assembled from cached pieces.

    A population appears in several pairs and criteria; its images (most of each line) are
    serialised once and reused, and the rest of the line is formatted directly.
    """

    CACHE = 4096

    def __init__(self, folder: Path) -> None:
        self._file = open(folder / POPULATION_JSONL_FILE, "w", encoding="utf-8", newline="\n")  # noqa: SIM115
        self._rows: dict[str, int] = {}
        self._images: OrderedDict[int, str] = OrderedDict()

    def _images_json(self, population: PopulationInfo) -> str:
        cached = self._images.get(population.population_id)
        if cached is None:
            cached = _dumps([image.as_dict() for image in population.images])
            self._images[population.population_id] = cached
            if len(self._images) > self.CACHE:
                self._images.popitem(last=False)
        return cached

    def _population_json(self, population: PopulationInfo, rating: float | None) -> str:
        rounded = "null" if rating is None else _dumps(round(rating, 4))
        return (
            f'{{"population_id":{population.population_id},"generator":{_string(population.generator)},'
            f'"rating":{rounded},"size":{population.size},"images":{self._images_json(population)},'
            f'"metrics":{_dumps(population.metrics)}}}'
        )

    def _line(self, row: PairRow, prompt: str) -> str:
        pair = row.pair
        return (
            f'{{"pair_id":{_string(row.pair_id)},"criterion":{_string(row.criterion)},{prompt},'
            f'"split":{_string(row.split)},'
            f'"left":{self._population_json(row.left, row.left_rating)},'
            f'"right":{self._population_json(row.right, row.right_rating)},'
            f'"votes":{{"left":{pair.left_wins},"right":{pair.right_wins},"tie":{pair.ties},'
            f'"both_bad":{pair.both_bad},"total":{pair.total}}},"winner":"{pair.outcome}","margin":{pair.margin},'
            f'"voters":{len(pair.participants)},"first_comparison_id":{pair.first_comparison_id},'
            f'"first_vote_at":"{iso_moment(pair.first_voted)}","last_vote_at":"{iso_moment(pair.last_voted)}"}}\n'
        )

    def write_group(self, rows: Sequence[PairRow]) -> None:
        lines = []
        prompts: dict[int, str] = {}
        for row in rows:
            prompt = prompts.get(row.prompt.prompt_id)
            if prompt is None:
                p = row.prompt
                prompt = f'"prompt_id":{p.prompt_id},"caption":{_string(p.caption)},"category":{_string(p.category)}'
                prompts[p.prompt_id] = prompt
            lines.append(self._line(row, prompt))
            self._rows[row.split] = self._rows.get(row.split, 0) + 1
        self._file.write("".join(lines))

    def close(self) -> dict[str, int]:
        self._file.close()
        return self._rows


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# The JSON string encoder json.dumps itself uses for ensure_ascii=False.
_string: Callable[[str], str] = json.encoder.encode_basestring


# --- popalign-csv ---------------------------------------------------------------------------------------

POPALIGN_COLUMNS = ["jpg_0", "jpg_1", "caption", "label", "comparison_id", "population_w_id", "population_l_id"]


def popalign_file(split: str) -> str:
    return f"{split}.csv"


class _CsvFiles:
    """One CSV per split, opened up front so every split exists (with its header) even when empty."""

    def __init__(self, folder: Path, splits: Sequence[str], name: Callable[[str], str], header: list[str]) -> None:
        self._files: dict[str, IO[str]] = {}
        self.writers: dict[str, Any] = {}
        self.rows: dict[str, int] = {}
        for split in splits:
            handle = open(folder / name(split), "w", encoding="utf-8", newline="")  # noqa: SIM115
            self._files[split] = handle
            self.writers[split] = csv.writer(handle, lineterminator="\n")
            self.writers[split].writerow(header)
            self.rows[split] = 0

    def close(self) -> dict[str, int]:
        for handle in self._files.values():
            handle.close()
        return self.rows


class PopalignCsvWriter:
    """PopAlign's trainer input: `label` is always 0 because `jpg_0` is always from the winning population."""

    def __init__(self, folder: Path, splits: Sequence[str] = (TRAIN,)) -> None:
        self._csv = _CsvFiles(folder, splits, popalign_file, POPALIGN_COLUMNS)

    def write_group(self, rows: Sequence[PairRow]) -> None:
        for row in rows:
            if not row.pair.decided:
                raise ValueError(f"PopAlign has no way to express a tie ({row.pair_id}); drop ties first")
            winner, loser = row.winner_loser()
            writer = self._csv.writers[row.split]
            comparison = row.pair.first_comparison_id
            writer.writerows(
                (w.path, lo.path, row.prompt.caption, 0, comparison, winner.population_id, loser.population_id)
                for w, lo in row.sample_pairs(winner_first=True)
            )
            self._csv.rows[row.split] += min(len(winner.images), len(loser.images))

    def close(self) -> dict[str, int]:
        return self._csv.close()


# --- kto-csv --------------------------------------------------------------------------------------------

KTO_COLUMNS = ["file_name", "caption", "split"]
KTO_WIN = "exclusive_win"
KTO_LOSE = "exclusive_lose"
KTO_BOTH = "intersections"
_WON = 1
_LOST = 2


def kto_file(split: str) -> str:
    # Diffusion-KTO reads `<dir>/{split}_processed_v3.csv`.
    return f"{split}_processed_v3.csv"


class KtoLabels:
    """Which populations won and which lost somewhere: one byte per population id, so memory stays flat."""

    def __init__(self, max_population_id: int) -> None:
        self._flags = bytearray(max_population_id + 1)

    def note(self, row: PairRow) -> None:
        if not row.pair.decided:
            raise ValueError(f"Diffusion-KTO has no way to express a tie ({row.pair_id}); drop ties first")
        winner, loser = row.winner_loser()
        self._flags[winner.population_id] |= _WON
        self._flags[loser.population_id] |= _LOST

    def flags(self, population_id: int) -> int:
        return self._flags[population_id] if population_id < len(self._flags) else 0

    @staticmethod
    def label(flags: int) -> str | None:
        return {_WON: KTO_WIN, _LOST: KTO_LOSE, _WON | _LOST: KTO_BOTH}.get(flags)


class KtoImage(NamedTuple):
    """One image as the KTO pass streams them: ordered by content hash, so one file is one row."""

    image: ImageInfo
    population_id: int
    caption: str
    split: str


class KtoCsvWriter:
    """One row per distinct image: desirable if its population only won, undesirable if it only lost."""

    def __init__(self, folder: Path, splits: Sequence[str] = (TRAIN,)) -> None:
        self._csv = _CsvFiles(folder, splits, kto_file, KTO_COLUMNS)
        self.labels: dict[str, int] = {KTO_WIN: 0, KTO_LOSE: 0, KTO_BOTH: 0}

    def write(self, image: ImageInfo, caption: str, split: str, label: str) -> None:
        self._csv.writers[split].writerow((image.path, caption, label))
        self._csv.rows[split] += 1
        self.labels[label] += 1

    def close(self) -> dict[str, int]:
        return self._csv.close()


def kto_rows(images: Iterable[KtoImage], labels: KtoLabels) -> Iterable[tuple[KtoImage, str]]:
    """Each distinct image (by content hash) of a labelled population once, with its flags over all its copies."""
    current: list[KtoImage] = []
    flags = 0
    for item in images:
        if current and item.image.sha256 != current[0].image.sha256:
            label = KtoLabels.label(flags)
            if label is not None:
                yield current[0], label
            current, flags = [], 0
        current.append(item)
        flags |= labels.flags(item.population_id)
    if current:
        label = KtoLabels.label(flags)
        if label is not None:
            yield current[0], label


# --- Parquet datasets -----------------------------------------------------------------------------------


def parquet_file(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


def hf_features(schema: pa.Schema, images: Sequence[str] = ()) -> dict[str, Any]:
    """The `datasets` feature description of a schema, as stored in Parquet metadata and dataset cards."""
    features: dict[str, Any] = {}
    for column in schema:
        if column.name in images:
            features[column.name] = {"_type": "Image"}
        else:
            features[column.name] = {"dtype": _hf_dtype(column.type), "_type": "Value"}
    return features


def _hf_dtype(arrow_type: pa.DataType) -> str:
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    if pa.types.is_timestamp(arrow_type):
        return f"timestamp[{arrow_type.unit}]"
    if pa.types.is_floating(arrow_type):
        return f"float{arrow_type.bit_width}"
    return str(arrow_type)


class ShardedParquetWriter:
    """Rows of one split into `{split}-XXXXX-of-YYYYY.parquet` shards, buffered one row group at a time.

    The shard count is only known at the end, so shards are written under a provisional name and
    renamed on close. A split with no rows still gets one (empty, typed) shard, so it loads.
    """

    def __init__(
        self,
        folder: Path,
        split: str,
        schema: pa.Schema,
        *,
        image_columns: Sequence[str] = (),
        raw_columns: Sequence[str] = (),
        max_shard_bytes: int = DEFAULT_SHARD_BYTES,
        row_group_bytes: int = DEFAULT_ROW_GROUP_BYTES,
    ) -> None:
        self.folder = folder
        self.split = split
        features = json.dumps({"info": {"features": hf_features(schema, image_columns)}})
        self.schema = schema.with_metadata({b"huggingface": features.encode()})
        # Image bytes are already compressed, never repeat, and their min/max statistics are useless:
        # compressing, dictionary-encoding or summarising them costs time and memory and saves nothing.
        blobs = set(raw_columns) | set(image_columns)
        self._compression = {c.name: ("none" if c.name in blobs else "snappy") for c in schema}
        self._plain_columns = [c.name for c in schema if c.name not in blobs]
        self._max_shard_bytes = max_shard_bytes
        self._row_group_bytes = row_group_bytes
        self._buffer: dict[str, list[Any]] = {c.name: [] for c in schema}
        self._buffered_bytes = 0
        self._buffered_rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._shard_bytes = 0
        self._parts: list[Path] = []
        self.rows = 0
        self.data_bytes = 0

    def add(self, row: dict[str, Any], size: int) -> None:
        """Buffer one row; `size` is roughly its bytes (the image bytes dominate)."""
        for name, values in self._buffer.items():
            values.append(row[name])
        self._buffered_bytes += size
        self._buffered_rows += 1
        self.rows += 1
        if self._buffered_bytes >= self._row_group_bytes or self._buffered_rows >= ROW_GROUP_MAX_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self._buffered_rows and self._parts:
            return
        if self._writer is None or self._shard_bytes >= self._max_shard_bytes:
            self._open_shard()
        assert self._writer is not None
        table = pa.Table.from_pydict(self._buffer, schema=self.schema)
        if table.num_rows:
            self._writer.write_table(table)
        self._shard_bytes += self._buffered_bytes
        self.data_bytes += table.nbytes
        del table
        # Arrow's allocator keeps freed row-group buffers for reuse; hand them back, so memory
        # stays at one row group whatever the export's size.
        pa.default_memory_pool().release_unused()
        self._buffer = {name: [] for name in self._buffer}
        self._buffered_bytes = 0
        self._buffered_rows = 0

    def _open_shard(self) -> None:
        if self._writer is not None:
            self._writer.close()
        part = self.folder / f".{self.split}-{len(self._parts):05d}.parquet.part"
        self._parts.append(part)
        self._writer = pq.ParquetWriter(
            part,
            self.schema,
            compression=self._compression,
            use_dictionary=self._plain_columns,
            write_statistics=self._plain_columns,
        )
        self._shard_bytes = 0

    def close(self) -> list[Path]:
        """Finish the last shard and give every shard its final name; returns the final paths."""
        self._flush()
        if self._writer is not None:
            self._writer.close()
        count = len(self._parts)
        final = []
        for index, part in enumerate(self._parts):
            target = self.folder / parquet_file(self.split, index, count)
            os.replace(part, target)
            final.append(target)
        return final


PICKAPIC_SCHEMA = pa.schema(
    [
        ("are_different", pa.bool_()),
        ("best_image_uid", pa.string()),
        ("caption", pa.string()),
        ("created_at", pa.timestamp("ns")),
        ("has_label", pa.bool_()),
        ("image_0_uid", pa.string()),
        ("image_0_url", pa.string()),
        ("image_1_uid", pa.string()),
        ("image_1_url", pa.string()),
        ("jpg_0", pa.binary()),
        ("jpg_1", pa.binary()),
        ("label_0", pa.float64()),
        ("label_1", pa.float64()),
        ("model_0", pa.string()),
        ("model_1", pa.string()),
        ("ranking_id", pa.int64()),
        ("user_id", pa.int64()),
        ("num_example_per_prompt", pa.int64()),
        ("__index_level_0__", pa.int64()),
    ]
)

_PICKAPIC_LABELS = {LEFT: (1.0, 0.0), RIGHT: (0.0, 1.0), TIE: (0.5, 0.5), BOTH_BAD: (0.5, 0.5)}


def naive_utc(moment: datetime) -> datetime:
    """Pick-a-Pic's `created_at` is a timestamp without a zone; ours are stored in UTC."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


class _SplitShards:
    """One sharded writer per split, created up front so every split exists.

    `datasets.load_dataset` refuses a split with no rows, which would make the whole dataset
    unloadable, so on close an empty split is removed whenever another split has rows.
    """

    def __init__(self, folder: Path, splits: Sequence[str], make: Callable[[Path, str], ShardedParquetWriter]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.by_split = {split: make(folder, split) for split in splits}
        self.removed: list[str] = []

    def close(self) -> dict[str, int]:
        rows = {}
        paths = {}
        for split, writer in self.by_split.items():
            paths[split] = writer.close()
            rows[split] = writer.rows
        if any(rows.values()):
            for split, count in rows.items():
                if not count:
                    for path in paths[split]:
                        path.unlink()
                    del self.by_split[split]
                    self.removed.append(split)
        return rows

    def sizes(self) -> dict[str, tuple[int, int]]:
        return {split: (writer.rows, writer.data_bytes) for split, writer in self.by_split.items()}


class PickapicParquetWriter:
    """Pick-a-Pic v2 rows: each judged pair becomes N per-sample pairs, sides as first displayed.

    `label_0`/`label_1` are 1/0 or 0/1 for a decided pair and 0.5/0.5 for a kept tie.
    `ranking_id`, `user_id` and `created_at` describe the pair's first vote (hashed user); the
    label is the majority of all its votes.
    """

    DATA_DIR = "data"

    def __init__(
        self,
        folder: Path,
        load: ImageLoader,
        hasher: ParticipantHasher,
        splits: Sequence[str] = (TRAIN,),
        *,
        max_shard_bytes: int = DEFAULT_SHARD_BYTES,
        row_group_bytes: int = DEFAULT_ROW_GROUP_BYTES,
    ) -> None:
        self._load = load
        self._hasher = hasher
        self._next_index: dict[str, int] = dict.fromkeys(splits, 0)
        self._shards = _SplitShards(
            folder / self.DATA_DIR,
            splits,
            lambda f, s: ShardedParquetWriter(
                f,
                s,
                PICKAPIC_SCHEMA,
                raw_columns=("jpg_0", "jpg_1"),
                max_shard_bytes=max_shard_bytes,
                row_group_bytes=row_group_bytes,
            ),
        )

    def write_group(self, rows: Sequence[PairRow]) -> None:
        if not rows:
            return
        per_prompt = count_sample_rows(rows)
        for row in rows:
            shard = self._shards.by_split[row.split]
            label_0, label_1 = _PICKAPIC_LABELS[row.outcome]
            created = naive_utc(row.pair.first_vote_at)
            user = self._hasher.int64(row.pair.first_participant_id)
            for image_0, image_1 in row.sample_pairs(winner_first=False):
                jpg_0, jpg_1 = self._load(image_0), self._load(image_1)
                best = image_0.sha256 if label_0 > label_1 else image_1.sha256 if label_1 > label_0 else ""
                index = self._next_index[row.split]
                self._next_index[row.split] = index + 1
                shard.add(
                    {
                        "are_different": image_0.sha256 != image_1.sha256,
                        "best_image_uid": best,
                        "caption": row.prompt.caption,
                        "created_at": created,
                        "has_label": True,
                        "image_0_uid": image_0.sha256,
                        "image_0_url": "",
                        "image_1_uid": image_1.sha256,
                        "image_1_url": "",
                        "jpg_0": jpg_0,
                        "jpg_1": jpg_1,
                        "label_0": label_0,
                        "label_1": label_1,
                        "model_0": row.left.generator,
                        "model_1": row.right.generator,
                        "ranking_id": row.pair.first_vote_id,
                        "user_id": user,
                        "num_example_per_prompt": per_prompt,
                        "__index_level_0__": index,
                    },
                    len(jpg_0) + len(jpg_1) + 256,
                )

    def close(self) -> dict[str, int]:
        return self._shards.close()

    def split_sizes(self) -> dict[str, tuple[int, int]]:
        """(rows, in-memory bytes) per split written, as a dataset card's `dataset_info` records them."""
        return self._shards.sizes()

    @property
    def removed_splits(self) -> list[str]:
        return list(self._shards.removed)


GENAI_BENCH_CONFIG = "image_generation"
GENAI_BENCH_SPLIT = "test_v1"
GENAI_BENCH_SCHEMA = pa.schema(
    [
        ("prompt", pa.string()),
        ("left_model", pa.string()),
        ("left_image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        ("right_model", pa.string()),
        ("right_image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        ("vote_type", pa.string()),
        # Beyond GenAI-Bench's six columns (its loader keeps them, its scripts read only theirs): each
        # side's population measures as JSON, for judging the automatic metrics against the votes; null
        # where the campaign measures nothing.
        ("left_metrics", pa.string()),
        ("right_metrics", pa.string()),
    ]
)
GENAI_BENCH_VOTES = {LEFT: "leftvote", RIGHT: "rightvote", TIE: "tievote", BOTH_BAD: "bothbad_vote"}
GRID_GAP = 4
# Judges look at a grid scaled down anyway; full-size tiles would make 6 x 1024 px grids of tens of MB.
GRID_TILE_MAX = 384
# Pairs come prompt by prompt, so a cache that holds one prompt's grids builds each grid once.
GRID_CACHE_BYTES = 8 * 1024 * 1024


def make_grid(images: Sequence[bytes], gap: int = GRID_GAP, tile_max: int = GRID_TILE_MAX) -> bytes:
    """The population as one JPEG: a near-square grid, as a judge that takes one image per side must see it.

    Tiles larger than `tile_max` pixels a side are scaled down to it, keeping their aspect. JPEG
    at quality 95 without chroma subsampling looks the same as the PNG, is a fraction of its
    size, and encodes faster.
    """
    tiles: list[PILImage.Image] = []
    for data in images:
        with PILImage.open(io.BytesIO(data)) as opened:
            tile = opened.convert("RGB")
        if max(tile.size) > tile_max:
            tile.thumbnail((tile_max, tile_max), PILImage.Resampling.LANCZOS)
        tiles.append(tile)
    if not tiles:
        raise ValueError("a population with no images has no grid")
    columns = math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    width = max(t.width for t in tiles)
    height = max(t.height for t in tiles)
    grid = PILImage.new("RGB", (columns * width + (columns - 1) * gap, rows * height + (rows - 1) * gap), "white")
    for i, tile in enumerate(tiles):
        x = (i % columns) * (width + gap) + (width - tile.width) // 2
        y = (i // columns) * (height + gap) + (height - tile.height) // 2
        grid.paste(tile, (x, y))
    out = io.BytesIO()
    grid.save(out, format="JPEG", quality=95, subsampling=0)
    return out.getvalue()


class GenaiBenchParquetWriter:
    """GenAI-Bench rows: one per judged pair, each side one grid image of its population, vote from the majority."""

    def __init__(
        self,
        folder: Path,
        load: ImageLoader,
        *,
        max_shard_bytes: int = DEFAULT_SHARD_BYTES,
        row_group_bytes: int = DEFAULT_ROW_GROUP_BYTES,
    ) -> None:
        self._load = load
        self._grids: OrderedDict[int, bytes] = OrderedDict()
        self._grid_bytes = 0
        self._shards = _SplitShards(
            folder / GENAI_BENCH_CONFIG,
            (GENAI_BENCH_SPLIT,),
            lambda f, s: ShardedParquetWriter(
                f,
                s,
                GENAI_BENCH_SCHEMA,
                image_columns=("left_image", "right_image"),
                max_shard_bytes=max_shard_bytes,
                row_group_bytes=row_group_bytes,
            ),
        )

    def _grid(self, population: PopulationInfo) -> bytes:
        grid = self._grids.get(population.population_id)
        if grid is None:
            grid = make_grid([self._load(image) for image in population.images])
            self._grids[population.population_id] = grid
            self._grid_bytes += len(grid)
            while self._grid_bytes > GRID_CACHE_BYTES and len(self._grids) > 1:
                _, old = self._grids.popitem(last=False)
                self._grid_bytes -= len(old)
        else:
            self._grids.move_to_end(population.population_id)
        return grid

    def write_group(self, rows: Sequence[PairRow]) -> None:
        shard = self._shards.by_split[GENAI_BENCH_SPLIT]
        for row in rows:
            left, right = self._grid(row.left), self._grid(row.right)
            shard.add(
                {
                    "prompt": row.prompt.caption,
                    "left_model": row.left.generator,
                    "left_image": {"bytes": left, "path": f"population-{row.left.population_id}.jpg"},
                    "right_model": row.right.generator,
                    "right_image": {"bytes": right, "path": f"population-{row.right.population_id}.jpg"},
                    "vote_type": GENAI_BENCH_VOTES[row.outcome],
                    "left_metrics": None if row.left.metrics is None else _dumps(row.left.metrics),
                    "right_metrics": None if row.right.metrics is None else _dumps(row.right.metrics),
                },
                len(left) + len(right) + 256,
            )

    def close(self) -> dict[str, int]:
        return self._shards.close()

    def split_sizes(self) -> dict[str, tuple[int, int]]:
        """(rows, in-memory bytes) per split written, as a dataset card's `dataset_info` records them."""
        return self._shards.sizes()

    @property
    def removed_splits(self) -> list[str]:
        return list(self._shards.removed)


# --- votes-csv and leaderboard-csv ----------------------------------------------------------------------

VOTES_FILE = "votes.csv"
VOTES_COLUMNS = [
    "vote_id",
    "created_at",
    "criterion",
    "comparison_id",
    "participant",
    "participant_kind",
    "participant_flagged",
    "prompt_id",
    "caption",
    "category",
    "left_population_id",
    "right_population_id",
    "left_generator",
    "right_generator",
    "choice",
    "dwell_ms",
    "is_gold",
    "repeat_of_comparison_id",
]


class VoteLogRecord(NamedTuple):
    """One vote with its comparison, as displayed; `participant_id` is hashed before it is written."""

    vote_id: int
    created_at: Moment
    criterion: str
    comparison_id: int
    participant_id: int
    participant_kind: str
    participant_flagged: bool | int
    prompt_id: int
    caption: str
    category: str
    left_population_id: int
    right_population_id: int
    left_generator: str
    right_generator: str
    choice: str
    dwell_ms: int
    is_gold: bool | int
    repeat_of_id: int | None


class VotesCsvWriter:
    """votes.csv; `measure_columns` (e.g. colour_discrepancy, vendi) add left_X and right_X after the fixed columns."""

    def __init__(self, folder: Path, hasher: ParticipantHasher, measure_columns: Sequence[str] = ()) -> None:
        self._file = open(folder / VOTES_FILE, "w", encoding="utf-8", newline="")  # noqa: SIM115
        self._writer = csv.writer(self._file, lineterminator="\n")
        self._measures = list(measure_columns)
        sides = [f"{side}_{name}" for side in ("left", "right") for name in self._measures]
        self._writer.writerow(VOTES_COLUMNS + sides)
        self._hasher = hasher
        self.rows = 0

    def _measured(self, measures: Mapping[int, Mapping[str, float | None]], population_id: int) -> list[object]:
        values = measures.get(population_id, {})
        return ["" if (value := values.get(name)) is None else round(float(value), 6) for name in self._measures]

    def write_many(
        self, votes: Iterable[VoteLogRecord], measures: Mapping[int, Mapping[str, float | None]] | None = None
    ) -> int:
        """Write votes; `measures` maps a population id to its value of each measure column (blank if absent)."""
        measures = measures or {}
        hashed = self._hasher.hex
        count = 0
        rows = []
        for v in votes:
            if v.choice not in OUTCOMES:
                raise ValueError(f"unknown vote choice {v.choice!r}")
            rows.append(
                (
                    v.vote_id,
                    iso_moment(v.created_at),
                    v.criterion,
                    v.comparison_id,
                    hashed(v.participant_id),
                    v.participant_kind,
                    int(v.participant_flagged),
                    v.prompt_id,
                    v.caption,
                    v.category,
                    v.left_population_id,
                    v.right_population_id,
                    v.left_generator,
                    v.right_generator,
                    v.choice,
                    v.dwell_ms,
                    int(v.is_gold),
                    "" if v.repeat_of_id is None else v.repeat_of_id,
                    *self._measured(measures, v.left_population_id),
                    *self._measured(measures, v.right_population_id),
                )
            )
            count += 1
        self._writer.writerows(rows)
        self.rows += count
        return count

    def close(self) -> dict[str, int]:
        self._file.close()
        return {TRAIN: self.rows}


LEADERBOARD_FILE = "leaderboard.csv"
LEADERBOARD_COLUMNS = [
    "criterion",
    "rank",
    "generator",
    "display_name",
    "rating",
    "ci_low",
    "ci_high",
    "votes",
    "wins",
    "losses",
    "ties",
    "both_bad",
]


def write_leaderboard(folder: Path, boards: Sequence[tuple[str, Sequence[dict[str, Any]]]]) -> dict[str, int]:
    """One row per generator per criterion; `boards` holds (criterion key, leaderboard rows)."""
    count = 0
    with open(folder / LEADERBOARD_FILE, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(LEADERBOARD_COLUMNS)
        for criterion, rows in boards:
            for row in rows:
                writer.writerow([criterion, *(_blank_none(row.get(c)) for c in LEADERBOARD_COLUMNS[1:])])
                count += 1
    return {TRAIN: count}


def _blank_none(value: Any) -> Any:
    return "" if value is None else value


# --- delivery -------------------------------------------------------------------------------------------

_DEFLATE_SUFFIXES = {".csv", ".jsonl", ".json", ".md"}
ZIP_CHUNK = 1024 * 1024


class _Sink(io.RawIOBase):
    """An unseekable stream that hands back what was written since the last take()."""

    def __init__(self) -> None:
        super().__init__()
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def iter_zip(folder: Path, prefix: str) -> Iterator[bytes]:
    """A zip of the folder as a stream of chunks, built as it is sent: never whole in memory or on disk.

    Images and Parquet are stored as they are (already compressed); text files are deflated.
    """
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", allowZip64=True) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo.from_file(path, f"{prefix}/{path.relative_to(folder).as_posix()}")
            info.compress_type = zipfile.ZIP_DEFLATED if path.suffix in _DEFLATE_SUFFIXES else zipfile.ZIP_STORED
            with open(path, "rb") as source, archive.open(info, "w") as target:
                while chunk := source.read(ZIP_CHUNK):
                    target.write(chunk)
                    yield sink.take()
            yield sink.take()
    yield sink.take()
