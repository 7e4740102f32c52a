"""Stored pictures read and written through Django's storage several at a time, and an unreachable storage told apart.

Object storage answers each request after a network round trip, so code that reads a set's pictures one after
another waits for every round trip in turn; the local disk answers in microseconds. Here the requests of a batch
overlap on a few threads that outlive each call (django-storages' S3 storage keeps one boto3 connection per
thread, which a pool made afresh would have to build again every time). Results come back in the order asked,
so what callers write from them does not depend on which request finished first.

On S3-compatible storage a file is read with one GET: Storage.open() costs three requests there (django-storages
checks the object exists, then its transfer manager asks its size again before it downloads).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from django.core.files.base import ContentFile
from django.core.files.storage import Storage

from core.errors import StorageUnavailable

logger = logging.getLogger(__name__)

# Requests in flight at once: enough to hide a store's round trip, few enough for a 2-core machine's share of it.
IO_WORKERS = 8

_pool: ThreadPoolExecutor | None = None
_background: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
T = TypeVar("T")
R = TypeVar("R")


def io_pool() -> ThreadPoolExecutor:
    """The process's storage I/O threads (made on first use, kept: each keeps its storage connection)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=IO_WORKERS, thread_name_prefix="media-io")
        return _pool


def in_background(function: Callable[[T], R], item: T) -> Future[R]:
    """`function(item)` started on a thread of its own while the caller goes on (the next batch's reads while
    this one is worked on); `function` may itself use `in_parallel`. Its result or error comes from the future."""
    global _background
    with _pool_lock:
        if _background is None:
            # Not the I/O threads: a call waiting there on the reads it queued there could wait for itself.
            _background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="media-prefetch")
    return _background.submit(function, item)


def in_parallel(function: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """`function` of each item on the I/O threads, results in the items' order; the first error is raised once
    every call has ended (none is left running behind the caller's back)."""
    if len(items) <= 1:
        return [function(item) for item in items]
    futures: list[Future[R]] = [io_pool().submit(function, item) for item in items]
    errors = [f.exception() for f in futures]
    for error in errors:
        if error is not None:
            raise error
    return [f.result() for f in futures]


def _s3_client(storage: Storage) -> Any:
    """The boto3 client of a django-storages S3 storage (the process's one client for ours, core.media_storage;
    this thread's otherwise), or None for any other storage."""
    kind = storage.__class__  # (a LazyObject such as default_storage builds its storage here)
    # Not imported, so not this storage's class: local media never pays for importing boto3 (about a second).
    s3 = sys.modules.get("storages.backends.s3")
    if s3 is None or not issubclass(kind, s3.S3Storage):
        return None
    shared = getattr(storage, "client", None)
    return shared if shared is not None else storage.connection.meta.client  # type: ignore[attr-defined]


def read_stored(storage: Storage, name: str) -> bytes:
    """A stored file's bytes. FileNotFoundError if it is not there, on either storage."""
    client = _s3_client(storage)
    if client is None:
        with storage.open(name, "rb") as handle:
            return bytes(handle.read())
    from botocore.exceptions import ClientError
    from storages.utils import clean_name

    key = storage._normalize_name(clean_name(name))  # type: ignore[attr-defined]  # the key open() would read
    try:
        answer = client.get_object(Bucket=storage.bucket_name, Key=key)  # type: ignore[attr-defined]
    except ClientError as error:
        if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            raise FileNotFoundError(f"File does not exist: {name}") from None
        raise
    return bytes(answer["Body"].read())


def read_stored_many(storage: Storage, names: Sequence[str]) -> list[bytes]:
    """Each named file's bytes, in the order named, read a few at a time."""
    return in_parallel(lambda name: read_stored(storage, name), names)


def save_many(storage: Storage, files: Sequence[tuple[str, bytes]]) -> list[str]:
    """Store each (name, bytes) a few at a time; the names given to them, in order. If any fails, the files
    stored by the others are deleted again and its error is raised: all are stored or none."""
    futures = [io_pool().submit(storage.save, name, ContentFile(data)) for name, data in files]
    errors = [f.exception() for f in futures]
    failed = next((e for e in errors if e is not None), None)
    if failed is None:
        return [f.result() for f in futures]
    for future, error in zip(futures, errors, strict=True):
        if error is None:
            try:
                storage.delete(future.result())
            except Exception:  # cleanup must not hide the error that caused it
                logger.exception("could not delete orphaned image file %s", future.result())
    raise failed


def storage_unreachable(error: BaseException) -> bool:
    """Whether `error` says the media storage could not be reached, rather than that a file is missing or bad.

    Connection refused, reset or timed out (botocore's connection errors, OSError's network kinds), or object
    storage still answering 5xx after its client's retries.
    """
    if isinstance(error, StorageUnavailable):
        return True
    try:
        from botocore.exceptions import ClientError, HTTPClientError
        from botocore.exceptions import ConnectionError as BotoConnectionError
    except ImportError:
        pass
    else:
        if isinstance(error, BotoConnectionError | HTTPClientError):
            return True
        if isinstance(error, ClientError):
            return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0) >= 500
    # A missing file, or a path that is not a file, is the file's problem; permissions are the deployment's.
    not_outages = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)
    return isinstance(error, OSError) and not isinstance(error, not_outages)


def unavailable(error: BaseException, what: str) -> StorageUnavailable:
    """The error to raise for an unreachable storage; logged here once, by the exception's type alone.

    The type, not the message: botocore's messages hold the endpoint's URL, which may carry credentials.
    """
    logger.warning("media storage unreachable while %s: %s", what, type(error).__name__)
    return StorageUnavailable(
        f"the media storage cannot be reached just now ({what}); try again in {StorageUnavailable.retry_after_s} s"
    )
