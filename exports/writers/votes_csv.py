"""votes-csv and leaderboard-csv: the raw vote log and the leaderboard at export time.

Both are read by people in spreadsheet programs, so their text cells go through
core.spreadsheets.spreadsheet_cell (a caption `=HYPERLINK(...)` is written `'=HYPERLINK(...)`).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from core.spreadsheets import spreadsheet_cell, spreadsheet_row
from exports.rows import OUTCOMES, TRAIN, Moment, ParticipantHasher, iso_moment

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
    # The version of the campaign's consent the participant had accepted when they voted (blank: none asked).
    "consent_version",
]

# A participant id and a vote's time (ISO 8601) -> the consent version in force then, or None.
ConsentLookup = Callable[[int, str], "int | None"]


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

    def __init__(
        self,
        folder: Path,
        hasher: ParticipantHasher,
        measure_columns: Sequence[str] = (),
        consent: ConsentLookup | None = None,
    ) -> None:
        self._file = open(folder / VOTES_FILE, "w", encoding="utf-8", newline="")  # noqa: SIM115
        self._writer = csv.writer(self._file, lineterminator="\n")
        self._measures = list(measure_columns)
        sides = [f"{side}_{name}" for side in ("left", "right") for name in self._measures]
        self._writer.writerow(VOTES_COLUMNS + sides)
        self._hasher = hasher
        self._consent = consent
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
        # The text cells people or studies wrote go through it; the rest are numbers, hashes and fixed words.
        cell = spreadsheet_cell
        consent = self._consent
        for v in votes:
            if v.choice not in OUTCOMES:
                raise ValueError(f"unknown vote choice {v.choice!r}")
            voted_at = iso_moment(v.created_at)
            version = None if consent is None else consent(v.participant_id, voted_at)
            rows.append(
                (
                    v.vote_id,
                    voted_at,
                    cell(v.criterion),
                    v.comparison_id,
                    hashed(v.participant_id),
                    cell(v.participant_kind),
                    int(v.participant_flagged),
                    v.prompt_id,
                    cell(v.caption),
                    cell(v.category),
                    v.left_population_id,
                    v.right_population_id,
                    cell(v.left_generator),
                    cell(v.right_generator),
                    v.choice,
                    v.dwell_ms,
                    int(v.is_gold),
                    "" if v.repeat_of_id is None else v.repeat_of_id,
                    "" if version is None else version,
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
                cells = [criterion, *(_blank_none(row.get(c)) for c in LEADERBOARD_COLUMNS[1:])]
                writer.writerow(spreadsheet_row(cells))
                count += 1
    return {TRAIN: count}


def _blank_none(value: Any) -> Any:
    return "" if value is None else value
