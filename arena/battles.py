"""Pure reading of battle logs (JSON list, JSONL, CSV, Parquet) into pairwise outcome counts, bad rows counted.

Two spellings of a battle:

- `fastchat` (Chatbot Arena's `clean_battle_*.json` and its CSV/Parquet copies): columns
  `model_a, model_b, winner` with `winner` one of `model_a, model_b, tie, tie (bothbad)`;
- `arena` (PopArena's own vote log): columns `left_model, right_model, choice` with `choice` one of
  `left, right, tie, both_bad` (the `Vote.choice` values; both_bad counts as a tie).

Other columns are ignored. Values are compared after trimming spaces, winners also case-blind. A
row is bad, and counted under the first reason that applies, when a model or the winner is missing
or empty, when the winner is not one of the four values, or when a model meets itself. Nothing is
dropped silently: `BattleLog.bad` counts every reason, with the first row numbers as examples
(rows count battles from 1; a CSV header and blank JSONL lines are not rows).
CSV, Parquet and JSONL go through pyarrow, so a million rows take well under a second; a JSON list
is parsed by the standard library.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from arena.ranking import FIRST_WINS, SECOND_WINS, TIE, IntArray, PairCounts
from core import choices

FORMATS = ("fastchat", "arena")
COLUMNS: dict[str, tuple[str, str, str]] = {
    "fastchat": ("model_a", "model_b", "winner"),
    "arena": ("left_model", "right_model", "choice"),
}
OUTCOMES: dict[str, dict[str, int]] = {
    "fastchat": {"model_a": FIRST_WINS, "model_b": SECOND_WINS, "tie": TIE, "tie (bothbad)": TIE},
    "arena": {choices.LEFT: FIRST_WINS, choices.RIGHT: SECOND_WINS, choices.TIE: TIE, choices.BOTH_BAD: TIE},
}
EXTENSIONS = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}

MISSING = "missing model or winner"
UNKNOWN = "unknown winner value"
SELF = "model against itself"
REASONS = (MISSING, UNKNOWN, SELF)
_EXAMPLES = 5


class BattleLogError(ValueError):
    """The file cannot be read as a battle log at all (missing, unknown type, unparseable, columns absent)."""


@dataclass(frozen=True)
class BattleLog:
    """What a log held: the counts of its good rows, and every bad row counted by reason."""

    counts: PairCounts
    rows: int
    used: int
    format: str
    bad: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[int]] = field(default_factory=dict)
    unknown_values: dict[str, int] = field(default_factory=dict)

    @property
    def bad_rows(self) -> int:
        return sum(self.bad.values())

    def bad_summary(self) -> str:
        """One line per reason, e.g. `3 rows: unknown winner value (rows 4, 9, 12; values 'draw' x3)`."""
        lines = []
        for reason in REASONS:
            count = self.bad.get(reason, 0)
            if not count:
                continue
            examples = self.examples.get(reason, [])
            where = ("row " if len(examples) == 1 else "rows ") + ", ".join(str(r) for r in examples)
            if count > len(examples):
                where += ", ..."
            if reason == UNKNOWN and self.unknown_values:
                where += "; values " + ", ".join(f"{v!r} x{n}" for v, n in self.unknown_values.items())
            lines.append(f"{count} {'row' if count == 1 else 'rows'}: {reason} ({where})")
        return "\n".join(lines)


def read_battle_log(path: str | Path, *, format: str = "fastchat") -> BattleLog:
    """Read a battle log file; the file type comes from its extension (.json, .jsonl/.ndjson, .csv, .parquet/.pq)."""
    if format not in FORMATS:
        raise BattleLogError(f"unknown format {format!r} (use {' or '.join(FORMATS)})")
    path = Path(path)
    kind = EXTENSIONS.get(path.suffix.lower())
    if kind is None:
        raise BattleLogError(
            f"unknown file type {path.suffix or '(none)'!r} for {path.name} (use .json, .jsonl, .csv or .parquet)"
        )
    if not path.is_file():
        raise BattleLogError(f"cannot read {path}: no such file")
    columns = COLUMNS[format]
    if kind == "csv":
        first, second, winner = _read_csv(path, columns)
    elif kind == "parquet":
        first, second, winner = _read_parquet(path, columns)
    else:
        first, second, winner = _read_json(path, columns, lines=kind == "jsonl")
    return parse_battles(first, second, winner, format=format)


def parse_battles(first: Any, second: Any, winner: Any, *, format: str = "fastchat") -> BattleLog:
    """Count battles given as three equally long columns (lists or pyarrow arrays of strings; None is missing)."""
    if format not in FORMATS:
        raise BattleLogError(f"unknown format {format!r} (use {' or '.join(FORMATS)})")
    # Every column is dictionary-encoded first and cleaned per distinct value: a million rows hold
    # a few hundred distinct strings, so trimming and matching stay cheap in time and memory.
    models: dict[str, int] = {}
    a = _codes(first, models, str.strip)
    b = _codes(second, models, str.strip)
    spellings: dict[str, int] = {}
    w = _codes(winner, spellings, lambda value: value.strip().lower())
    if not (len(a) == len(b) == len(w)):
        raise BattleLogError("the three columns differ in length")
    outcomes = OUTCOMES[format]
    spelled = list(spellings)
    code = np.array([outcomes.get(v, -1) for v in spelled] + [-1], dtype=np.int64)[w]
    missing = (a < 0) | (b < 0) | (w < 0)
    unknown = ~missing & (code < 0)
    itself = ~missing & ~unknown & (a == b)
    good = ~(missing | unknown | itself)

    bad: dict[str, int] = {}
    examples: dict[str, list[int]] = {}
    for reason, mask in ((MISSING, missing), (UNKNOWN, unknown), (SELF, itself)):
        count = int(mask.sum())
        if count:
            bad[reason] = count
            examples[reason] = (np.flatnonzero(mask)[:_EXAMPLES] + 1).tolist()
    unknown_values: dict[str, int] = {}
    if unknown.any():
        values, frequency = np.unique(w[unknown], return_counts=True)
        for i in np.argsort(-frequency, kind="stable")[:_EXAMPLES]:
            unknown_values[spelled[values[i]]] = int(frequency[i])

    a, b = a[good], b[good]
    # Only models with a usable battle are ranked, sorted so the output does not depend on row order.
    present = np.zeros(len(models), dtype=bool)
    present[a] = True
    present[b] = True
    names = sorted(name for name, i in models.items() if present[i])
    position = np.full(len(models), -1, dtype=np.int64)
    position[[models[name] for name in names]] = np.arange(len(names))
    counts = PairCounts.from_indices(names, position[a], position[b], code[good])
    return BattleLog(
        counts=counts,
        rows=len(w),
        used=int(good.sum()),
        format=format,
        bad=bad,
        examples=examples,
        unknown_values=unknown_values,
    )


def _codes(column: Any, lookup: dict[str, int], clean: Callable[[str], str]) -> IntArray:
    """One id per row, `lookup[clean(value)]` (new values join `lookup`); -1 where missing or empty."""
    if not isinstance(column, pa.Array | pa.ChunkedArray):
        column = pa.array(column, type=pa.string())
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    out = [np.zeros(0, dtype=np.int64)]
    for chunk in chunks:
        if not pa.types.is_dictionary(chunk.type):
            chunk = pc.dictionary_encode(chunk)
        ids = [-1 if v is None else _lookup(clean(str(v)), lookup) for v in chunk.dictionary.to_pylist()]
        mapping = np.array([*ids, -1], dtype=np.int64)
        out.append(mapping[chunk.indices.fill_null(len(ids)).to_numpy(zero_copy_only=False)])
    return np.concatenate(out)


def _lookup(value: str, lookup: dict[str, int]) -> int:
    if not value:
        return -1
    return lookup.setdefault(value, len(lookup))


def _missing_columns(columns: Sequence[str], present: Sequence[str], path: Path) -> BattleLogError:
    absent = [c for c in columns if c not in present]
    hint = ""
    for other, spelling in COLUMNS.items():
        if all(c in present for c in spelling):
            hint = f" (it has {', '.join(spelling)}: try --format {other})"
    return BattleLogError(f"{path.name} lacks column(s) {', '.join(absent)}{hint}")


def _read_csv(path: Path, columns: tuple[str, str, str]) -> tuple[pa.Array, pa.Array, pa.Array]:
    import pyarrow.csv as pacsv

    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BattleLogError(f"cannot parse {path.name} as CSV: {exc}") from None
    header = [h.strip() for h in header]
    if any(c not in header for c in columns):
        raise _missing_columns(columns, header, path)
    try:
        table = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                include_columns=list(columns),
                # Read as dictionaries: a million rows hold only a few hundred distinct strings.
                column_types=dict.fromkeys(columns, pa.dictionary(pa.int32(), pa.string())),
                strings_can_be_null=True,
            ),
        )
    except (pa.ArrowException, OSError) as exc:
        raise BattleLogError(f"cannot parse {path.name} as CSV: {exc}") from None
    return table[columns[0]], table[columns[1]], table[columns[2]]


def _read_parquet(path: Path, columns: tuple[str, str, str]) -> tuple[pa.Array, pa.Array, pa.Array]:
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
        if any(c not in schema.names for c in columns):
            raise _missing_columns(columns, schema.names, path)
        strings = [c for c in columns if pa.types.is_string(schema.field(c).type)]
        table = pq.read_table(path, columns=list(columns), read_dictionary=strings)
    except (pa.ArrowException, OSError) as exc:
        raise BattleLogError(f"cannot parse {path.name} as Parquet: {exc}") from None
    return table[columns[0]], table[columns[1]], table[columns[2]]


def _read_json(path: Path, columns: tuple[str, str, str], *, lines: bool) -> tuple[pa.Array, pa.Array, pa.Array]:
    if not lines:
        with path.open("rb") as handle:
            head = handle.read(4096).lstrip()
        # A .json file holding one object per line is read as JSONL rather than refused.
        lines = head.startswith(b"{")
    if lines:
        table = _read_jsonl_arrow(path, columns)
        if table is not None:
            return _json_columns(table, columns, path)
        records = _read_jsonl_python(path)
    else:
        try:
            with path.open(encoding="utf-8") as handle:
                data = json.load(handle)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BattleLogError(f"cannot parse {path.name} as JSON: {exc}") from None
        if not isinstance(data, list):
            raise BattleLogError(f"{path.name} must hold a JSON list of battles, not a {type(data).__name__}")
        records = data
    table = pa.table({c: pa.array([_json_value(r, c) for r in records], type=pa.string()) for c in columns})
    return _json_columns(table, columns, path)


def _json_columns(table: pa.Table, columns: tuple[str, str, str], path: Path) -> tuple[pa.Array, pa.Array, pa.Array]:
    # In JSON a field no row has is a wrong file, not a million bad rows.
    if table.num_rows:
        absent = [c for c in columns if table[c].null_count == table.num_rows]
        if absent:
            raise _missing_columns(columns, [c for c in columns if c not in absent], path)
    return table[columns[0]], table[columns[1]], table[columns[2]]


def _read_jsonl_arrow(path: Path, columns: tuple[str, str, str]) -> pa.Table | None:
    """The fast path; None when pyarrow refuses the file (a non-string value, a bad line) and Python should look."""
    import pyarrow.json as pajson

    schema = pa.schema([(c, pa.string()) for c in columns])
    try:
        return pajson.read_json(
            path, parse_options=pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
        )
    except (pa.ArrowException, OSError):
        return None


def _read_jsonl_python(path: Path) -> list[Any]:
    records: list[Any] = []
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise BattleLogError(f"cannot parse {path.name} line {number} as JSON: {exc}") from None
    except UnicodeDecodeError as exc:
        raise BattleLogError(f"cannot parse {path.name} as JSON lines: {exc}") from None
    return records


def _json_value(record: Any, column: str) -> str | None:
    if not isinstance(record, dict):
        return None
    value = record.get(column)
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)
