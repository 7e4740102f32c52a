"""participants.csv: the questionnaire's answers, one row per hashed participant, small groups suppressed.

A group is the participants who gave one answer to one question (for several-choice questions, those who
chose one option). A group smaller than k (the campaign's `min_group_size`) would single people out, so its
value is written blank: the cell says nothing, and the composition leaves the group out. Free text and
numbers rarely form groups of k, so most are suppressed: that is the rule doing its work.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.spreadsheets import spreadsheet_cell

ANSWERS_FILE = "participants.csv"
SUPPRESSED = ""
# Joins the options of a several-choice answer in one cell.
OPTION_SEPARATOR = "; "

Value = str | int | float | list[str]


def group_values(value: Value) -> list[str]:
    """The groups an answer puts a participant in: one per option of a list, else the value as text."""
    if isinstance(value, list):
        return [str(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return [str(int(value))]
    return [str(value)]


@dataclass(frozen=True)
class AnswerTable:
    columns: list[str]  # question keys, in order
    rows: list[tuple[str, list[str]]]  # (hashed participant id, one cell per column)
    composition: dict[str, dict[str, int]]  # key -> value -> participants, groups of at least k only
    suppressed: dict[str, int]  # key -> groups suppressed


def suppress_small_groups(answers: Mapping[str, Mapping[str, Value]], columns: Sequence[str], k: int) -> AnswerTable:
    """`answers`: hashed participant id -> question key -> value. Every value of a group under `k` is blanked
    (in a several-choice cell, only that option is dropped)."""
    sizes: dict[str, Counter[str]] = {key: Counter() for key in columns}
    for given in answers.values():
        for key in columns:
            if key in given:
                sizes[key].update(set(group_values(given[key])))
    kept = {key: {value for value, n in counts.items() if n >= k} for key, counts in sizes.items()}
    rows: list[tuple[str, list[str]]] = []
    for participant in sorted(answers):
        given = answers[participant]
        cells = []
        for key in columns:
            if key not in given:
                cells.append(SUPPRESSED)
                continue
            shown = [v for v in group_values(given[key]) if v in kept[key]]
            cells.append(OPTION_SEPARATOR.join(shown) if shown else SUPPRESSED)
        rows.append((participant, cells))
    composition = {key: {v: n for v, n in sorted(sizes[key].items()) if v in kept[key]} for key in columns}
    suppressed = {key: sum(1 for v in sizes[key] if v not in kept[key]) for key in columns}
    return AnswerTable(list(columns), rows, composition, suppressed)


def write_answers(folder: Path, table: AnswerTable) -> int:
    """Write participants.csv (participant, then a column per question); returns the rows written."""
    with open(folder / ANSWERS_FILE, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["participant", *table.columns])
        for participant, cells in table.rows:
            writer.writerow([participant, *(spreadsheet_cell(cell) for cell in cells)])
    return len(table.rows)
