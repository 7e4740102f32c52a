"""The media storage on S3-compatible object storage: django-storages' S3 storage with one boto3 session a process.

django-storages builds a boto3 session and an S3 resource for every thread that touches the storage. A fresh
session parses botocore's service model again (80-150 ms of CPU on this project's machine, and the GIL makes
threads that start together wait for each other), so the I/O threads of generation/media_io.py paid that eight
times over before their first request. Worse, Django builds `default_storage` lazily and not under a lock: eight
threads that touch it first together can each build a storage of their own. Here every resource comes from one
session per set of credentials, kept for the process: a further resource costs about 4 ms. boto3 sessions are
not safe to make clients from concurrently, so resources are made under a lock; each thread still has its own
resource (resources are not thread-safe), as django-storages expects, and reads and small writes share one
client (`client`).

Imported only when the settings name it (media in a bucket): local media never imports boto3.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from django.core.files.base import File
from storages.backends.s3 import S3Storage
from storages.utils import clean_name, is_seekable

# boto3's transfer manager splits a file into parts from this size on (TransferConfig's default).
MULTIPART_FROM = 8 * 1024 * 1024

_lock = threading.Lock()  # held while a session is made or a resource is made from one
_sessions: dict[tuple[str | None, ...], boto3.Session] = {}


class S3MediaStorage(S3Storage):
    """S3Storage whose threads and instances share one boto3 session (settings: AWS_*, as for S3Storage)."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self._client: Any = None

    def _create_session(self) -> boto3.Session:
        # Called by S3Storage.connection (and unsigned_connection) for a thread without a resource yet, under
        # _lock (below); the caller then makes the thread's resource from the session.
        key = (self.session_profile, self.access_key, self.secret_key, self.security_token)
        session = _sessions.get(key)
        if session is None:
            session = _sessions[key] = super()._create_session()
        return session

    @property
    def client(self) -> Any:
        """One boto3 S3 client for every thread (a client is thread-safe, a resource is not): what
        generation/media_io.py reads with, so a thread's first read sets nothing up."""
        client = self._client
        if client is None:
            client = self._client = self.connection.meta.client
        return client

    @property
    def connection(self) -> Any:
        return self._resource(self._connections, S3Storage.connection)

    @property
    def unsigned_connection(self) -> Any:
        return self._resource(self._unsigned_connections, S3Storage.unsigned_connection)

    def _resource(self, made: threading.local, make: property) -> Any:
        """This thread's resource in `made`, made first (by django-storages' property `make`) under the lock."""
        resource = getattr(made, "connection", None)
        if resource is None:
            with _lock:
                resource = make.fget(self)  # type: ignore[misc]
        return resource

    def _save(self, name: str, content: File) -> str:
        """A file under the multipart size in one PutObject on the shared client, with the parameters
        django-storages would send; larger files, and gzip, through django-storages' transfer manager. Its
        upload_fileobj costs 3-4 ms of CPU a file where PutObject costs about 1.4 ms (most of a gold copy's time)."""
        threshold = self.transfer_config.multipart_threshold if self.transfer_config else MULTIPART_FROM
        size = getattr(content, "size", None)
        if self.gzip or size is None or size >= threshold:
            return str(super()._save(name, content))
        cleaned = clean_name(name)
        key = self._normalize_name(cleaned)
        params = self._get_write_parameters(key, content)
        if is_seekable(content):
            content.seek(0)
        data = content.read()
        body = data.encode() if isinstance(data, str) else bytes(data)
        self.client.put_object(Bucket=self.bucket_name, Key=key, Body=body, **params)
        return str(cleaned)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_client", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._client = None
