"""Parquet plumbing: sharded writers per split, Hugging Face feature metadata, the base of the Parquet formats."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from exports.writers.contract import HfLayout, PairFormatWriter

# Hugging Face's own default shard size; a shard is written whole before the next one starts.
DEFAULT_SHARD_BYTES = 500 * 1024 * 1024
# Rows are buffered per row group, and a row group is held about three times over while it is
# written (Python bytes, the Arrow table, the encoded pages): small enough for 1024 px images.
DEFAULT_ROW_GROUP_BYTES = 4 * 1024 * 1024
ROW_GROUP_MAX_ROWS = 1000


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


class ParquetDatasetWriter(PairFormatWriter):
    """Base of the Parquet formats: one sharded writer per split, created up front so every split exists.

    `datasets.load_dataset` refuses a split with no rows, which would make the whole dataset
    unloadable, so on close an empty split is removed whenever another split has rows.
    A format names its `datasets` configuration (`CONFIG_NAME`); its shards live in `folder`.
    """

    CONFIG_NAME = "default"

    def __init__(
        self,
        folder: Path,
        splits: Sequence[str],
        schema: pa.Schema,
        *,
        image_columns: Sequence[str] = (),
        raw_columns: Sequence[str] = (),
        max_shard_bytes: int = DEFAULT_SHARD_BYTES,
        row_group_bytes: int = DEFAULT_ROW_GROUP_BYTES,
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._folder = folder
        self._schema = schema
        self._image_columns = tuple(image_columns)
        self._rows: dict[str, int] = {}
        self._by_split = {
            split: ShardedParquetWriter(
                folder,
                split,
                schema,
                image_columns=image_columns,
                raw_columns=raw_columns,
                max_shard_bytes=max_shard_bytes,
                row_group_bytes=row_group_bytes,
            )
            for split in splits
        }
        self._removed: list[str] = []

    def close(self) -> dict[str, int]:
        """Rows written per split."""
        rows = {}
        paths = {}
        for split, writer in self._by_split.items():
            paths[split] = writer.close()
            rows[split] = writer.rows
        if any(rows.values()):
            for split, count in rows.items():
                if not count:
                    for path in paths[split]:
                        path.unlink()
                    del self._by_split[split]
                    self._removed.append(split)
        self._rows = rows
        return rows

    def split_sizes(self) -> dict[str, tuple[int, int]]:
        """(rows, in-memory bytes) per split written, as a dataset card's `dataset_info` records them."""
        return {split: (writer.rows, writer.data_bytes) for split, writer in self._by_split.items()}

    def warnings(self) -> list[str]:
        found = [
            f"the {split} split has no rows (no kept pair's caption fell into it), so it is left out: "
            "datasets cannot load an empty split"
            for split in self._removed
        ]
        if not sum(self._rows.values()):
            found.append("datasets.load_dataset refuses a dataset with no rows; read it with pyarrow or streaming=True")
        return found

    def hf_layout(self) -> HfLayout:
        return HfLayout(
            config_name=self.CONFIG_NAME,
            data_dir=self._folder.name,
            features=hf_features(self._schema, self._image_columns),
            splits=self.split_sizes(),
            download_size=sum(p.stat().st_size for p in self._folder.glob("*.parquet")),
        )
