"""Benchmark: our Bradley-Terry fit and bootstrap against Chatbot Arena's own code on the same battle logs.

Targets (issue): on 1M battles and K = 100, our fit plus 1,000 bootstrap rounds in under 2 s, at
least 100x faster than FastChat's fit plus 100 rounds, and within 0.01 Elo of the exact MLE.

Data: synthetic logs, K generators with strengths drawn N(0, 0.75^2) (natural units), pairs drawn
uniformly, 10% ties (half `tie`, half `tie (bothbad)`), the rest won by the BT probability.

Ours: `PairCounts.from_indices` (rows to the count matrix), then `fit_ratings` with 0, 100 and
1,000 bootstrap rounds (median of `--repeats` runs, after one warm-up that pays the imports).
FastChat: `compute_elo_mle_with_tie` and `get_bootstrap_result` from fschat 0.2.36 (the latest
on PyPI), run in their own virtual environment on the same rows (a Parquet file). A bootstrap
round there refits on resampled rows, so on big logs only a few rounds are measured (as many as
fit in `--fastchat-seconds`, at most 100) and the time of 100 rounds is extrapolated linearly.
Exact MLE: SciPy's trust-exact Newton method on the BT log-likelihood of the count matrix
(analytic gradient and Hessian), finished with plain Newton steps to a step below 1e-13; written
here, independent of choix and of arena.ranking.

Setup of the FastChat environment (never in the project's .venv):
    python3.11 -m venv /tmp/fastchat-venv
    /tmp/fastchat-venv/bin/pip install --no-deps fschat==0.2.36
    /tmp/fastchat-venv/bin/pip install numpy pandas pyarrow scikit-learn plotly pytz tqdm requests
Run:
    .venv/bin/python bench/ranking_speed.py --fastchat-python /tmp/fastchat-venv/bin/python \\
        [--ks 20,100] [--sizes 10000,100000,1000000] [--fastchat-seconds 240]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TIE_RATE = 0.1
ELO_PER_NAT = 400 / math.log(10)


def make_log(k: int, n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    strength = rng.normal(0.0, 0.75, k)
    first = rng.integers(0, k, n)
    second = (first + rng.integers(1, k, n)) % k
    tie = rng.random(n) < TIE_RATE
    first_wins = rng.random(n) < 1 / (1 + np.exp(strength[second] - strength[first]))
    outcome = np.where(tie, 2, np.where(first_wins, 0, 1))
    bothbad = tie & (rng.random(n) < 0.5)
    return {"first": first, "second": second, "outcome": outcome, "bothbad": bothbad}


def write_parquet(log: dict[str, np.ndarray], k: int, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = np.array([f"model-{i:03d}" for i in range(k)], dtype=object)
    spelling = np.array(["model_a", "model_b", "tie"], dtype=object)[log["outcome"]]
    spelling[log["bothbad"]] = "tie (bothbad)"
    table = pa.table({"model_a": names[log["first"]], "model_b": names[log["second"]], "winner": spelling})
    pq.write_table(table, path)


def exact_mle(matrix: np.ndarray) -> np.ndarray:
    from scipy.optimize import minimize
    from scipy.special import expit

    def parts(free: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        s = np.concatenate([[0.0], free])
        d = s[:, None] - s[None, :]
        value = float((matrix * np.logaddexp(0.0, -d)).sum())
        n = matrix + matrix.T
        p = expit(d)
        grad = -(matrix.sum(axis=1) - (n * p).sum(axis=1))
        w = n * p * p.T
        hess = np.diag(w.sum(axis=1)) - w
        return value, grad[1:], hess[1:, 1:]

    result = minimize(
        lambda f: parts(f)[0],
        np.zeros(len(matrix) - 1),
        jac=lambda f: parts(f)[1],
        hess=lambda f: parts(f)[2],
        method="trust-exact",
        options={"gtol": 1e-9},
    )
    free = result.x
    # trust-exact stops on the absolute gradient, which with a million votes leaves ~1e-5 Elo; a
    # few plain Newton steps on the same function finish it (step below 1e-13).
    for _ in range(20):
        _, grad, hess = parts(free)
        step = np.linalg.solve(hess, grad)
        free = free - step
        if np.abs(step).max() < 1e-13:
            break
    s = np.concatenate([[0.0], free])
    return 1000 + ELO_PER_NAT * (s - s.mean())


def time_ours(log: dict[str, np.ndarray], k: int, repeats: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from arena.ranking import PairCounts, fit_ratings

    names = [f"model-{i:03d}" for i in range(k)]

    def median_time(action: Any) -> tuple[float, Any]:
        times = []
        result = None
        for _ in range(repeats):
            start = time.perf_counter()
            result = action()
            times.append(time.perf_counter() - start)
        return statistics.median(times), result

    fit_ratings(PairCounts.from_indices(names[:2], [0], [1], [0]), bootstrap=0)  # pays the imports
    aggregate, counts = median_time(lambda: PairCounts.from_indices(names, log["first"], log["second"], log["outcome"]))
    fit, board = median_time(lambda: fit_ratings(counts, bootstrap=0))
    boot100, _ = median_time(lambda: fit_ratings(counts, bootstrap=100, seed=1))
    boot1000, full = median_time(lambda: fit_ratings(counts, bootstrap=1000, seed=1))
    reference = exact_mle(counts.matrix)
    ours = np.array([board.by_name(n).rating for n in names])
    return {
        "aggregate_s": aggregate,
        "fit_s": fit,
        "fit_boot100_s": boot100,
        "fit_boot1000_s": boot1000,
        "max_diff_exact": float(np.abs(ours - reference).max()),
        "method": full.method_note,
        "reference": dict(zip(names, reference.tolist(), strict=True)),
    }


def time_fastchat(python: str, path: Path, seconds: float) -> dict[str, Any]:
    env = {**os.environ, "TQDM_DISABLE": "1"}
    done = subprocess.run(
        [python, __file__, "--fastchat-worker", str(path), "--fastchat-seconds", str(seconds)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"FastChat worker failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def fastchat_worker(path: str, seconds: float) -> None:
    """Runs inside the FastChat environment: fit once, then as many bootstrap rounds as fit in `seconds` (<= 100)."""
    import types

    import fastchat
    import pandas as pd

    # elo_analysis imports fastchat.model, whose __init__ pulls torch and transformers: an empty
    # package in its place is enough for the rating functions.
    stub = types.ModuleType("fastchat.model")
    stub.__path__ = [os.path.join(os.path.dirname(fastchat.__file__), "model")]
    sys.modules["fastchat.model"] = stub
    from fastchat.serve.monitor.elo_analysis import compute_elo_mle_with_tie, get_bootstrap_result

    battles = pd.read_parquet(path)
    compute_elo_mle_with_tie(battles.head(1000))  # pays sklearn's imports
    start = time.perf_counter()
    ratings = compute_elo_mle_with_tie(battles)
    fit = time.perf_counter() - start
    rounds = int(max(2, min(100, seconds // max(fit, 1e-3))))
    np.random.seed(0)
    start = time.perf_counter()
    get_bootstrap_result(battles, compute_elo_mle_with_tie, rounds)
    boot = time.perf_counter() - start
    print(json.dumps({"fit_s": fit, "rounds": rounds, "boot_s": boot, "ratings": ratings.to_dict()}))


def machine() -> str:
    model = platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ks", default="20,100")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fastchat-python", help="python of the FastChat environment; without it FastChat is skipped")
    parser.add_argument("--fastchat-seconds", type=float, default=240.0, help="time budget of FastChat's bootstrap")
    parser.add_argument("--fastchat-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fastchat_worker:
        fastchat_worker(args.fastchat_worker, args.fastchat_seconds)
        return

    print(f"machine: {machine()}")
    print(
        "| K | N | ours: rows->counts | fit | fit+100 boot | fit+1000 boot | max |ours-exact| Elo "
        "| FastChat fit | FastChat 100 rounds (measured) | FastChat fit+100 | max |FastChat-exact| Elo "
        "| speed-up (FastChat fit+100 / ours fit+1000) |"
    )
    print("|" + "---|" * 13)
    with tempfile.TemporaryDirectory() as scratch:
        for k in (int(v) for v in args.ks.split(",")):
            for n in (int(v) for v in args.sizes.split(",")):
                log = make_log(k, n, seed=k * 7 + n)
                ours = time_ours(log, k, args.repeats)
                row = [
                    str(k),
                    f"{n:,}",
                    f"{ours['aggregate_s'] * 1000:.0f} ms",
                    f"{ours['fit_s'] * 1000:.1f} ms",
                    f"{ours['fit_boot100_s']:.3f} s",
                    f"{ours['fit_boot1000_s']:.3f} s",
                    f"{ours['max_diff_exact']:.1e}",
                ]
                if args.fastchat_python:
                    path = Path(scratch) / f"battles-{k}-{n}.parquet"
                    write_parquet(log, k, path)
                    fc = time_fastchat(args.fastchat_python, path, args.fastchat_seconds)
                    per_round = fc["boot_s"] / fc["rounds"]
                    total = fc["fit_s"] + 100 * per_round
                    reference = ours["reference"]
                    names = sorted(reference)
                    theirs = np.array([fc["ratings"][name] for name in names])
                    theirs = theirs - theirs.mean() + 1000
                    diff = float(np.abs(theirs - np.array([reference[name] for name in names])).max())
                    extrapolated = "" if fc["rounds"] >= 100 else f" ({fc['rounds']} rounds, extrapolated)"
                    row += [
                        f"{fc['fit_s']:.2f} s",
                        f"{100 * per_round:.1f} s{extrapolated}",
                        f"{total:.1f} s",
                        f"{diff:.2f}",
                        f"{total / ours['fit_boot1000_s']:.0f}x",
                    ]
                else:
                    row += ["-"] * 5
                print("| " + " | ".join(row) + " |", flush=True)
                print(f"    ours: {ours['method']}", flush=True)


if __name__ == "__main__":
    main()
