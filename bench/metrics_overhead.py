"""Benchmark: the demo's queues filled from an empty database with metrics after each store on, then off.

Target (issue 14): computing metrics in the worker adds under 10% to its fill time.
Run: nice -n 10 .venv/bin/python bench/metrics_overhead.py [--max-batch 8] [--order on,off,off,on]
Each run works in its own temporary folder (SQLite, media, model cache) and runs `migrate`,
`seed_demo` (which measures colour and background with `shapes`) and `run_generation_worker --once`
as a user would, with METRICS_AFTER_GENERATION=1 or 0. Reported: each run's worker wall time, the
share outside pipeline calls, and, for the runs with metrics, the seconds spent in them (summed
from the "metrics for population" log lines).

The overhead is the wall-time ratio of the runs with metrics to the runs without, each side's mean.
The runs go back to back in an ABBA order by default, so a load that drifts linearly on a shared
machine weighs on both sides alike. The seconds in metrics are not the overhead: the worker stores
each set, metrics included, in a background thread while its next pipeline call runs, so most of
that time overlaps generation (on a machine with a spare core) rather than adding to the fill.
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
sys.path.insert(0, str(ROOT / "bench"))

from worker_fill import SUMMARY  # noqa: E402

METRICS_LINE = re.compile(r"metrics for population \d+: (\d+) images in ([\d.]+)s")


def fill(metrics: bool, max_batch: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(POPARENA_VAR_DIR=tmp, HF_HUB_OFFLINE="1", METRICS_AFTER_GENERATION="1" if metrics else "0")

        def manage(*command: str) -> str:
            result = subprocess.run(
                [sys.executable, "manage.py", *command], cwd=ROOT, env=env, capture_output=True, text=True, check=True
            )
            return result.stdout + result.stderr

        manage("migrate", "--noinput")
        manage("seed_demo")
        started = time.perf_counter()
        log = manage("run_generation_worker", "--once", "--max-batch", max_batch)
        process_s = time.perf_counter() - started
        summary = SUMMARY.search(log)
        if summary is None:
            sys.exit(f"could not read the worker's summary line:\n{log[-3000:]}")
        images, populations, failed, wall, outside = summary.group("images", "populations", "failed", "wall", "outside")
        measured = [(int(n), float(s)) for n, s in METRICS_LINE.findall(log)]
        metrics_s = sum(s for _, s in measured)
        return {
            "metrics": metrics,
            "worker_process_s": round(process_s, 1),
            "worker_loop_wall_s": float(wall),
            "images": int(images),
            "populations": int(populations),
            "failed_attempts": int(failed),
            "share_outside_pipeline_calls": int(outside) / 100,
            "populations_measured": len(measured),
            "metrics_s": round(metrics_s, 2),
            "metrics_share_of_wall": round(metrics_s / float(wall), 4) if float(wall) else None,
            "metrics_images_per_s": round(sum(n for n, _ in measured) / metrics_s, 1) if metrics_s else None,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-batch", default="8")
    parser.add_argument("--order", default="on,off,off,on", help="which runs, in order, e.g. on,off,off,on or on")
    args = parser.parse_args()
    runs = [fill(word == "on", args.max_batch) for word in args.order.split(",")]
    on = [float(r["worker_loop_wall_s"]) for r in runs if r["metrics"]]  # type: ignore[arg-type]
    off = [float(r["worker_loop_wall_s"]) for r in runs if not r["metrics"]]  # type: ignore[arg-type]
    report: dict[str, object] = {"runs": runs, "overhead_target": 0.10, "load_average": list(os.getloadavg())}
    if on and off:
        ratio = (sum(on) / len(on)) / (sum(off) / len(off))
        report["wall_ratio_on_over_off"] = round(ratio, 3)
        report["overhead"] = round(ratio - 1, 3)
        report["met"] = ratio - 1 < 0.10
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
