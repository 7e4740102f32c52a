"""Benchmark: data-parallel training under torchrun, 1 against N processes at the same per-process batch and threads.

Target (issue 37): weak scaling on the CPU, 2 processes >= 1.6x the steps/s of one at the same per-process batch
and threads (each process then trains as many examples a step as the one process did, so the effective batch and
the examples per second double when scaling is perfect).

What runs: a fresh POPARENA_VAR_DIR with the demo seeded (for the `base` shapes generator, 32x32), a popalign-csv
export of drawn shapes written here (pairs of populations of N pictures, blue winning over red, as the training
tests draw them), then `train_generator --objective popalign --base base` once per process count, under
`torchrun --standalone --nproc_per_node P` for P > 1, each process with `--threads T`. Steps/s comes from the
run's training-log.jsonl (its `seconds` column, from the first logged step to the last: the training steps only,
so loading, encoding and the first step's set-up are left out); images/s is steps/s x effective batch x 2 (a pair
is a winner and a loser denoised); the wall time of the whole command is given beside it. Every process has one
thread unless --threads says otherwise (torch.set_num_threads through --threads, OMP_NUM_THREADS and
MKL_NUM_THREADS), so N processes on N cores do not fight over them; the machine's load average before and after
each run is printed with it, since on a shared machine the processes wait for each other at every step.

Run (about 3 minutes on 2 idle cores):
  nice -n 10 .venv/bin/python bench/training_scaling.py [--processes 1,2,4] [--batch 8] [--threads 1] [--steps 40]
Prints one JSON line per process count and one with the speed-ups; the figures go into BENCHMARKS.md by hand.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PYTHON = sys.executable
TORCHRUN = str(Path(sys.executable).parent / "torchrun")
SIZE = 32


def write_export(folder: Path, *, pairs: int, n: int) -> Path:
    """A popalign-csv export: `pairs` population pairs of `n` blue (winning) and `n` red (losing) circles."""
    from generation import shapes

    (folder / "images").mkdir(parents=True)
    rows = []
    for pair in range(pairs):
        names: dict[str, list[str]] = {}
        for side, colour in (("w", "blue"), ("l", "red")):
            names[side] = []
            for i in range(n):
                rng = random.Random(pair * 1000 + (side == "l") * 100 + i)
                half = rng.randint(6, 10)
                centre = (rng.randint(half, SIZE - half), rng.randint(half, SIZE - half))
                image = shapes.render(shapes.Attributes("circle", colour, "white"), centre=centre, half_size=half)
                out = io.BytesIO()
                image.save(out, "PNG")
                name = f"images/{hashlib.sha256(out.getvalue()).hexdigest()}.png"
                (folder / name).write_bytes(out.getvalue())
                names[side].append(name)
        rows += [
            (w, lo, "a circle", 0, f"c{pair}", f"{pair}1", f"{pair}2")
            for w, lo in zip(names["w"], names["l"], strict=True)
        ]
    with open(folder / "train.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["jpg_0", "jpg_1", "caption", "label", "comparison_id", "population_w_id", "population_l_id"])
        writer.writerows(rows)
    (folder / "manifest.json").write_text(json.dumps({"format": "popalign-csv"}))
    return folder


def run(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(command[:4])} ... failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", default="1,2,4", help="process counts to run, e.g. 1,2,4")
    parser.add_argument("--batch", type=int, default=8, help="pairs per process per step")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as scratch:
        var = Path(scratch) / "var"
        threads = str(args.threads)
        env = {**os.environ, "POPARENA_VAR_DIR": str(var), "HF_HUB_OFFLINE": "1"}
        env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        env.pop("DATABASE_URL", None)
        run([PYTHON, "manage.py", "migrate", "-v0"], env)
        run([PYTHON, "manage.py", "seed_demo"], env)
        export = write_export(Path(scratch) / "export", pairs=6, n=8)
        rates = {}
        for processes in [int(p) for p in args.processes.split(",")]:
            name = f"scaling-{processes}"
            train = ["manage.py", "train_generator", "--export", str(export), "--objective", "popalign"]
            train += ["--base", "base", "--name", name, "--steps", str(args.steps), "--batch", str(args.batch)]
            train += ["--threads", str(args.threads), "--eval-samples", "0", "--no-progress"]
            launcher = [PYTHON] if processes == 1 else [TORCHRUN, "--standalone", "--nproc_per_node", str(processes)]
            load_before = os.getloadavg()
            wall = run(launcher + train, env)
            log = var / "trained" / name / "training-log.jsonl"
            rows = [json.loads(line) for line in log.read_text().splitlines()]
            span = rows[-1]["seconds"] - rows[0]["seconds"]
            steps_per_s = (len(rows) - 1) / span
            effective = rows[0]["effective_batch"]
            rates[processes] = steps_per_s
            print(
                json.dumps(
                    {
                        "processes": processes,
                        "batch_per_process": args.batch,
                        "threads_per_process": args.threads,
                        "effective_batch": effective,
                        "steps": len(rows),
                        "steps_per_s": round(steps_per_s, 3),
                        "images_per_s": round(steps_per_s * effective * 2, 1),
                        "training_s": round(rows[-1]["seconds"], 1),
                        "wall_s": round(wall, 1),
                        "load_average_before": [round(x, 2) for x in load_before],
                        "load_average_after": [round(x, 2) for x in os.getloadavg()],
                        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, no GPU used",
                    }
                ),
                flush=True,
            )
        one = rates.get(1)
        if one:
            # Weak scaling: at the same per-process batch a step of N processes trains N times the examples, so
            # perfect scaling keeps steps/s and multiplies images/s by N.
            images = {p: round(r * p / one, 2) for p, r in rates.items()}
            steps = {p: round(r / one, 2) for p, r in rates.items()}
            print(json.dumps({"speedup_steps_per_s": steps, "speedup_images_per_s": images}), flush=True)


if __name__ == "__main__":
    main()
