"""Benchmark: an empty database to the demo campaign's queues full, and the worker's overhead.

Targets (issue 4): demo queues full in under 60 s on this machine; the worker spends under
10% of its wall time outside pipeline calls.
Run: .venv/bin/python bench/worker_fill.py [--max-batch 8]
It works in a temporary folder (its own SQLite database, media and model cache), runs
`migrate`, `seed_demo` and `run_generation_worker --once` as a user would, and prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-batch", default="8")
    parser.add_argument("--warm-models", action="store_true", help="build the offline models before timing")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(POPARENA_VAR_DIR=tmp, HF_HUB_OFFLINE="1")

        def manage(*command: str) -> str:
            result = subprocess.run(
                [sys.executable, "manage.py", *command], cwd=ROOT, env=env, capture_output=True, text=True, check=True
            )
            return result.stdout + result.stderr

        started = time.perf_counter()
        manage("migrate", "--noinput")
        manage("seed_demo")
        seeded = time.perf_counter()
        log = manage("run_generation_worker", "--once", "--max-batch", args.max_batch)
        finished = time.perf_counter()
        summary = re.search(
            r"(\d+) images, (\d+) populations ready, (\d+) failed attempts, ([\d.]+)s wall, (\d+)% outside", log
        )
        if summary is None:
            sys.exit(f"could not read the worker's summary line:\n{log[-3000:]}")
        images, populations, failed, worker_wall, outside = summary.groups()
        print(
            json.dumps(
                {
                    "empty_database_to_queues_full_s": round(finished - started, 1),
                    "target_s": 60,
                    "met": finished - started < 60 and int(failed) == 0,
                    "migrate_and_seed_s": round(seeded - started, 1),
                    "worker_process_s": round(finished - seeded, 1),
                    "worker_loop_wall_s": float(worker_wall),
                    "images": int(images),
                    "populations": int(populations),
                    "failed_attempts": int(failed),
                    "share_outside_pipeline_calls": int(outside) / 100,
                    "overhead_target": 0.10,
                    "per_generator": re.findall(r"  (\S+): (\d+) images, ([\d.]+) images/s", log),
                }
            )
        )


if __name__ == "__main__":
    main()
