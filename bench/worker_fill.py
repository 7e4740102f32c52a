"""Benchmark: an empty database to the demo campaign's queues full, and the worker's overhead.

Targets (issue 4, kept by issue 16): demo queues full in under 60 s on this machine; the worker
spends under 10% of its wall time outside pipeline calls.
Run: nice -n 10 .venv/bin/python bench/worker_fill.py [--max-batch 8] [--sets-per-queue K]
It works in a temporary folder (its own SQLite database, media and model cache), runs
`migrate`, `seed_demo` and `run_generation_worker --once` as a user would, and prints JSON.

The share outside pipeline calls is of the worker loop's whole wall time, from the worker's
creation to its last store: loading the pipelines (imports and from_pretrained, once per
pipeline), claiming, planning, and whatever storing (and metrics) the generating thread waited
for. Loading is also reported on its own (`load_s`) with the share leaving it out, since on a
20-second fill a few seconds of one-time loading decide the share. `--sets-per-queue K` fills
every demo queue to K sets instead of the demo's own watermarks: a longer fill, closer to a
worker that keeps running (the load is paid once).
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
# The worker's closing line (generation.worker.GenerationWorker.log_summary).
SUMMARY = re.compile(
    r"(?P<images>\d+) images, (?P<populations>\d+) populations ready, (?P<failed>\d+) failed attempts, "
    r"(?P<wall>[\d.]+)s wall, (?P<pipeline>[\d.]+)s in pipeline calls, (?P<idle>[\d.]+)s waiting for work "
    r"\((?P<warm>[\d.]+)s of it importing the pipeline libraries\), (?P<outside>\d+)% of the rest outside "
    r"pipeline calls \(loading pipelines (?P<load>[\d.]+)s; "
    r"(?P<outside_besides_load>\d+)% outside pipeline calls and loading\)"
)
# Its lines per generator: name, images, images/s.
PER_GENERATOR = re.compile(r"  (\S+): (\d+) images, ([\d.]+) images/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-batch", default="8")
    parser.add_argument("--warm-models", action="store_true", help="build the offline models before timing")
    parser.add_argument("--sets-per-queue", type=int, help="fill every queue to this many sets (a longer fill)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(POPARENA_VAR_DIR=tmp, HF_HUB_OFFLINE="1")

        def manage(*command: str) -> str:
            result = subprocess.run(
                [sys.executable, "manage.py", *command], cwd=ROOT, env=env, capture_output=True, text=True, check=True
            )
            return result.stdout + result.stderr

        load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
        started = time.perf_counter()
        manage("migrate", "--noinput")
        manage("seed_demo")
        if args.sets_per_queue:
            k = args.sets_per_queue
            manage(
                "shell",
                "-c",
                f"from generation.models import Demand; Demand.objects.update(low_watermark={k}, high_watermark={k})",
            )
        seeded = time.perf_counter()
        log = manage("run_generation_worker", "--once", "--max-batch", args.max_batch)
        finished = time.perf_counter()
        summary = SUMMARY.search(log)
        if summary is None:
            sys.exit(f"could not read the worker's summary line:\n{log[-3000:]}")
        images, populations, failed, worker_wall, outside, load_s, outside_besides_load = summary.group(
            "images", "populations", "failed", "wall", "outside", "load", "outside_besides_load"
        )
        print(
            json.dumps(
                {
                    "sets_per_queue": args.sets_per_queue or "demo",
                    "load_average_before": load_before,
                    "load_average_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                    "empty_database_to_queues_full_s": round(finished - started, 1),
                    "target_s": 60,
                    "met": (finished - started < 60 and int(failed) == 0) if not args.sets_per_queue else None,
                    "migrate_and_seed_s": round(seeded - started, 1),
                    "worker_process_s": round(finished - seeded, 1),
                    "worker_loop_wall_s": float(worker_wall),
                    "images": int(images),
                    "populations": int(populations),
                    "failed_attempts": int(failed),
                    "share_outside_pipeline_calls": int(outside) / 100,
                    "overhead_target": 0.10,
                    "overhead_met": int(outside) < 10,
                    "load_s": float(load_s),
                    "share_outside_pipeline_calls_and_loading": int(outside_besides_load) / 100,
                    "per_generator": PER_GENERATOR.findall(log),
                }
            )
        )


if __name__ == "__main__":
    main()
