"""pickapic-parquet: the Pick-a-Pic v2 dataset layout (Diffusion-DPO, reward models), image bytes embedded."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from exports.rows import BOTH_BAD, LEFT, RIGHT, TIE, TRAIN, PairRow, ParticipantHasher, count_sample_rows
from exports.writers.contract import ImageLoader, WriterContext
from exports.writers.parquet import DEFAULT_ROW_GROUP_BYTES, DEFAULT_SHARD_BYTES, ParquetDatasetWriter

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


class PickapicParquetWriter(ParquetDatasetWriter):
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
        super().__init__(
            folder / self.DATA_DIR,
            splits,
            PICKAPIC_SCHEMA,
            raw_columns=("jpg_0", "jpg_1"),
            max_shard_bytes=max_shard_bytes,
            row_group_bytes=row_group_bytes,
        )

    @classmethod
    def for_export(cls, context: WriterContext) -> PickapicParquetWriter:
        return cls(context.folder, context.load_image, context.hasher, context.splits)

    def write_group(self, rows: Sequence[PairRow]) -> None:
        if not rows:
            return
        per_prompt = count_sample_rows(rows)
        for row in rows:
            shard = self._by_split[row.split]
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
