"""The media storage on S3-compatible object storage: django-storages' S3 storage with one boto3 session a process.

django-storages builds a boto3 session and an S3 resource for every thread that touches the storage. A fresh
session parses botocore's service model again (80-150 ms of CPU on this project's machine, and the GIL makes
threads that start together wait for each other), so the I/O threads of generation/media_io.py paid that eight
times over before their first request. Here every thread's resource comes from one session, made once: a further
resource costs about 4 ms. boto3 sessions are not safe to make clients from concurrently, so resources are made
under a lock; each thread still has its own resource (resources are not thread-safe), as django-storages expects.

Imported only when the settings name it (media in a bucket): local media never imports boto3.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from storages.backends.s3 import S3Storage


class S3MediaStorage(S3Storage):
    """S3Storage whose threads share one boto3 session (settings: AWS_*, as for S3Storage)."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self._session_lock = threading.Lock()
        self._session: boto3.Session | None = None

    def _create_session(self) -> boto3.Session:
        # Called by S3Storage.connection (and unsigned_connection) for a thread without a resource yet; the
        # caller then makes the resource from it, which `connection` below keeps under the same lock.
        if self._session is None:
            self._session = super()._create_session()
        return self._session

    @property
    def connection(self) -> Any:
        connection = getattr(self._connections, "connection", None)
        if connection is None:
            with self._session_lock:
                connection = S3Storage.connection.fget(self)
        return connection

    @property
    def unsigned_connection(self) -> Any:
        connection = getattr(self._unsigned_connections, "connection", None)
        if connection is None:
            with self._session_lock:
                connection = S3Storage.unsigned_connection.fget(self)
        return connection

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_session_lock", None)
        state.pop("_session", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._session_lock = threading.Lock()
        self._session = None
