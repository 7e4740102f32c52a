"""popalign-csv: PopAlign's trainer CSV, one row per sample pair of a judged pair of populations."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from exports.rows import TRAIN, PairRow
from exports.writers.contract import PairFormatWriter, WriterContext
from exports.writers.csv_files import SplitCsvFiles

POPALIGN_COLUMNS = ["jpg_0", "jpg_1", "caption", "label", "comparison_id", "population_w_id", "population_l_id"]


def popalign_file(split: str) -> str:
    return f"{split}.csv"


class PopalignCsvWriter(PairFormatWriter):
    """PopAlign's trainer input: `label` is always 0 because `jpg_0` is always from the winning population."""

    def __init__(self, folder: Path, splits: Sequence[str] = (TRAIN,)) -> None:
        self._csv = SplitCsvFiles(folder, splits, popalign_file, POPALIGN_COLUMNS)

    @classmethod
    def for_export(cls, context: WriterContext) -> PopalignCsvWriter:
        return cls(context.folder, context.splits)

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
