"""A local HTTP server that answers as a hosted image API would, scripted per test, recording every request.

With what every provider test needs around it: OpenAI's Images API as a script (`images_api`), an API generator
saved as staff save one (`api_generator`), a queue wanting its sets (`want`) and a worker filling it
(`run_api_worker`). The fixtures that start the server (`local_api`), put a key in the environment
(`provider_key`) and record the retry loop's waits (`waits`) are in tests/generation/conftest.py.
"""

from __future__ import annotations

import base64
import io
import json
import secrets
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image as PILImage

if TYPE_CHECKING:
    from generation.models import Demand, Generator
    from generation.worker import GenerationWorker


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


def images_api(request: Request) -> Answer:
    """A well-behaved OpenAI Images API (POST /v1/images/generations): one PNG of the asked size per request."""
    if request.method != "POST" or request.path != "/v1/images/generations":
        return Answer(404, {"error": {"message": "Not found", "type": "invalid_request_error"}})
    width, height = (int(side) for side in request.body["size"].split("x"))
    return Answer(
        200,
        {
            "created": 1_767_225_600,
            "data": [
                {"b64_json": b64png(width, height), "revised_prompt": f"A detailed photo: {request.body['prompt']}"}
            ],
            "size": request.body["size"],
            "quality": request.body.get("quality", "auto"),
            "output_format": "png",
            "usage": {"input_tokens": 12, "output_tokens": 196, "total_tokens": 208},
        },
        headers={"x-request-id": f"req_{secrets.token_hex(6)}"},
    )


def api_generator(*, name: str, source: str, settings: dict[str, Any]) -> Generator:
    """An API generator saved through the service staff save one through (its settings checked)."""
    from generation.services import GeneratorSpec, sync_generator

    generator, _ = sync_generator(
        spec=GeneratorSpec(name=name, display_name="", description="", source=source, settings=settings)
    )
    return generator


def want(generator: Generator, *, caption: str, size: int = 2, high: int = 1) -> Demand:
    """A campaign's queue wanting `high` sets of `size` images of `generator` for a new prompt `caption`."""
    from generation.models import Demand
    from tests.factories import PromptFactory

    return Demand.objects.create(
        owner="campaign:test",
        generator=generator,
        prompt=PromptFactory(caption=caption),
        size=size,
        low_watermark=1,
        high_watermark=high,
    )


def run_api_worker(**limits: Any) -> GenerationWorker:
    """A CPU worker filling every queue once. Pacing is a worker setting like the others; a high rate keeps
    the recorded waits to the retries' own."""
    from generation.providers import Limits
    from generation.worker import GenerationWorker

    defaults = {"requests_per_minute": 100_000.0, "backoff_s": 0.5, **limits}
    # An API generator loads no pipeline, so the pipeline cache stays empty; a folder of its own all the same, so a
    # stray write never lands in the directory the tests run from.
    with tempfile.TemporaryDirectory(prefix="pipeline-cache-") as cache_dir:
        worker = GenerationWorker(
            device="cpu", cache_dir=Path(cache_dir), idle_sleep_s=0, api_limits=Limits(**defaults)
        )
        worker.run(once=True)
    return worker
