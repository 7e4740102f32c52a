"""Delivery: a finished export folder as a zip stream, built while it is sent."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_DEFLATE_SUFFIXES = {".csv", ".jsonl", ".json", ".md"}
ZIP_CHUNK = 1024 * 1024


class _Sink(io.RawIOBase):
    """An unseekable stream that hands back what was written since the last take()."""

    def __init__(self) -> None:
        super().__init__()
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def iter_zip(folder: Path, prefix: str) -> Iterator[bytes]:
    """A zip of the folder as a stream of chunks, built as it is sent: never whole in memory or on disk.

    Images and Parquet are stored as they are (already compressed); text files are deflated.
    """
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", allowZip64=True) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo.from_file(path, f"{prefix}/{path.relative_to(folder).as_posix()}")
            info.compress_type = zipfile.ZIP_DEFLATED if path.suffix in _DEFLATE_SUFFIXES else zipfile.ZIP_STORED
            with open(path, "rb") as source, archive.open(info, "w") as target:
                while chunk := source.read(ZIP_CHUNK):
                    target.write(chunk)
                    yield sink.take()
            yield sink.take()
    yield sink.take()
