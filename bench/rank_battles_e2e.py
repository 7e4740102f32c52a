"""Benchmark: `python manage.py rank_battles` end to end on a 1M-row battle log: wall time and peak memory.

Writes one synthetic log (K = 100 models, 10% ties, Chatbot Arena's column spelling) as CSV,
Parquet, JSONL and a JSON list, then for each runs the command as a fresh process with
`--bootstrap 1000 --out CSV` and reads its wall time and peak resident memory (`os.wait4`). The
wall time includes Python and Django start-up and the imports; `read` and `fit` are the same steps
timed inside another fresh process, to show where the time goes. Every heavy step runs in a child
process: a child forked from a parent holding the data would report the parent's memory as its peak.

Run:
    .venv/bin/python bench/rank_battles_e2e.py [--rows 1000000] [--models 100] [--bootstrap 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from arena.battles import read_battle_log  # noqa: E402
from arena.ranking import PairCounts, fit_ratings  # noqa: E402


def make_table(rows: int, models: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    strength = rng.normal(0.0, 0.75, models)
    first = rng.integers(0, models, rows)
    second = (first + rng.integers(1, models, rows)) % models
    tie = rng.random(rows) < 0.1
    first_wins = rng.random(rows) < 1 / (1 + np.exp(strength[second] - strength[first]))
    winner = np.where(tie, np.where(rng.random(rows) < 0.5, "tie", "tie (bothbad)"), "model_a")
    winner = np.where(~tie & ~first_wins, "model_b", winner)
    names = np.array([f"model-{i:03d}" for i in range(models)], dtype=object)
    return pa.table(
        {
            "question_id": [f"q{i}" for i in range(rows)],
            "model_a": names[first],
            "model_b": names[second],
            "winner": winner.astype(object),
            "anony": np.ones(rows, dtype=bool),
        }
    )


def write_all(table: pa.Table, folder: Path) -> list[Path]:
    paths = [folder / "battles.csv", folder / "battles.parquet", folder / "battles.jsonl", folder / "battles.json"]
    pacsv.write_csv(table, paths[0])
    pq.write_table(table, paths[1])
    records = table.to_pylist()
    with paths[2].open("w") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    with paths[3].open("w") as handle:
        json.dump(records, handle)
    return paths


def run_command(path: Path, bootstrap: int, out: Path) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MiB, and the command's last output line."""
    stdout_path, stderr_path = out.with_suffix(".stdout"), out.with_suffix(".stderr")
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "manage.py", "rank_battles", str(path), "--bootstrap", str(bootstrap), "--out", str(out)],
            cwd=ROOT,
            stdout=stdout,
            stderr=stderr,
        )
        # wait4 gives this child's own peak memory, which Popen.wait would throw away.
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"rank_battles failed on {path.name}:\n{stderr_path.read_text()}")
    return wall, usage.ru_maxrss / 1024, stdout_path.read_text().strip().splitlines()[0]


def machine() -> str:
    model = platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__}"


def inprocess(path: Path, bootstrap: int) -> None:
    fit_ratings(PairCounts.from_tallies(["a", "b"], [("a", "b", 1, 1, 0)]))  # pays the imports
    start = time.perf_counter()
    log = read_battle_log(path)
    read = time.perf_counter() - start
    start = time.perf_counter()
    fit_ratings(log.counts, bootstrap=bootstrap, seed=0)
    print(json.dumps({"read": read, "fit": time.perf_counter() - start, "rows": log.rows}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--write", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--inprocess", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write:
        write_all(make_table(args.rows, args.models), args.write)
        return
    if args.inprocess:
        inprocess(args.inprocess, args.bootstrap)
        return
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        me = [sys.executable, __file__, "--rows", str(args.rows), "--models", str(args.models)]
        subprocess.run([*me, "--write", str(folder)], check=True)
        print(f"{args.rows:,} rows, {args.models} models, --bootstrap {args.bootstrap}")
        print("| file | size | command wall | peak RSS | read (in-process) | fit + bootstrap (in-process) |")
        print("|---|---|---|---|---|---|")
        for path in (folder / f"battles.{kind}" for kind in ("csv", "parquet", "jsonl", "json")):
            wall, peak, first_line = run_command(path, args.bootstrap, folder / "out.csv")
            assert first_line.startswith(f"{args.rows} rows read"), first_line
            timed = subprocess.run(
                [*me, "--bootstrap", str(args.bootstrap), "--inprocess", str(path)],
                check=True,
                capture_output=True,
                text=True,
            )
            steps = json.loads(timed.stdout)
            size = path.stat().st_size / 2**20
            print(
                f"| {path.suffix[1:]} | {size:.0f} MiB | {wall:.2f} s | {peak:.0f} MiB | {steps['read']:.2f} s "
                f"| {steps['fit']:.2f} s |",
                flush=True,
            )


if __name__ == "__main__":
    main()
