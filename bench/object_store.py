"""moto's standalone S3 server with a write-ahead journal on disk (the storage host of bench/cluster.py's rehearsal).

moto keeps buckets in memory: stopped and started again, it would come back empty, which no real object store
does. Run through this script, every write it acknowledges is on disk first: a request that creates or deletes a
bucket, or stores, copies or deletes an object, appends the new state of what it touched to --journal (the
object's bytes and metadata, or its absence) and fsyncs it before its answer is sent. On start the journal is
replayed (a record torn by a kill mid-append, never acknowledged, is dropped) and rewritten compacted, and only
then is --address:--port opened; until then connections are refused. So whatever ends the process (SIGTERM,
SIGKILL, a crash, the machine's OOM killer), a restart answers with everything it had acknowledged, as a real
store restarting from its disk does.

    python bench/object_store.py --address 198.18.0.7 --port 9000 --journal /tmp/.../s3.journal

It prints "ready ADDRESS:PORT (N objects loaded)" once it serves, and "stopped (N objects kept)" when SIGTERM or
SIGINT has stopped it (requests under way get up to --drain-s to finish; nothing needs saving).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from werkzeug.serving import BaseWSGIServer, make_server


def backend() -> Any:
    """moto's S3 backend of this process (its default account, the `aws` partition)."""
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    return s3_backends[DEFAULT_ACCOUNT_ID]["aws"]


# --- the journal ---------------------------------------------------------------------------------------------------
# One record a line of JSON, an object's bytes right after its line: {"bucket", "region"} (the bucket exists),
# {"bucket", "gone": true} (it does not), {"bucket", "key", "metadata", "size", "crc32"} + size bytes (the object
# holds these), {"bucket", "key", "gone": true} (the object does not exist). Each record is the state after a
# request, so replaying them in order rebuilds the last state whatever order concurrent requests ran in.


class JournalError(Exception):
    """The journal cannot be read back (not a torn last record: damage before the end)."""


def read_records(path: Path) -> tuple[list[tuple[dict[str, Any], bytes]], int]:
    """Every whole record of the journal in order, and the length of the whole part (a torn tail is left out)."""
    records: list[tuple[dict[str, Any], bytes]] = []
    if not path.exists():
        return records, 0
    data = path.read_bytes()
    at = 0
    while at < len(data):
        end = data.find(b"\n", at)
        if end < 0:
            break  # a header cut short
        try:
            header = json.loads(data[at:end])
        except ValueError:
            if data.find(b"\n", end + 1) >= 0:
                raise JournalError(f"{path}: record at byte {at} is not JSON, and records follow it") from None
            break
        body = data[end + 1 : end + 1 + header.get("size", 0)]
        if len(body) < header.get("size", 0) or ("crc32" in header and zlib.crc32(body) != header["crc32"]):
            break  # its bytes cut short or half written: it was never acknowledged
        records.append((header, body))
        at = end + 1 + len(body)
    return records, at


def encode(header: dict[str, Any], body: bytes = b"") -> bytes:
    if "key" in header and not header.get("gone"):
        header = {**header, "size": len(body), "crc32": zlib.crc32(body)}
    return json.dumps(header).encode() + b"\n" + body


def replay(records: list[tuple[dict[str, Any], bytes]]) -> int:
    """Put the journal's state into moto's backend; the objects it holds."""
    store = backend()
    for header, body in records:
        name = header["bucket"]
        if "key" not in header:
            if header.get("gone"):
                store.buckets.pop(name, None)
            elif name not in store.buckets:
                store.create_bucket(name, header["region"])
        elif header.get("gone"):
            if name in store.buckets and header["key"] in store.buckets[name].keys:
                store.buckets[name].keys.pop(header["key"])
        else:
            stored = store.put_object(name, header["key"], body)
            stored.set_metadata(dict(header["metadata"]))
            stored.etag  # noqa: B018 (computed once here: see Journal.record)
    return sum(len(bucket.keys) for bucket in store.buckets.values())


def snapshot() -> Iterator[bytes]:
    """The backend's state as journal records (a compacted journal)."""
    for name, bucket in list(backend().buckets.items()):
        yield encode({"bucket": name, "region": bucket.region_name})
        for key, stored in list(bucket.keys.items()):
            yield encode({"bucket": name, "key": key, "metadata": dict(stored.metadata)}, stored.value)


def rewrite(path: Path) -> None:
    """Replace the journal by a snapshot of the backend, atomically and durably."""
    staging = path.with_name(path.name + ".compacting")
    with open(staging, "wb") as out:
        for record in snapshot():
            out.write(record)
        out.flush()
        os.fsync(out.fileno())
    os.replace(staging, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class Journal:
    """Appends the state of what each request touched, fsynced before the request's answer goes out."""

    def __init__(self, path: Path) -> None:
        self.file: IO[bytes] = open(path, "ab")  # noqa: SIM115 (open while the server runs)
        self.lock = threading.Lock()
        self.touched = threading.local()

    def touch(self, bucket: str, key: str | None = None) -> None:
        """Note that the current request changed this bucket (key None) or object."""
        if not hasattr(self.touched, "items"):
            self.touched.items = []
        self.touched.items.append((bucket, key))

    def commit(self) -> None:
        """Write the current state of everything the current request touched, and fsync it."""
        items = getattr(self.touched, "items", [])
        self.touched.items = []
        if not items:
            return
        store = backend()
        with self.lock:  # reading the state and appending it are one step: the journal's order is the store's
            for bucket_name, key in dict.fromkeys(items):
                bucket = store.buckets.get(bucket_name)
                if key is None:
                    header = {"bucket": bucket_name, **({"region": bucket.region_name} if bucket else {"gone": True})}
                    self.file.write(encode(header))
                    continue
                stored = bucket.keys.get(key) if bucket is not None else None
                if stored is None or not hasattr(stored, "value"):  # absent, or a delete marker
                    self.file.write(encode({"bucket": bucket_name, "key": key, "gone": True}))
                    continue
                # moto computes an object's ETag lazily from the same buffer that GET reads under a lock the
                # ETag does not take: two first reads at once could get a shifted body. Computed here, before
                # anyone reads it, it is cached.
                stored.etag  # noqa: B018
                header = {"bucket": bucket_name, "key": key, "metadata": dict(stored.metadata)}
                self.file.write(encode(header, stored.value))
            self.file.flush()
            descriptor = self.file.fileno()
        # Outside the lock: concurrent writers' fsyncs overlap, and each covers the bytes written before it.
        os.fsync(descriptor)

    def watch(self, store: Any) -> None:
        """Wrap the backend's writes (every PUT, copy, multipart completion and delete goes through these four)."""

        def wrap(name: str, touched: Callable[..., tuple[str, str | None]]) -> None:
            original = getattr(store, name)

            def wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    return original(*args, **kwargs)
                finally:
                    self.touch(*touched(*args, **kwargs))

            setattr(store, name, wrapper)

        wrap("create_bucket", lambda bucket_name, *a, **k: (bucket_name, None))
        wrap("delete_bucket", lambda bucket_name, *a, **k: (bucket_name, None))
        wrap("put_object", lambda bucket_name, key_name, *a, **k: (bucket_name, key_name))
        wrap("delete_object", lambda bucket_name, key_name, *a, **k: (bucket_name, key_name))


# --- serving -------------------------------------------------------------------------------------------------------


class Gate:
    """moto's WSGI app: journals each request's writes before its answer; once closed, answers 503 (clients retry)."""

    def __init__(self, app: Any, journal: Journal) -> None:
        self.app = app
        self.journal = journal
        self.closed = False
        self.active = 0
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with self.lock:
            if self.closed:
                start_response("503 Service Unavailable", [("Connection", "close"), ("Content-Length", "0")])
                return [b""]
            self.active += 1
        try:
            # werkzeug sends the status and headers with the first piece of the body, after this returns.
            body = list(self.app(environ, start_response))
            self.journal.commit()
            return body
        finally:
            self.journal.touched.items = []
            with self.lock:
                self.active -= 1

    def close(self, drain_s: float) -> int:
        """Take no more requests; wait up to `drain_s` for those under way. How many were still under way."""
        with self.lock:
            self.closed = True
        deadline = time.monotonic() + drain_s
        while self.active and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.active


def serve(address: str, port: int, journal: Journal) -> tuple[BaseWSGIServer, Gate]:
    """moto's server app on address:port, serving on a thread (OSError at once if the port is taken)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

    gate = Gate(DomainDispatcherApplication(create_backend_app), journal)
    server = make_server(address, port, gate, threaded=True, request_handler=MotoRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, gate


def open_journal(path: Path) -> tuple[Journal, int]:
    """Replay the journal at `path` (made if missing), compact it, and open it for appending; the objects loaded."""
    path.parent.mkdir(parents=True, exist_ok=True)
    records, _ = read_records(path)
    loaded = replay(records)
    rewrite(path)
    journal = Journal(path)
    journal.watch(backend())
    return journal, loaded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--address", required=True, help="the address to serve on")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--journal", type=Path, required=True, help="the file every acknowledged write is kept in")
    parser.add_argument("--drain-s", type=float, default=5.0, help="how long a stop waits for requests under way")
    options = parser.parse_args(argv)
    # One line a request on stderr would be most of the rehearsal's log.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        journal, loaded = open_journal(options.journal)
    except JournalError as error:
        print(f"object_store: {error}", file=sys.stderr)
        return 2
    server, gate = serve(options.address, options.port, journal)
    print(f"ready {options.address}:{options.port} ({loaded} objects loaded)", flush=True)
    stop.wait()
    server.shutdown()
    # Nothing to save: what was acknowledged is in the journal. A request still under way after the drain has
    # had no answer, so dropping it loses nothing anyone was told was stored.
    left = gate.close(options.drain_s)
    kept = sum(len(bucket.keys) for bucket in list(backend().buckets.values()))
    print(f"stopped ({kept} objects kept, {left} requests dropped unanswered)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
