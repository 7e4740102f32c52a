"""Pure reader for prompt files (CSV or JSONL with caption and category); no Django imports.

Every problem names the file, the line and the field (all bad lines at once, a repeated prompt
included), and nothing is returned unless the whole file is valid, so an import either takes
all prompts or none.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

MAX_CAPTION_LENGTH = 1000
MAX_CATEGORY_LENGTH = 100


class PromptFileError(ValueError):
    """A prompt file that cannot be imported; the message names where and why."""


@dataclass(frozen=True)
class PromptRow:
    caption: str
    category: str


def _clean_row(caption: object, category: object, where: str) -> PromptRow:
    if not isinstance(caption, str) or not caption.strip():
        raise PromptFileError(f"{where}: 'caption' is empty")
    if category is None:
        category = ""
    if not isinstance(category, str):
        raise PromptFileError(f"{where}: 'category' must be text, not {type(category).__name__}")
    caption, category = " ".join(caption.split()), " ".join(category.split())
    if "\x00" in caption or "\x00" in category:
        raise PromptFileError(f"{where}: contains a NUL character")
    if len(caption) > MAX_CAPTION_LENGTH:
        raise PromptFileError(f"{where}: 'caption' is {len(caption)} characters; at most {MAX_CAPTION_LENGTH}")
    if len(category) > MAX_CATEGORY_LENGTH:
        raise PromptFileError(f"{where}: 'category' is {len(category)} characters; at most {MAX_CATEGORY_LENGTH}")
    return PromptRow(caption=caption, category=category)


def _record_row(record: object, where: str) -> PromptRow:
    if not isinstance(record, dict):
        raise PromptFileError(f"{where}: expected an object with 'caption' and 'category'")
    if "caption" not in record:
        raise PromptFileError(f"{where}: missing required field 'caption'")
    return _clean_row(record["caption"], record.get("category", ""), where)


# A file with many bad lines lists this many of them, then how many more there are.
MAX_REPORTED_LINES = 20


class _Lines:
    """Rows read so far, and every line's problem (a bad line is reported, and reading goes on)."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, PromptRow]] = []
        self.problems: list[str] = []

    def add(self, number: int, read: Callable[[], PromptRow]) -> None:
        try:
            self.rows.append((number, read()))
        except PromptFileError as exc:
            self.problems.append(str(exc))


def _read_csv(text: str, name: str) -> _Lines:
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in reader.fieldnames or []]
    if "caption" not in columns:
        raise PromptFileError(f"{name}: missing required column 'caption' (found: {', '.join(columns) or 'none'})")
    reader.fieldnames = columns
    lines = _Lines()
    for record in reader:
        where = f"{name} line {reader.line_num}"

        def read(record: dict[str | None, object] = record, where: str = where) -> PromptRow:
            if None in record:
                raise PromptFileError(f"{where}: more fields than the header has columns")
            return _clean_row(record.get("caption"), record.get("category", ""), where)

        lines.add(reader.line_num, read)
    return lines


def _read_jsonl(text: str, name: str) -> _Lines:
    lines = _Lines()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name} line {number}"

        def read(line: str = line, where: str = where) -> PromptRow:
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PromptFileError(f"{where}: not valid JSON ({exc.msg})") from None
            return _record_row(record, where)

        lines.add(number, read)
    return lines


def parse_prompt_file(data: bytes, name: str) -> list[PromptRow]:
    """Parse a .csv or .jsonl prompt file into its rows, in file order; all or nothing.

    Every bad line is reported (up to MAX_REPORTED_LINES), a repeated prompt included, in one error.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PromptFileError(f"{name} line {line}: not UTF-8 text (byte {exc.start})") from None
    lowered = name.lower()
    if lowered.endswith((".jsonl", ".ndjson")):
        lines = _read_jsonl(text, name)
    elif lowered.endswith(".csv"):
        lines = _read_csv(text, name)
    else:
        raise PromptFileError(f"{name}: unknown prompt file type; use .csv or .jsonl")
    return _all_or_nothing(lines, name, where=lambda n: f"{name} line {n}", first=lambda n: f"line {n}")


def parse_prompt_records(records: Sequence[object], name: str = "prompts") -> list[PromptRow]:
    """The rows of a list of {"caption", "category"} objects (an API request), by the rules of a prompt file."""
    lines = _Lines()
    for index, record in enumerate(records):
        where = f"{name}[{index}]"

        lines.add(index, partial(_record_row, record, where))
    return _all_or_nothing(lines, name, where=lambda n: f"{name}[{n}]", first=lambda n: f"{name}[{n}]")


def _all_or_nothing(
    lines: _Lines, name: str, *, where: Callable[[int], str], first: Callable[[int], str]
) -> list[PromptRow]:
    """The distinct rows in order, or one error listing every bad or repeated row."""
    first_seen: dict[PromptRow, int] = {}
    for number, row in lines.rows:
        if row in first_seen:
            lines.problems.append(
                f"{where(number)}: repeats {first(first_seen[row])} ({row.caption!r}, category {row.category!r})"
            )
        else:
            first_seen[row] = number
    if lines.problems:
        shown = lines.problems[:MAX_REPORTED_LINES]
        more = len(lines.problems) - len(shown)
        raise PromptFileError("; ".join(shown) + (f"; and {more} more" if more else ""))
    if not first_seen:
        raise PromptFileError(f"{name}: contains no prompts")
    return list(first_seen)
