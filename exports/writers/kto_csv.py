"""kto-csv: Diffusion-KTO's CSV, one row per distinct image labelled by how its populations fared."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from exports.rows import TRAIN, ImageInfo, PairRow
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
