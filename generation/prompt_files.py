"""Pure reader for prompt files (CSV or JSONL with caption and category); no Django imports.

Every problem names the file, the line and the field, and nothing is returned unless the
whole file is valid, so an import either takes all prompts or none.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

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


def _read_csv(text: str, name: str) -> list[PromptRow]:
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in reader.fieldnames or []]
    if "caption" not in columns:
        raise PromptFileError(f"{name}: missing required column 'caption' (found: {', '.join(columns) or 'none'})")
    reader.fieldnames = columns
    rows = []
    for record in reader:
        where = f"{name} line {reader.line_num}"
        if None in record:
            raise PromptFileError(f"{where}: more fields than the header has columns")
        rows.append(_clean_row(record.get("caption"), record.get("category", ""), where))
    return rows


def _read_jsonl(text: str, name: str) -> list[PromptRow]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PromptFileError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise PromptFileError(f"{where}: expected an object with 'caption' and 'category'")
        if "caption" not in record:
            raise PromptFileError(f"{where}: missing required field 'caption'")
        rows.append(_clean_row(record["caption"], record.get("category", ""), where))
    return rows


def parse_prompt_file(data: bytes, name: str) -> list[PromptRow]:
    """Parse a .csv or .jsonl prompt file into unique rows, in file order."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PromptFileError(f"{name}: not UTF-8 text (byte {exc.start})") from None
    lowered = name.lower()
    if lowered.endswith((".jsonl", ".ndjson")):
        rows = _read_jsonl(text, name)
    elif lowered.endswith(".csv"):
        rows = _read_csv(text, name)
    else:
        raise PromptFileError(f"{name}: unknown prompt file type; use .csv or .jsonl")
    if not rows:
        raise PromptFileError(f"{name}: contains no prompts")
    return list(dict.fromkeys(rows))
