"""moto's standalone S3 server, kept on disk across a restart (the storage host of bench/cluster.py's rehearsal).

moto keeps buckets in memory: stopped and started again, it would come back empty, which no real object store
does. Run through this script, it writes every bucket and object (bytes and metadata) to --data when it is
stopped (SIGTERM or SIGINT), and when it starts on a --data that holds them it loads them back before it opens
--address:--port. So after a restart it answers with everything it had stored, as a real store restarting from
its disk does, and until then it refuses connections. What it keeps is written only at a clean stop: a kill
(SIGKILL) loses what was stored since it started, so the rehearsal restarts it with SIGTERM.

    python bench/object_store.py --address 198.18.0.7 --port 9000 --data /tmp/.../s3-data

It prints "ready ADDRESS:PORT (N objects loaded)" once it serves, and "saved N objects" when it stops.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

INDEX = "index.jsonl"


def backend() -> Any:
    """moto's S3 backend of this process (its default account, the `aws` partition)."""
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    return s3_backends[DEFAULT_ACCOUNT_ID]["aws"]


def save(data: Path) -> int:
    """Write every bucket and object to `data` (replacing what was there, all at once); the objects written."""
    staging = data.with_name(data.name + ".saving")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "objects").mkdir(parents=True)
    written = 0
    with open(staging / INDEX, "w", encoding="utf-8") as index:
        for name, bucket in list(backend().buckets.items()):
            index.write(json.dumps({"bucket": name, "region": bucket.region_name}) + "\n")
            for key, stored in list(bucket.keys.items()):
                (staging / "objects" / str(written)).write_bytes(stored.value)
                entry = {"bucket": name, "key": key, "file": str(written), "metadata": dict(stored.metadata)}
                index.write(json.dumps(entry) + "\n")
                written += 1
    shutil.rmtree(data, ignore_errors=True)
    os.replace(staging, data)
    return written


def load(data: Path) -> int:
    """Put back what `save` wrote; the objects loaded (0 for a store that never saved)."""
    if not (data / INDEX).is_file():
        return 0
    store = backend()
    loaded = 0
    for line in (data / INDEX).read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if "key" not in entry:
            store.create_bucket(entry["bucket"], entry["region"])
            continue
        stored = store.put_object(entry["bucket"], entry["key"], (data / "objects" / entry["file"]).read_bytes())
        stored.set_metadata(entry["metadata"])
        loaded += 1
    return loaded


class Gate:
    """moto's WSGI app, counting the requests under way; once closed, it answers 503 (clients retry that)."""

    def __init__(self, app: Any) -> None:
        self.app = app
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
            return list(self.app(environ, start_response))
        finally:
            with self.lock:
                self.active -= 1

    def close(self) -> None:
        """Take no more requests and wait for those under way (kept-alive connections outlive the server's loop)."""
        with self.lock:
            self.closed = True
        while self.active:
            threading.Event().wait(0.01)


def serve(address: str, port: int) -> tuple[BaseWSGIServer, Gate]:
    """moto's server app on address:port, serving on a thread (OSError at once if the port is taken)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

    gate = Gate(DomainDispatcherApplication(create_backend_app))
    server = make_server(address, port, gate, threaded=True, request_handler=MotoRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, gate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--address", required=True, help="the address to serve on")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--data", type=Path, required=True, help="where the objects are kept across restarts")
    options = parser.parse_args(argv)
    # One line a request on stderr would be most of the rehearsal's log.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    loaded = load(options.data)
    server, gate = serve(options.address, options.port)
    print(f"ready {options.address}:{options.port} ({loaded} objects loaded)", flush=True)
    stop.wait()
    # No write is half done when the objects are read: the server stops answering first.
    server.shutdown()
    gate.close()
    print(f"saved {save(options.data)} objects", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
