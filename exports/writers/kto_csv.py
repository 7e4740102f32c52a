"""kto-csv: Diffusion-KTO's CSV, one row per distinct image labelled by how its populations fared."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from exports.rows import TRAIN, ImageInfo, PairRow
from exports.writers.contract import PairFormatWriter, WriterContext
from exports.writers.csv_files import SplitCsvFiles

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
    """Which populations won and which lost somewhere: one byte per population id, so memory stays flat.

    The table grows to the largest id noted (doubling), so `max_population_id` is only a first size.
    """

    def __init__(self, max_population_id: int = 0) -> None:
        self._flags = bytearray(max_population_id + 1)

    def note(self, row: PairRow) -> None:
        if not row.pair.decided:
            raise ValueError(f"Diffusion-KTO has no way to express a tie ({row.pair_id}); drop ties first")
        winner, loser = row.winner_loser()
        largest = max(winner.population_id, loser.population_id)
        if largest >= len(self._flags):
            self._flags.extend(bytes(max(largest + 1, 2 * len(self._flags)) - len(self._flags)))
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
        self._csv = SplitCsvFiles(folder, splits, kto_file, KTO_COLUMNS)
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


class KtoPairWriter(PairFormatWriter):
    """kto-csv from kept pairs: labels are per image over every kept pair, so rows are written once all are in.

    The pairs only mark populations as winners and losers; `close` then streams every image the campaign
    showed (by content hash) and writes each labelled one once.
    """

    def __init__(self, context: WriterContext) -> None:
        self._context = context
        self._labels = KtoLabels()
        self._counted: dict[str, int] = {}

    @classmethod
    def for_export(cls, context: WriterContext) -> KtoPairWriter:
        return cls(context)

    def write_group(self, rows: Sequence[PairRow]) -> None:
        for row in rows:
            self._labels.note(row)

    def close(self) -> dict[str, int]:
        context = self._context
        writer = KtoCsvWriter(context.folder, context.splits)
        bar = context.progress(None, "image")
        try:
            images = (
                KtoImage(image, population_id, caption, context.split_of(caption))
                for image, population_id, caption in context.shown_images()
            )
            for item, label in kto_rows(images, self._labels):
                writer.write(item.image, item.caption, item.split, label)
                bar.update(1)
        finally:
            bar.close()
        rows = writer.close()
        self._counted = dict(writer.labels)
        return rows

    def extra_counts(self) -> dict[str, Any]:
        return {"kto_labels": self._counted}
