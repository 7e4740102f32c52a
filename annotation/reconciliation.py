"""Pure parsing of a crowd platform's own record of a study: Prolific's submissions export, MTurk's batch results.

Both are CSV files the researcher downloads from the platform. Prolific's submissions export has a row
per submission with "Submission id" (the SESSION_ID it sent us), "Participant id" (the PROLIFIC_PID) and
"Status" (APPROVED, AWAITING REVIEW, RETURNED, REJECTED, TIMED-OUT, ...); older exports name them
`session_id`, `participant_id`, `status`. MTurk's batch results ("Download CSV" on the requester site)
have a row per submitted assignment with "HITId", "AssignmentId", "WorkerId" and "AssignmentStatus"
(Submitted, Approved, Rejected). Which platform a file is comes from its header; each status becomes
one of the platform statuses below (the values of annotation.models.PlatformStatus).

A file with anything wrong is refused whole: RecordError names the row (as a spreadsheet numbers it,
the header being row 1) and the column. No Django here: arena.participation matches rows to participants.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

PROLIFIC = "prolific"
MTURK = "mturk"

APPROVED = "approved"
AWAITING_REVIEW = "awaiting_review"
ACTIVE = "active"
RETURNED = "returned"
REJECTED = "rejected"
# Not a status any file gives: what a participant of ours absent from the file is marked.
UNKNOWN = "unknown"

# Prolific's statuses as its export writes them (compared upper-case, "_" and "-" read as spaces).
PROLIFIC_STATUSES = {
    "APPROVED": APPROVED,
    "PARTIALLY APPROVED": APPROVED,
    "AWAITING REVIEW": AWAITING_REVIEW,
    "ACTIVE": ACTIVE,
    "RESERVED": ACTIVE,
    "RETURNED": RETURNED,
    "TIMED OUT": RETURNED,
    "SCREENED OUT": RETURNED,
    "REJECTED": REJECTED,
}
MTURK_STATUSES = {"SUBMITTED": AWAITING_REVIEW, "APPROVED": APPROVED, "REJECTED": REJECTED}

# Column names per platform, as the platform writes them, then the header spellings each accepts
# (compared case-insensitively, "_" read as a space).
Columns = dict[str, tuple[str, tuple[str, ...]]]
PROLIFIC_COLUMNS: Columns = {
    "worker": ("Participant id", ("participant id",)),
    "assignment": ("Submission id", ("submission id", "session id")),
    "status": ("Status", ("status",)),
}
MTURK_COLUMNS: Columns = {
    "worker": ("WorkerId", ("workerid", "worker id")),
    "assignment": ("AssignmentId", ("assignmentid", "assignment id")),
    "status": ("AssignmentStatus", ("assignmentstatus", "assignment status")),
}
MAX_ROWS = 200_000


class RecordError(ValueError):
    """A platform record that cannot be read; `row` and `column` say where (None when the whole file is wrong)."""

    def __init__(self, message: str, *, row: int | None = None, column: str | None = None) -> None:
        parts = (f"row {row}" if row else "", f"column {column!r}" if column else "")
        where = ", ".join(part for part in parts if part)
        super().__init__(f"{where}: {message}" if where else message)
        self.row = row
        self.column = column


@dataclass(frozen=True)
class PlatformRow:
    """One submission (Prolific) or assignment (MTurk) of the record, with its row number in the file."""

    row: int
    worker: str
    assignment: str
    status: str  # one of APPROVED, AWAITING_REVIEW, ACTIVE, RETURNED, REJECTED


@dataclass(frozen=True)
class PlatformRecord:
    platform: str  # PROLIFIC or MTURK
    rows: tuple[PlatformRow, ...]


def _header_key(name: str) -> str:
    return " ".join(name.strip().lower().replace("_", " ").split())


def _status_key(value: str) -> str:
    return " ".join(value.strip().upper().replace("_", " ").replace("-", " ").split())


def _text(data: bytes | str) -> str:
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RecordError(f"the file is not UTF-8 text (byte {exc.start}); save it as CSV (UTF-8)") from None


def _find_columns(header: list[str], columns: Columns) -> dict[str, int] | None:
    keys = [_header_key(name) for name in header]
    found: dict[str, int] = {}
    for field, (_, spellings) in columns.items():
        index = next((i for i, key in enumerate(keys) if key in spellings), None)
        if index is None:
            return None
        found[field] = index
    return found


def parse_record(data: bytes | str) -> PlatformRecord:
    """The platform record in a CSV file's bytes (or text); RecordError naming the row and column when it is wrong."""
    reader = csv.reader(io.StringIO(_text(data), newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise RecordError("the file is empty; expected Prolific's submissions export or MTurk's batch results")
        for platform, columns, statuses in (
            (MTURK, MTURK_COLUMNS, MTURK_STATUSES),
            (PROLIFIC, PROLIFIC_COLUMNS, PROLIFIC_STATUSES),
        ):
            found = _find_columns(header, columns)
            if found is not None:
                return PlatformRecord(platform, tuple(_rows(reader, found, columns, statuses)))
    except csv.Error as exc:
        raise RecordError(f"not a readable CSV file ({exc})", row=reader.line_num or None) from None
    expected = " / ".join(
        ", ".join(repr(name) for name, _ in columns.values()) for columns in (PROLIFIC_COLUMNS, MTURK_COLUMNS)
    )
    raise RecordError(
        f"the header has neither Prolific's submission columns nor MTurk's assignment columns (expected {expected})",
        row=1,
    )


def _rows(
    reader: csv.Reader,  # type: ignore[name-defined]
    found: dict[str, int],
    columns: Columns,
    statuses: dict[str, str],
) -> list[PlatformRow]:
    rows: list[PlatformRow] = []
    for cells in reader:
        row = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue  # a blank line, as spreadsheets leave at the end
        if len(rows) >= MAX_ROWS:
            raise RecordError(f"more than {MAX_ROWS} rows; split the file", row=row)
        values: dict[str, str] = {}
        for field, index in found.items():
            name = columns[field][0]
            value = cells[index].strip() if index < len(cells) else ""
            if not value:
                raise RecordError("empty; every row needs it", row=row, column=name)
            values[field] = value
        status = statuses.get(_status_key(values["status"]))
        if status is None:
            known = ", ".join(sorted(statuses))
            raise RecordError(
                f"unknown status {values['status']!r} (expected one of {known})", row=row, column=columns["status"][0]
            )
        rows.append(PlatformRow(row, values["worker"], values["assignment"], status))
    return rows


# --- Prolific's demographic export ------------------------------------------------------------------------------

# Values Prolific writes in a demographic column instead of an answer: none of them is one.
PROLIFIC_NO_DATA = frozenset({"", "DATA_EXPIRED", "DATA EXPIRED", "CONSENT_REVOKED", "CONSENT REVOKED", "N/A"})


@dataclass(frozen=True)
class DemographicRow:
    """One participant's row of Prolific's export: their PROLIFIC_PID and each column's value, as written."""

    row: int
    worker: str
    values: dict[str, str]


def parse_demographics(data: bytes | str, *, columns: tuple[str, ...]) -> tuple[DemographicRow, ...]:
    """The rows of Prolific's export (submissions with demographics) holding the named `columns`.

    Columns are found by name as `_header_key` compares them (case, "_" and spacing ignored); the participant
    by "Participant id". RecordError names the missing column, or the row with no participant id.
    """
    reader = csv.reader(io.StringIO(_text(data), newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise RecordError("the file is empty; expected Prolific's export with demographic columns")
        keys = [_header_key(name) for name in header]
        worker_spellings = PROLIFIC_COLUMNS["worker"][1]
        worker = next((i for i, key in enumerate(keys) if key in worker_spellings), None)
        if worker is None:
            raise RecordError("the header has no 'Participant id' column: is this Prolific's export?", row=1)
        found: dict[str, int] = {}
        for column in columns:
            index = next((i for i, key in enumerate(keys) if key == _header_key(column)), None)
            if index is None:
                raise RecordError(f"the header has no column {column!r}, which a question imports from", row=1)
            found[column] = index
        rows: list[DemographicRow] = []
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if len(rows) >= MAX_ROWS:
                raise RecordError(f"more than {MAX_ROWS} rows", row=reader.line_num)
            pid = cells[worker].strip() if worker < len(cells) else ""
            if not pid:
                raise RecordError("no participant id", row=reader.line_num, column=header[worker])
            values = {column: (cells[i].strip() if i < len(cells) else "") for column, i in found.items()}
            rows.append(DemographicRow(reader.line_num, pid, values))
    except csv.Error as exc:
        raise RecordError(f"not a readable CSV file ({exc})", row=reader.line_num or None) from None
    return tuple(rows)
