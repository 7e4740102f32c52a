"""genai-bench-parquet: GenAI-Bench's layout for judging automatic judges, each population as one grid image."""

from __future__ import annotations

import io
import math
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
from PIL import Image as PILImage

from exports.rows import BOTH_BAD, LEFT, RIGHT, TIE, PairRow, PopulationInfo
from exports.writers.contract import ImageLoader, WriterContext, compact_json
from exports.writers.parquet import DEFAULT_ROW_GROUP_BYTES, DEFAULT_SHARD_BYTES, ParquetDatasetWriter

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


class GenaiBenchParquetWriter(ParquetDatasetWriter):
    """GenAI-Bench rows: one per judged pair, each side one grid image of its population, vote from the majority."""

    CONFIG_NAME = GENAI_BENCH_CONFIG

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
        super().__init__(
            folder / GENAI_BENCH_CONFIG,
            (GENAI_BENCH_SPLIT,),
            GENAI_BENCH_SCHEMA,
            image_columns=("left_image", "right_image"),
            max_shard_bytes=max_shard_bytes,
            row_group_bytes=row_group_bytes,
        )

    @classmethod
    def for_export(cls, context: WriterContext) -> GenaiBenchParquetWriter:
        return cls(context.folder, context.load_image)

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
        shard = self._by_split[GENAI_BENCH_SPLIT]
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
                    "left_metrics": None if row.left.metrics is None else compact_json(row.left.metrics),
                    "right_metrics": None if row.right.metrics is None else compact_json(row.right.metrics),
                },
                len(left) + len(right) + 256,
            )
