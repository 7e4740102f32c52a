"""A local HTTP server that answers as a hosted image API would, scripted per test, recording every request."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image as PILImage


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Answer:
    status: int = 200
    body: Any = None  # JSON-able, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # wait this long first (a timeout test)
    content_type: str = "application/json"


Script = Callable[[Request], Answer]


class LocalAPI:
    """Answers each request with the next queued Answer, else with `default(request)`."""

    def __init__(self, default: Script) -> None:
        self.default = default
        self.queued: deque[Answer] = deque()
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                request = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with api._lock:
                    api.requests.append(request)
                    answer = api.queued.popleft() if api.queued else None
                answer = answer or api.default(request)
                if answer.delay_s:
                    time.sleep(answer.delay_s)
                data = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", answer.content_type)
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up first (a timeout test)
                    pass

            do_GET = do_POST = _serve  # noqa: N815 - http.server's names

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def queue(self, *answers: Answer) -> None:
        self.queued.extend(answers)

    def of(self, method: str, prefix: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path.startswith(prefix)]


@contextmanager
def serving(default: Script) -> Iterator[LocalAPI]:
    api = LocalAPI(default)
    thread = threading.Thread(target=api.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        api.server.shutdown()
        api.server.server_close()


def png(width: int, height: int, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A small PNG with a gradient (not blank), the given size."""
    image = PILImage.new("RGB", (width, height), colour)
    for x in range(width):
        for y in range(height):
            image.putpixel((x, y), ((colour[0] + 4 * x) % 256, (colour[1] + 4 * y) % 256, colour[2]))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def b64png(width: int, height: int, colour: tuple[int, int, int] = (200, 30, 30)) -> str:
    return base64.b64encode(png(width, height, colour)).decode()


def database_text() -> str:
    """Every row of every table as text: what a key must never be found in."""
    from django.db import connection

    lines = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            quoted = connection.ops.quote_name(table)
            cursor.execute(f"SELECT * FROM {quoted}")  # noqa: S608 - table names from the introspection
            lines.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(lines)
