"""CSV plumbing shared by the per-split CSV formats (popalign-csv, kto-csv)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any


class SplitCsvFiles:
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
