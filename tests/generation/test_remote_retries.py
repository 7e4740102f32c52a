"""The remote worker's HTTP client: a throttled or restarting server is waited out, a refusal is not retried."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from generation.remote import RemoteQueue, RemoteQueueError


class Scripted(BaseHTTPRequestHandler):
    """Answers each POST with the next (status, headers, body) of `script`, and records when it came."""

    script: list[tuple[int, dict[str, str], dict]] = []
    seen: list[float] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).seen.append(time.monotonic())
        status, headers, body = type(self).script.pop(0)
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Scripted.script, Scripted.seen = [], []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def released(queue: RemoteQueue) -> int:
    return queue.release_claims(worker="w", population_ids=[1])


def test_a_throttled_request_waits_as_long_as_retry_after_asks_then_succeeds(server):
    Scripted.script = [
        (429, {"Retry-After": "1"}, {"error": {"code": "throttled", "message": "slow down"}}),
        (200, {}, {"released": 1}),
    ]
    queue = RemoteQueue(server=server, key="pa_test", backoff_s=0.01)
    assert released(queue) == 1
    first, second = Scripted.seen
    assert second - first >= 0.95


def test_a_restarting_server_is_retried_with_backoff(server):
    Scripted.script = [(503, {}, {}), (502, {}, {}), (200, {}, {"released": 1})]
    assert released(RemoteQueue(server=server, key="pa_test", backoff_s=0.01)) == 1
    assert len(Scripted.seen) == 3


def test_a_refusal_is_raised_at_once_with_the_server_s_message(server):
    Scripted.script = [(403, {}, {"error": {"code": "insufficient_scope", "message": "needs the worker scope"}})]
    with pytest.raises(RemoteQueueError, match="403 needs the worker scope") as refused:
        released(RemoteQueue(server=server, key="pa_test", backoff_s=0.01))
    assert refused.value.status == 403
    assert len(Scripted.seen) == 1


def test_a_server_still_throttling_after_every_retry_is_reported(server):
    Scripted.script = [(429, {"Retry-After": "0"}, {"error": {"message": "slow down"}})] * 3
    with pytest.raises(RemoteQueueError, match="429 slow down .gave up after 3 tries"):
        RemoteQueue(server=server, key="pa_test", retries=2, backoff_s=0.01).renew_leases(
            worker="w", population_ids=[1], lease=timedelta(seconds=30)
        )
