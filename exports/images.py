"""The images an export reads from media storage: verified by hash, cached, copied into the export once each."""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from django.core.files.storage import Storage
from django.db.models import FileField

from exports.errors import OPTION, ExportError
from exports.rows import ImageInfo
from generation.media_io import IO_WORKERS, in_parallel, read_stored, storage_unreachable, unavailable
from generation.models import Image

IMAGE_CACHE_BYTES = 4 * 1024 * 1024
# What a cached image costs beyond its bytes (its key, the bytes object, the dict slot):
# with small images this, not the data, is most of the cache.
IMAGE_CACHE_OVERHEAD = 300
# Content hashes remembered as copied; older ones are checked on disk instead.
COPIED_MEMORY = 100_000


def image_storage() -> Storage:
    """The storage that generation.Image files live in (local media or S3-compatible)."""
    field = Image._meta.get_field("file")
    assert isinstance(field, FileField)
    return field.storage


# --- images -----------------------------------------------------------------------------------------------


class _BadImage(Exception):
    def __init__(self, image: ImageInfo, why: str) -> None:
        super().__init__(f"{image.storage_name} ({why})")
        self.name = image.storage_name
        self.why = why


class ImageSource:
    """Reads images from media storage (verifying their hash) and copies each into an export once, by content hash.

    Reads and writes of a batch run on generation.media_io's threads (IO_WORKERS at a time, each holding one
    image): file and network I/O release the GIL, and remote storage answers each request with a round trip.
    A storage that cannot be reached stops the export (StorageUnavailable): leaving out every pair whose images
    it could not read then would make a whole-looking export of whatever answered before the outage.
    """

    def __init__(self, storage: Storage, folder: Path, *, skip_missing: bool) -> None:
        self._storage = storage
        self._folder = str(folder)
        self._skip_missing = skip_missing
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_bytes = 0
        # Hashes copied so far, newest last; while none has been forgotten this is the whole set,
        # so only a larger export pays a stat() per image to find out what it already holds.
        self._copied: OrderedDict[str, None] = OrderedDict()
        self._forgot = False
        self._dirs: set[str] = set()
        self.copied = 0
        self.missing: dict[str, str] = {}

    def close(self) -> None:
        """Nothing to release: every batch's reads have ended when check() or copy() returns."""

    def _fetch(self, image: ImageInfo) -> bytes:
        if image.storage_name in self.missing:
            raise _BadImage(image, self.missing[image.storage_name])
        try:
            data = read_stored(self._storage, image.storage_name)
        except FileNotFoundError:
            raise _BadImage(image, "missing from media storage") from None
        except Exception as exc:  # remote storages raise their own error types for a missing or unreadable key
            if storage_unreachable(exc):
                raise unavailable(exc, "reading an export's images") from None
            raise _BadImage(image, f"unreadable: {exc}") from None
        if hashlib.sha256(data).hexdigest() != image.sha256:
            raise _BadImage(image, "content does not match its recorded sha256")
        return bytes(data)

    def _try_fetch(self, image: ImageInfo) -> bytes | _BadImage:
        try:
            return self._fetch(image)
        except _BadImage as bad:
            return bad

    def _remember(self, image: ImageInfo, data: bytes) -> None:
        self._cache[image.sha256] = data
        self._cache_bytes += len(data) + IMAGE_CACHE_OVERHEAD
        while self._cache_bytes > IMAGE_CACHE_BYTES and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cache_bytes -= len(old) + IMAGE_CACHE_OVERHEAD

    def read(self, image: ImageInfo) -> bytes:
        data = self._cache.get(image.sha256)
        if data is not None:
            self._cache.move_to_end(image.sha256)
            return data
        data = self._fetch(image)
        self._remember(image, data)
        return data

    def _refuse(self, bad: _BadImage) -> bool:
        self.missing[bad.name] = bad.why
        if not self._skip_missing:
            raise ExportError(
                f"image file {bad.name} is {bad.why}; pass {OPTION} to leave out the pairs that show it",
                option="skip_missing",
            )
        return False

    def _usable(self, images: Sequence[ImageInfo], bad: dict[str, _BadImage]) -> bool:
        for image in images:
            found = bad.get(image.sha256)
            if found is not None:
                return self._refuse(found)
        return True

    def check(self, rows: Sequence[Sequence[ImageInfo]]) -> list[bool]:
        """Whether each row's images can all be read; they are read, a few at a time in parallel, into the cache."""
        pending = list({i.sha256: i for images in rows for i in images if i.sha256 not in self._cache}.values())
        bad: dict[str, _BadImage] = {}
        for start in range(0, len(pending), IO_WORKERS):
            batch = pending[start : start + IO_WORKERS]
            for image, data in zip(batch, in_parallel(self._try_fetch, batch), strict=True):
                if isinstance(data, _BadImage):
                    bad[image.sha256] = data
                else:
                    self._remember(image, data)
        return [self._usable(images, bad) for images in rows]

    def _is_copied(self, image: ImageInfo) -> bool:
        if image.sha256 in self._copied:
            return True
        return self._forgot and os.path.exists(os.path.join(self._folder, image.path))

    def _copy_one(self, image: ImageInfo) -> _BadImage | None:
        try:
            data = self._fetch(image)
        except _BadImage as bad:
            return bad
        with open(os.path.join(self._folder, image.path), "wb") as handle:
            handle.write(data)
        return None

    def copy(self, rows: Sequence[Sequence[ImageInfo]]) -> list[bool]:
        """Copy the images of each row not yet in the export; whether each row's images are all there.

        Each thread holds one image at a time. A row with a bad image is refused, and copies
        that only it needed are removed again, so a left-out pair leaves no files behind.
        """
        pending = {i.sha256: i for images in rows for i in images if not self._is_copied(i)}
        for image in pending.values():
            folder = os.path.join(self._folder, os.path.dirname(image.path))
            if folder not in self._dirs:
                os.makedirs(folder, exist_ok=True)
                self._dirs.add(folder)
        results = dict(zip(pending, in_parallel(self._copy_one, list(pending.values())), strict=True))
        bad = {sha: result for sha, result in results.items() if result is not None}
        usable = [self._usable(images, bad) for images in rows]
        needed = {i.sha256 for images, ok in zip(rows, usable, strict=True) if ok for i in images}
        for sha, result in results.items():
            if result is not None:
                continue
            if sha in needed:
                self._copied[sha] = None
                self.copied += 1
                if len(self._copied) > COPIED_MEMORY:
                    self._copied.popitem(last=False)
                    self._forgot = True
            else:
                os.remove(os.path.join(self._folder, pending[sha].path))
        return usable
