"""Image sets made elsewhere, read for import: their rows, image bytes and every problem named by its row. No Django.

Three layouts, as Hugging Face writes them (https://huggingface.co/docs/datasets/image_dataset):
- an ImageFolder: image files and a `metadata.jsonl` or `metadata.csv` beside them (in the folder or any folder
  under it), one row per image with `file_name` (relative to the metadata file), `prompt`, `generator` and
  optionally `seed` and `set`;
- Parquet files (one file, or every `*.parquet` under a folder) with an image column and the same fields;
- a `datasets` `save_to_disk` folder (`state.json` beside Arrow files; a DatasetDict's splits in folders under a
  `dataset_dict.json`), read with pyarrow alone, so `datasets` is not needed to import.
An image column is `image` (or the one column of images): `datasets.Image`'s `{"bytes", "path"}` struct, or bytes.
A zip of any of these is read as the folder it holds (`read_import_zip`).

Rows are numbered as a person finds them: a metadata file's line (a CSV's header is line 1), a table's row from 0
(as `dataset[i]`). Nothing here knows campaigns or decodes images: annotation.importing checks rows against a
campaign and generation.image_files decodes them.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

METADATA_FILES = ("metadata.jsonl", "metadata.csv")
IMAGE_COLUMN = "image"
REQUIRED_FIELDS = ("prompt", "generator")
# A zip upload unpacks to at most this much (a thousand 1024 px PNGs are about 1.5 GB) and this many files.
MAX_ZIP_BYTES = 4 * 2**30
MAX_ZIP_FILES = 100_000
MAX_SEED = 2**63 - 1  # Image.seed is a signed 64-bit integer


class ImportFileError(ValueError):
    """The import as a whole cannot be read (no layout recognised, an unreadable table, a bad zip)."""


@dataclass(frozen=True)
class ImportProblem:
    """One bad row (or file), named where a person finds it."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True)
class ImportRow:
    """One image to import with what the import says of it."""

    where: str  # "metadata.jsonl line 4", "images.parquet row 3"
    source: str  # the metadata or table file, relative to the import's root
    row: int  # the line (metadata) or row (tables) number in `where`
    file_name: str  # the image file (folders) or the image's recorded path (tables; may be "")
    data: bytes
    prompt: str
    generator: str
    seed: int | None = None
    set: str | None = None

    @property
    def provenance(self) -> dict[str, Any]:
        """What Image.provenance records of an imported image: where it came from and what it said."""
        return {
            "kind": "import",
            "source": self.source,
            "row": self.row,
            "file_name": self.file_name,
            "generator": self.generator,
            "prompt": self.prompt,
            "seed": self.seed,
            "set": self.set,
        }


@dataclass
class ImportRead:
    rows: list[ImportRow] = field(default_factory=list)
    problems: list[ImportProblem] = field(default_factory=list)

    def extend(self, other: ImportRead) -> None:
        self.rows.extend(other.rows)
        self.problems.extend(other.problems)


def read_import(path: Path) -> ImportRead:
    """Every row of the import at `path` (a folder, a .parquet file or a .zip), and every bad row's problem."""
    if path.is_file() and path.suffix.lower() == ".zip":
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ImportFileError(f"cannot read {path.name}: {exc.strerror}") from None
        return read_import_zip(data)
    if path.is_file() and path.suffix.lower() == ".parquet":
        return _read_parquet(path, path.parent)
    if not path.is_dir():
        raise ImportFileError(f"{path} is not a folder, a .parquet file or a .zip")
    return _read_folder(path)


def read_import_zip(data: bytes | IO[bytes]) -> ImportRead:
    """read_import of the folder a zip holds; members that would land outside it, or too many bytes, refuse it."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ImportFileError(f"not a readable zip file ({exc})") from None
    with archive, tempfile.TemporaryDirectory(prefix="poparena-import-") as folder:
        members = archive.infolist()
        if len(members) > MAX_ZIP_FILES:
            raise ImportFileError(f"the zip holds {len(members)} files; at most {MAX_ZIP_FILES} are read")
        if sum(member.file_size for member in members) > MAX_ZIP_BYTES:
            raise ImportFileError(f"the zip unpacks to more than {MAX_ZIP_BYTES // 2**30} GiB")
        root = Path(folder)
        for member in members:
            name = PurePosixPath(member.filename)
            if name.is_absolute() or ".." in name.parts or "\\" in member.filename:
                raise ImportFileError(f"the zip member {member.filename!r} would land outside the import folder")
            if member.is_dir():
                continue
            if name.parts[0] == "__MACOSX" or name.name.startswith("._"):
                continue  # macOS's resource forks beside the real files
            target = root.joinpath(*name.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(member) as source, target.open("wb") as sink:
                    sink.write(source.read())
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise ImportFileError(f"the zip member {member.filename!r} cannot be read ({exc})") from None
        return _read_folder(root)


# --- layouts ---------------------------------------------------------------------------------------------------


def _read_folder(root: Path) -> ImportRead:
    """A save_to_disk folder, an ImageFolder or Parquet files, whichever the folder holds (in that order)."""
    states = sorted(root.rglob("state.json"))
    if states:
        read = ImportRead()
        for state in states:
            read.extend(_read_saved_dataset(state.parent, root))
        return read
    metadata = sorted(p for name in METADATA_FILES for p in root.rglob(name))
    if metadata:
        read = ImportRead()
        for path in metadata:
            read.extend(_read_metadata(path, root))
        return read
    tables = sorted(root.rglob("*.parquet"))
    if tables:
        read = ImportRead()
        for table in tables:
            read.extend(_read_parquet(table, root))
        return read
    raise ImportFileError(
        "no import found: give images with a metadata.jsonl or metadata.csv (file_name, prompt, generator[, seed, "
        "set]), Parquet files, or a datasets save_to_disk folder"
    )


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def _read_metadata(path: Path, root: Path) -> ImportRead:
    """An ImageFolder's metadata file: one row per image, `file_name` relative to the metadata's folder."""
    source = _relative(path, root)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return ImportRead(problems=[ImportProblem(source, f"cannot be read as UTF-8 text ({exc})")])
    records: Iterable[tuple[int, Any]]
    records = _jsonl_records(text) if path.suffix == ".jsonl" else _csv_records(text)
    read = ImportRead()
    base = path.parent.resolve()
    for line, record in records:
        where = f"{source} line {line}"
        if isinstance(record, ImportProblem):
            read.problems.append(ImportProblem(where, record.message))
            continue
        fields, problems = _fields(record, require_file_name=True)
        data = b""
        if fields.get("file_name"):
            image_path = (base / str(fields["file_name"])).resolve()
            if not image_path.is_relative_to(root.resolve()):
                problems.append(f"file_name {fields['file_name']!r} is outside the import folder")
            elif not image_path.is_file():
                problems.append(f"no image file {fields['file_name']!r} beside {path.name}")
            else:
                data = image_path.read_bytes()
        if problems:
            read.problems.append(ImportProblem(where, "; ".join(problems)))
            continue
        read.rows.append(_row(where, source, line, fields, data))
    return read


def _jsonl_records(text: str) -> Iterator[tuple[int, Any]]:
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            yield line, ImportProblem("", f"not valid JSON ({exc.msg})")
            continue
        yield line, record if isinstance(record, dict) else ImportProblem("", "not a JSON object")


def _csv_records(text: str) -> Iterator[tuple[int, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    for record in reader:
        # A CSV's header is line 1; the reader counts physical lines, so quoted newlines keep the numbers right.
        if not any((value or "").strip() for value in record.values() if isinstance(value, str)):
            continue
        yield reader.line_num, {key: value for key, value in record.items() if key is not None}


def _fields(record: Mapping[str, Any], *, require_file_name: bool) -> tuple[dict[str, Any], list[str]]:
    """The row's fields, cleaned, and what is wrong with them (each problem once)."""
    problems: list[str] = []
    fields: dict[str, Any] = {}
    wanted = ("file_name", *REQUIRED_FIELDS) if require_file_name else REQUIRED_FIELDS
    for name in wanted:
        value = record.get(name)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"no {name}")
        else:
            fields[name] = value.strip() if name != "prompt" else " ".join(value.split())
    if not require_file_name and isinstance(record.get("file_name"), str):
        fields["file_name"] = record["file_name"]
    seed = record.get("seed")
    if seed is None or (isinstance(seed, str) and not seed.strip()):
        fields["seed"] = None
    else:
        parsed = _seed(seed)
        if parsed is None:
            problems.append(f"seed {seed!r} is not a whole number from 0 to {MAX_SEED}")
        fields["seed"] = parsed
    label = record.get("set")
    fields["set"] = None if label is None or (isinstance(label, str) and not label.strip()) else str(label).strip()
    return fields, problems


def _seed(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            return None
    return value if isinstance(value, int) and 0 <= value <= MAX_SEED else None


def _row(where: str, source: str, row: int, fields: Mapping[str, Any], data: bytes) -> ImportRow:
    return ImportRow(
        where=where,
        source=source,
        row=row,
        file_name=str(fields.get("file_name") or ""),
        data=data,
        prompt=fields["prompt"],
        generator=fields["generator"],
        seed=fields["seed"],
        set=fields["set"],
    )


def _read_parquet(path: Path, root: Path) -> ImportRead:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise ImportFileError(f"{_relative(path, root)} is not a readable Parquet file ({exc})") from None
    return _read_table(table, _relative(path, root))


def _read_saved_dataset(folder: Path, root: Path) -> ImportRead:
    """A `datasets` save_to_disk folder: the Arrow stream files its state.json lists, in order."""
    import pyarrow as pa

    state_path = folder / "state.json"
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
        names = [entry["filename"] for entry in state["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ImportFileError(f"{_relative(state_path, root)} is not a datasets state file ({exc})") from None
    read = ImportRead()
    for name in names:
        path = folder / name
        if not path.resolve().is_relative_to(folder.resolve()):
            raise ImportFileError(f"{_relative(state_path, root)} names a file outside its folder: {name!r}")
        try:
            with pa.memory_map(str(path)) as source:
                table = pa.ipc.open_stream(source).read_all()
        except (pa.ArrowException, OSError) as exc:
            raise ImportFileError(f"{_relative(path, root)} is not a readable Arrow file ({exc})") from None
        read.extend(_read_table(table, _relative(path, root)))
    return read


def _image_column(names: list[str], types: Mapping[str, Any]) -> str | None:
    if IMAGE_COLUMN in names:
        return IMAGE_COLUMN
    import pyarrow as pa

    images = [
        name
        for name in names
        if (pa.types.is_struct(types[name]) and types[name].get_field_index("bytes") >= 0)
        or pa.types.is_binary(types[name])
        or pa.types.is_large_binary(types[name])
    ]
    return images[0] if len(images) == 1 else None


def _read_table(table: Any, source: str) -> ImportRead:
    """Rows of a Parquet or Arrow table with an image column (bytes, or datasets.Image's {bytes, path})."""
    names = list(table.column_names)
    types = {name: table.schema.field(name).type for name in names}
    column = _image_column(names, types)
    missing = [name for name in REQUIRED_FIELDS if name not in names]
    if column is None:
        missing.insert(0, f"an {IMAGE_COLUMN!r} column of image bytes")
    if missing:
        raise ImportFileError(f"{source} has no {', '.join(missing)} (its columns: {', '.join(names)})")
    read = ImportRead()
    for number, record in enumerate(table.to_pylist()):
        where = f"{source} row {number}"
        fields, problems = _fields(record, require_file_name=False)
        image = record.get(column)
        data = b""
        if isinstance(image, dict):
            data = image.get("bytes") or b""
            if not fields.get("file_name") and isinstance(image.get("path"), str):
                fields["file_name"] = image["path"]
        elif isinstance(image, bytes):
            data = image
        if not data:
            problems.append(f"no image bytes in the {column!r} column")
        if problems:
            read.problems.append(ImportProblem(where, "; ".join(problems)))
            continue
        read.rows.append(_row(where, source, number, fields, data))
    return read
