"""Benchmark: a newcomer's demo from a fresh database: first comparison, queues at low watermark, queues full.

Targets (issue 16), timed from the moment the web server answers (when `scripts/demo` prints its
URL): a first comparison within 15 s (30 s with one other busy process); every demo queue at its
low watermark within 90 s; all full within 120 s; the worker under 10% of its time outside
pipeline calls.
Run: nice -n 10 .venv/bin/python bench/first_comparison.py [--timeout 600]
Like `scripts/demo`, in a temporary folder (its own SQLite database and media; the model cache
is the usual one unless --cold-models): the worker, migrate, seed_demo, then daphne; times run from
daphne's start. A participant asks the API for a comparison every 0.25 s; the database is read for the
queues. Prints one JSON line; the results go into BENCHMARKS.md by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime
from http.cookiejar import CookieJar
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))

from worker_fill import SUMMARY  # noqa: E402

from tests.servers import free_port, server_command, server_env  # noqa: E402

# The worker's line once it has imported torch and diffusers while it waited, with its time.
IMPORTED = re.compile(r"^(?P<at>\S+ \S+) INFO poparena.worker: pipeline libraries imported while waiting", re.M)
QUEUES_SQL = """
SELECT COUNT(*), SUM(ready >= low), SUM(ready >= high) FROM (
  SELECT d.low_watermark AS low, d.high_watermark AS high,
         (SELECT COUNT(*) FROM generation_population p WHERE p.generator_id = d.generator_id
            AND p.prompt_id = d.prompt_id AND p.size = d.size AND p.status = 'ready') AS ready
  FROM generation_demand d WHERE d.owner = 'campaign:demo')
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds")
    parser.add_argument("--cold-models", action="store_true", help="build the offline models too (a fresh clone)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        extra = {"POPARENA_MODEL_CACHE": str(Path(tmp) / "models")} if args.cold_models else {}
        env = server_env(Path(tmp), VOTE_MIN_DWELL_MS="0", **extra)

        def manage(*command: str) -> None:
            subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True)

        port = free_port()
        base = f"http://127.0.0.1:{port}/"
        worker_log = Path(tmp) / "worker.log"
        # As scripts/demo: the worker starts first (it waits for the migrations), then migrate, seed_demo and
        # the web server.
        with worker_log.open("w") as log:
            worker = subprocess.Popen(
                [sys.executable, "manage.py", "run_generation_worker"], cwd=ROOT, env=env, stdout=log, stderr=log
            )
        manage("migrate", "--noinput")
        manage("seed_demo")
        seeded_at, seeded_mono = time.time(), time.monotonic()
        web = subprocess.Popen(server_command("daphne", port), cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
        started = time.monotonic()
        try:
            result = measure(base, Path(tmp) / "db.sqlite3", started, args.timeout)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
            web.terminate()
            web.wait(timeout=30)
        text = worker_log.read_text()
        summary = SUMMARY.search(text)
        imported = IMPORTED.search(text)
        full_at = result.pop("full_at")
        result.update(
            worker_share_outside_pipeline_calls=int(summary.group("outside")) / 100 if summary else None,
            worker_load_s=float(summary.group("load")) if summary else None,
            worker_waiting_for_work_s=float(summary.group("idle")) if summary else None,
            worker_importing_while_waiting_s=float(summary.group("warm")) if summary else None,
            # The part of that import still running once the campaign was seeded: time it counted as waiting
            # although work existed (it would have had to import before its first pipeline call all the same).
            worker_importing_after_seeded_s=(
                round(max(0.0, logged_at(imported.group("at")) - seeded_at), 1) if imported else None
            ),
            # The strictest count: of the time from the seeded campaign (work exists) to the last queue full,
            # the share the worker spent outside pipeline calls, whatever it was doing.
            worker_share_outside_pipeline_calls_since_seeded=(
                round(1 - float(summary.group("pipeline")) / (full_at - seeded_mono), 2)
                if summary and isinstance(full_at, float)
                else None
            ),
            worker_threads=re.findall(r"(\d+) torch CPU thread", text)[:1],
            load_average=[round(x, 2) for x in os.getloadavg()],
            machine=f"{platform.machine()}, {os.cpu_count()} CPUs",
        )
        print(json.dumps(result))


def logged_at(asctime: str) -> float:
    """The epoch time of a log line's `asctime` (the settings' format, local time)."""
    return datetime.strptime(asctime, "%Y-%m-%d %H:%M:%S,%f").astimezone().timestamp()


def measure(base: str, database: Path, started: float, timeout: float) -> dict[str, object]:
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    url_at = first_at = low_at = full_at = None
    queues = 0
    while time.monotonic() - started < timeout and full_at is None:
        now = time.monotonic()
        if url_at is None:
            try:
                urllib.request.urlopen(base, timeout=5)  # noqa: S310 (local server)
                url_at = now
            except OSError:
                time.sleep(0.2)
                continue
        if first_at is None:
            request = urllib.request.Request(
                base + "api/v1/campaigns/demo/comparisons/next", b"{}", {"Content-Type": "application/json"}
            )
            try:
                with opener.open(request, timeout=10):
                    first_at = time.monotonic()
            except urllib.error.HTTPError as error:
                if error.code != 409:
                    raise
        with sqlite3.connect(database, timeout=10) as db:
            queues, low, full = db.execute(QUEUES_SQL).fetchone()
        if low_at is None and low == queues:
            low_at = time.monotonic()
        if full == queues:
            full_at = time.monotonic()
        time.sleep(0.25)

    def since_url(moment: float | None) -> float | None:
        return None if moment is None or url_at is None else round(moment - url_at, 1)

    return {
        "server_answered_after_start_s": None if url_at is None else round(url_at - started, 1),
        "first_comparison_s": since_url(first_at),
        "first_comparison_target_s": 15,
        "queues": queues,
        "all_at_low_watermark_s": since_url(low_at),
        "low_watermark_target_s": 90,
        "all_full_s": since_url(full_at),
        "full_target_s": 120,
        "full_at": full_at,
    }


if __name__ == "__main__":
    main()
