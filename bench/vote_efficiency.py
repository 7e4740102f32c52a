"""Benchmark: votes needed to rank 20 generators right (Kendall tau >= 0.9, and staying there), active vs uniform.

Target (issue): the `active` policy needs at most half the votes of `uniform` (median over >= 20 seeds).

Simulation: K = 20 generators with known Bradley-Terry strengths, either evenly spaced or drawn
from a normal distribution; every vote is a tie with probability 0.1, otherwise the winner is drawn
from the BT probability. Votes come in batches; after each batch the ranking is refitted with
`arena.ranking.fit_ratings` (the active policy uses the fit's bootstrap intervals to pick the next
batch through `arena.sampling.active_weights`; uniform draws every pair equally). A batch is 5% of
the votes so far (at least `--batch`), so a run refits about 100 times instead of after every vote.
"Votes needed" is the first checkpoint from which Kendall tau between fitted and true ratings stays
>= 0.9 up to the horizon (`--horizon` votes); a run that never settles counts as the horizon.

A third policy, `oracle`, is a yardstick no real campaign can use: it knows the true order and asks
only about pairs at most 3 true ranks apart (the best of the neighbourhood sizes 1, 2, 3 and 19
tried). It shows how much any choice of pairs can save on a given spread of strengths.

Scenarios: `even` (27 Elo between neighbours, 520 from first to last), `normal` (strengths drawn
N(0, 0.75^2) in natural units, sd 130 Elo, fresh per seed), and on request `even-wide` (55 Elo
apart; uniform then settles within a few hundred votes, so the 100-vote checkpoints dominate).

Run:
    .venv/bin/python bench/vote_efficiency.py [--seeds 20] [--horizon 20000] [--boot 100] [--kinds even,normal]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from arena.ranking import FIRST_WINS, SECOND_WINS, TIE, PairCounts, fit_ratings  # noqa: E402
from arena.sampling import Pair, active_weights, all_pairs, sample_pairs  # noqa: E402

K = 20
TIE_RATE = 0.1


def true_strengths(kind: str, seed: int) -> np.ndarray:
    if kind == "even":
        return np.linspace(-1.5, 1.5, K)
    if kind == "even-wide":
        return np.linspace(-3.0, 3.0, K)
    return np.random.default_rng(10_000 + seed).normal(0.0, 0.75, K)


def oracle_weights(truth: np.ndarray, reach: int = 3) -> dict[Pair, float]:
    rank = np.argsort(np.argsort(truth))
    return {(a, b): float(abs(rank[a] - rank[b]) <= reach) for a, b in all_pairs(list(range(K)))}


def simulate(kind: str, policy: str, seed: int, horizon: int, batch: int, boot: int) -> tuple[int, int]:
    """Votes needed, and how many refits the run made."""
    truth = true_strengths(kind, seed)
    names = [f"g{i:02d}" for i in range(K)]
    rng = random.Random(seed)
    outcomes = np.random.default_rng(seed)
    first: list[int] = []
    second: list[int] = []
    outcome: list[int] = []
    pairs = all_pairs(list(range(K)))
    weights: dict[Pair, float] = oracle_weights(truth) if policy == "oracle" else dict.fromkeys(pairs, 1.0)
    checkpoints: list[tuple[int, float]] = []
    fits = 0
    while len(first) < horizon:
        size = min(horizon - len(first), max(batch, len(first) // 20))
        chosen = sample_pairs(weights, size, rng)
        a = np.array([p[0] for p in chosen])
        b = np.array([p[1] for p in chosen])
        swap = np.array([rng.random() < 0.5 for _ in chosen])  # sides are random, as the caller does
        a, b = np.where(swap, b, a), np.where(swap, a, b)
        p_a = 1 / (1 + np.exp(truth[b] - truth[a]))
        u = outcomes.random(size)
        tie = outcomes.random(size) < TIE_RATE
        first.extend(a.tolist())
        second.extend(b.tolist())
        outcome.extend(np.where(tie, TIE, np.where(u < p_a, FIRST_WINS, SECOND_WINS)).tolist())
        counts = PairCounts.from_indices(names, first, second, outcome)
        board = fit_ratings(counts, bootstrap=boot if policy == "active" else 0, seed=seed)
        fits += 1
        rating = board.ratings()
        tau = kendalltau([rating[n] for n in names], truth).statistic
        checkpoints.append((len(first), float(tau)))
        if policy == "active":
            weights = active_weights({i: board.by_name(names[i]) for i in range(K)})
    needed = horizon
    for votes, tau in reversed(checkpoints):
        if tau < 0.9:
            break
        needed = votes
    return needed, fits


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
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--horizon", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--boot", type=int, default=100, help="bootstrap rounds per refit for the active policy")
    parser.add_argument("--kinds", default="even,normal", help="scenarios, comma-separated")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"K={K}, ties {TIE_RATE:.0%}, horizon {args.horizon} votes, batch max({args.batch}, 5% of votes)")
    for kind in args.kinds.split(","):
        medians = {}
        per_seed: dict[str, list[int]] = {}
        for policy in ("uniform", "active", "oracle"):
            start = time.perf_counter()
            results = [simulate(kind, policy, seed, args.horizon, args.batch, args.boot) for seed in range(args.seeds)]
            needed = [r[0] for r in results]
            per_seed[policy] = needed
            medians[policy] = statistics.median(needed)
            unsettled = sum(1 for n in needed if n >= args.horizon)
            print(
                f"{kind:9s} {policy:7s}: median {medians[policy]:7.0f} votes "
                f"(quartiles {np.percentile(needed, 25):.0f}-{np.percentile(needed, 75):.0f}, "
                f"{unsettled} of {args.seeds} runs unsettled at the horizon), "
                f"{time.perf_counter() - start:.1f} s",
                flush=True,
            )
        paired = statistics.median(a / u for a, u in zip(per_seed["active"], per_seed["uniform"], strict=True))
        wins = sum(a < u for a, u in zip(per_seed["active"], per_seed["uniform"], strict=True))
        print(f"{kind:9s} per seed: median active/uniform {paired:.2f}; active fewer votes in {wins} of {args.seeds}")
        ratio = medians["active"] / medians["uniform"]
        verdict = "meets" if ratio <= 0.5 else "MISSES"
        print(
            f"{kind:9s} active/uniform = {ratio:.2f} ({verdict} the target <= 0.50); "
            f"oracle/uniform = {medians['oracle'] / medians['uniform']:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
