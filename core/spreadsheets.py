"""Cells of CSV files meant for people: text a spreadsheet program would run as a formula is made plain text. Pure.

Excel, LibreOffice and Google Sheets treat a cell that starts with `=`, `+`, `-` or `@` as a formula,
and some act on a leading tab or carriage return too, so a caption such as `=HYPERLINK("http://x", "click")`
or a category `@SUM(1+1)` would run when a researcher opens the file. OWASP's advice (CSV injection) is
followed: such a text cell gets a single quote in front, which the programs show as text and do not
display. Only text is touched: numbers (a negative rating, say) stay numbers.

This is for human-facing CSVs only (votes.csv, leaderboard.csv, the quality report, rank_battles --out).
Trainer formats (popalign-csv, kto-csv, the Parquet and JSONL exports) keep captions exactly as stored:
they are read by training code, where a quote would change the caption the model is conditioned on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

# What makes a spreadsheet program read a cell as a formula (or act on it), per OWASP.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"

T = TypeVar("T")


def spreadsheet_cell(value: T) -> T | str:
    """`value` as a cell that no spreadsheet program runs: text starting with a formula character is quoted."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return QUOTE + value
    return value


def spreadsheet_row(values: Iterable[T]) -> list[T | str]:
    """Every cell of a row through `spreadsheet_cell`."""
    return [spreadsheet_cell(value) for value in values]
