"""Benchmark: how fast Label Studio, started the default pip way, takes pairwise votes over its REST API.

The comparison point for bench/load_faults.py (issue 9), following the method of the research
note on Label Studio's vote submission: `label-studio start` (Django's development server,
SQLite), a Pairwise project, tasks imported in one request, and C client threads each posting
annotations to distinct, unannotated tasks (`POST /api/tasks/{id}/annotations/`) for a fixed
time. Afterwards the annotation rows in its SQLite file are compared with the acknowledged ids
(lost, duplicated). Telemetry is off. Standard library only, so any Python 3.11 runs it.

Label Studio's pins differ from PopArena's: install it in a virtualenv of its own, outside
this repository, and point --label-studio at its `label-studio` executable:
    python3.11 -m venv <venv> && <venv>/bin/pip install label-studio==1.23.2
    .venv/bin/python bench/label_studio_votes.py --label-studio <venv>/bin/label-studio \\
        --concurrency 1 50 200 --duration 30
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import secrets
import signal
import socket
import sqlite3
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LABEL_CONFIG = (
    '<View><Image name="left" value="$left"/><Image name="right" value="$right"/>'
    '<Pairwise name="pw" toName="left,right"/></View>'
)
VOTE = {
    "result": [{"from_name": "pw", "to_name": ["left", "right"], "type": "pairwise", "value": {"selected": "left"}}],
    "lead_time": 1.0,
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Api:
    def __init__(self, port: int, token: str, keepalive: bool = False) -> None:
        self.port = port
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        self.keepalive = keepalive
        self.connection: http.client.HTTPConnection | None = None

    def call(self, method: str, path: str, body: Any = None, timeout: float = 120) -> tuple[int, Any]:
        if self.connection is None or not self.keepalive:
            if self.connection is not None:
                self.connection.close()
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            self.connection.request(method, path, body=None if body is None else json.dumps(body), headers=self.headers)
            response = self.connection.getresponse()
            raw = response.read()
        except (http.client.HTTPException, OSError):
            self.connection.close()
            self.connection = None
            raise
        if not self.keepalive:
            self.connection.close()
            self.connection = None
        try:
            return response.status, json.loads(raw or b"null")
        except ValueError:
            return response.status, raw[:200].decode(errors="replace")


def start_label_studio(executable: str, data_dir: Path, port: int, token: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "COLLECT_ANALYTICS": "false",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
    }
    command = [
        executable,
        "start",
        "--no-browser",
        "--data-dir",
        str(data_dir),
        "--internal-host",
        "127.0.0.1",
        "--port",
        str(port),
        "--username",
        "bench@example.com",
        "--password",
        "benchpass123",
        "--user-token",
        token,
        "--enable-legacy-api-token",
    ]
    log = (data_dir / "server.log").open("wb")
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_until_up(api: Api, server: subprocess.Popen[bytes], log: Path, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"label-studio exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            status, _ = api.call("GET", "/api/projects/", timeout=10)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(1)
    raise RuntimeError("label-studio did not answer in time")


def cpu_seconds(pid: int) -> float:
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "stat").read_text()
            except OSError:
                continue
            if int(text[text.rfind(")") + 2 :].split()[1]) == pid:
                pids.append(int(entry.name))
    total = 0
    for p in pids:
        try:
            text = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def run_level(
    port: int, token: str, tasks: Iterator[int], lock: threading.Lock, clients: int, duration: float, keepalive: bool
) -> dict[str, Any]:
    latencies: list[float] = []
    acknowledged: list[tuple[int, int]] = []  # (task id, annotation id)
    statuses: Counter[str] = Counter()
    end = time.perf_counter() + duration

    def client() -> None:
        api = Api(port, token, keepalive)
        while time.perf_counter() < end:
            with lock:
                task = next(tasks)
            started = time.perf_counter()
            try:
                status, body = api.call("POST", f"/api/tasks/{task}/annotations/", VOTE)
            except (http.client.HTTPException, OSError) as exc:
                statuses[type(exc).__name__] += 1
                continue
            statuses[str(status)] += 1
            if status == 201:
                latencies.append((time.perf_counter() - started) * 1000)
                acknowledged.append((task, int(body["id"])))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        "clients": clients,
        "elapsed_s": round(elapsed, 1),
        "votes_acknowledged": len(acknowledged),
        "votes_per_s": round(len(acknowledged) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99), 1) if latencies else None,
        "statuses": dict(statuses),
        "_acknowledged": acknowledged,
    }


def check_rows(database: Path, acknowledged: list[tuple[int, int]]) -> dict[str, int]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT id, task_id FROM task_completion").fetchall()
    ids = {row[0] for row in rows}
    per_task = Counter(task for _, task in rows)
    posted = {task for task, _ in acknowledged}
    return {
        "rows": len(rows),
        "lost": sum(1 for _, annotation in acknowledged if annotation not in ids),
        "duplicated": sum(n - 1 for task, n in per_task.items() if n > 1 and task in posted),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label-studio", required=True, help="the label-studio executable of its own virtualenv")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 50, 200])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per concurrency level")
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--keepalive", action="store_true", help="reuse each client's connection")
    parser.add_argument("--pause", type=float, default=3.0, help="seconds between levels")
    args = parser.parse_args()

    token = secrets.token_hex(20)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="label-studio-bench-") as tmp:
        data_dir = Path(tmp)
        server = start_label_studio(args.label_studio, data_dir, port, token)
        try:
            api = Api(port, token)
            started = time.monotonic()
            wait_until_up(api, server, data_dir / "server.log")
            startup_s = time.monotonic() - started
            status, project = api.call(
                "POST", "/api/projects/", {"title": "pairwise-bench", "label_config": LABEL_CONFIG}
            )
            if status != 201:
                raise RuntimeError(f"project: {status} {project}")
            tasks = [{"left": "/static/x.png", "right": "/static/y.png"} for _ in range(args.tasks)]
            status, imported = api.call("POST", f"/api/projects/{project['id']}/import", tasks)
            if status != 201:
                raise RuntimeError(f"import: {status} {imported}")
            status, page = api.call("GET", f"/api/tasks/?project={project['id']}&page_size={args.tasks}&fields=all")
            items = page["tasks"] if isinstance(page, dict) else page
            ids = iter(sorted(int(task["id"]) for task in items))
            lock = threading.Lock()
            levels = []
            acknowledged: list[tuple[int, int]] = []
            for clients in args.concurrency:
                cpu_before = cpu_seconds(server.pid)
                level = run_level(port, token, ids, lock, clients, args.duration, args.keepalive)
                level["server_cpu_cores"] = round((cpu_seconds(server.pid) - cpu_before) / level["elapsed_s"], 2)
                level["load_average_after"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
                acknowledged += level.pop("_acknowledged")
                levels.append(level)
                time.sleep(args.pause)
            rows = check_rows(data_dir / "label_studio.sqlite3", acknowledged)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
    print(
        json.dumps(
            {
                "label_studio": "1.23.2 via `label-studio start` (Django dev server, SQLite), telemetry off",
                "keepalive": args.keepalive,
                "startup_s": round(startup_s, 1),
                "levels": levels,
                "annotations": rows,
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
