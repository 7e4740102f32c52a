"""What a pair format's writer is opened with and what it hands back: the hook the format registry names. No Django."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from exports.rows import ImageInfo, PairRow, ParticipantHasher

# An image's bytes, read from storage and checked against its recorded hash.
ImageLoader = Callable[[ImageInfo], bytes]


class Progress(Protocol):
    def update(self, n: float | None = 1) -> bool | None: ...

    def close(self) -> None: ...


# (total or None, unit) -> a progress bar; the command passes tqdm.
ProgressFactory = Callable[[int | None, str], Progress]


class _NoProgress:
    def update(self, n: float | None = 1) -> bool | None:
        return None

    def close(self) -> None:
        return None


def no_progress(total: int | None, unit: str) -> Progress:
    return _NoProgress()


@dataclass(frozen=True)
class WriterContext:
    """Everything a pair format may need to write its files; each format's `for_export` takes what it uses."""

    folder: Path
    splits: tuple[str, ...]
    load_image: ImageLoader
    hasher: ParticipantHasher
    # Every image of every population the campaign showed, as (image, population id, caption), ordered by
    # content hash: Diffusion-KTO labels images, not pairs, so its writer reads them after the pairs.
    shown_images: Callable[[], Iterable[tuple[ImageInfo, int, str]]]
    # caption -> the split it falls in (exports.rows.split_for at the export's validation fraction).
    split_of: Callable[[str], str]
    progress: ProgressFactory = no_progress


@dataclass(frozen=True)
class HfLayout:
    """A Hugging Face datasets layout, as a dataset card's front matter declares it (cards.hf_yaml)."""

    config_name: str
    data_dir: str
    features: Mapping[str, Mapping[str, Any]]
    splits: Mapping[str, tuple[int, int]]  # split -> (rows, bytes)
    download_size: int


class PairFormatWriter:
    """A format written from kept pair rows, a prompt's rows at a time; `close` says how many rows each split got.

    After `close`, a format may add to the manifest's counts, warn about what it had to leave out, and
    declare a Hugging Face layout for the card's front matter; by default it does none of these.
    """

    def write_group(self, rows: Sequence[PairRow]) -> None:
        raise NotImplementedError

    def close(self) -> dict[str, int]:
        """Rows written per split."""
        raise NotImplementedError

    def extra_counts(self) -> dict[str, Any]:
        return {}

    def warnings(self) -> list[str]:
        return []

    def hf_layout(self) -> HfLayout | None:
        return None


def compact_json(value: Any) -> str:
    """JSON as the text formats write it: no spaces, non-ASCII kept."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
