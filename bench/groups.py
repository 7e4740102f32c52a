"""Benchmark: the group test's power and calibration, raking's recovery of a target population, and timings.

Targets (issue 33):
- two groups that prefer different generators (one judges colour spread, wide > base > narrow; the other
  prefers base) are told apart at p < 0.01 with at most 150 comparisons per group;
- two groups drawn from the same judge give p < 0.05 in about 5% of 200 seeded runs;
- raking a crowd whose group shares differ from the target by 30 points recovers the target population's
  ranking (Kendall tau against the truth) better than the unweighted board;
- boards per group and the test on 100,000 votes from 2,000 participants: time to compute.

Everything here is arena.groups on simulated participants (no database, no HTTP): each participant has their
own taste, the group's strengths plus N(0, spread^2) per generator, so their votes are correlated as real
participants' are. The web's payloads add one read of the counted votes with their participant (the ORM,
cached by the tallies' version) to the timings below.

Run (the full version: about 10 minutes on one core):
    .venv/bin/python bench/groups.py
A short version:
    .venv/bin/python bench/groups.py --runs 40 --power-runs 10 --raking-runs 10 --timing-rounds 50
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from arena.groups import (  # noqa: E402 (after the path is set)
    ParticipantVotes,
    board,
    compare_groups,
    parse_targets,
    weighted_board,
)
from arena.ranking import FIRST_WINS, SECOND_WINS, TIE, PairCounts, fit_ratings  # noqa: E402

NAMES3 = ("wide", "base", "narrow")


def simulate(
    group_means: list[np.ndarray],
    people: list[int],
    votes_each: int,
    spread: float,
    rng: np.random.Generator,
    names: tuple[str, ...],
    ties: float = 0.05,
) -> tuple[ParticipantVotes, list[str]]:
    """Votes of `people[g]` participants in each group g, `votes_each` each on uniform random pairs."""
    k = len(names)
    who, first, second, outcome, labels = [], [], [], [], []
    n = 0
    for g, (mean, count) in enumerate(zip(group_means, people, strict=True)):
        for _ in range(count):
            taste = mean + rng.normal(0, spread, k)
            i = rng.integers(0, k, votes_each)
            j = (i + rng.integers(1, k, votes_each)) % k
            p = 1 / (1 + np.exp(taste[j] - taste[i]))
            draw = rng.random(votes_each)
            tied = rng.random(votes_each) < ties
            o = np.where(tied, TIE, np.where(draw < p, FIRST_WINS, SECOND_WINS))
            who.append(np.full(votes_each, n))
            first.append(i)
            second.append(j)
            outcome.append(o)
            labels.append(f"g{g}")
            n += 1
    votes = ParticipantVotes(
        names,
        tuple(f"p{x:05d}" for x in range(n)),
        np.concatenate(who),
        np.concatenate(first),
        np.concatenate(second),
        np.concatenate(outcome),
    )
    return votes, labels


def power(runs: int, permutations: int) -> None:
    # 15 participants x 10 comparisons = 150 per group.
    diverse = np.array([1.0, 0.0, -1.0])
    plain = np.array([-0.5, 1.0, -0.5])
    below = []
    started = time.perf_counter()
    for run in range(runs):
        rng = np.random.default_rng(run)
        votes, labels = simulate([diverse, plain], [15, 15], 10, 0.5, rng, NAMES3)
        result = compare_groups(votes, labels, permutations=permutations, rounds=0, seed=run)
        below.append(result.p_value < 0.01)
    took = time.perf_counter() - started
    print(
        f"power: two groups (wide > base > narrow vs base first), 150 comparisons each, {permutations} permutations: "
        f"p < 0.01 in {sum(below)} of {runs} runs ({100 * sum(below) / runs:.0f}%); {took / runs:.2f} s a test"
    )


def calibration(runs: int, permutations: int) -> None:
    judge = np.array([0.6, 0.0, -0.6])
    rejected = []
    started = time.perf_counter()
    for run in range(runs):
        rng = np.random.default_rng(10_000 + run)
        votes, _ = simulate([judge], [30], 10, 1.0, rng, NAMES3)
        labels = [f"g{g}" for g in rng.permutation([0] * 15 + [1] * 15)]
        result = compare_groups(votes, labels, permutations=permutations, rounds=0, seed=run)
        rejected.append(result.p_value < 0.05)
    rate = sum(rejected) / runs
    sd = math.sqrt(0.05 * 0.95 / runs)
    took = time.perf_counter() - started
    print(
        f"calibration: two groups of 15 from the same judge (participant spread 1.0), {permutations} permutations: "
        f"p < 0.05 in {sum(rejected)} of {runs} runs = {100 * rate:.1f}% (5% +- {200 * sd:.1f} at 2 sd); "
        f"{took / runs:.2f} s a test"
    )


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-a between two score vectors (no ties expected)."""
    n = len(a)
    concordant = 0
    for i in range(n):
        for j in range(i + 1, n):
            concordant += np.sign(a[i] - a[j]) * np.sign(b[i] - b[j])
    return float(concordant / (n * (n - 1) / 2))


def raking(runs: int, rounds: int) -> None:
    # Six generators; men and women rank them in opposite orders (with an offset so the mixture is not flat).
    k = 6
    names = tuple(f"gen{i}" for i in range(k))
    men = np.linspace(1.2, -1.2, k)
    women = np.linspace(-1.0, 1.4, k)
    target_women = 0.7  # the target population: 70% women; the crowd: 40% women (30 points off)
    # The truth: the fit on the target population's expected outcomes (every pair, mixed by the target shares).
    wins = np.zeros((k, k))
    for share, s in ((1 - target_women, men), (target_women, women)):
        wins += share * 1000 / (1 + np.exp(s[None, :] - s[:, None]))
    np.fill_diagonal(wins, 0)
    truth = fit_ratings(PairCounts(names, wins, np.zeros((k, k))), bootstrap=0).ratings()
    truth_vector = np.array([truth[n] for n in names])
    targets = parse_targets(
        {"margins": [{"questions": ["gender"], "shares": {"man": 1 - target_women, "woman": target_women}}]}
    )
    taus_weighted, taus_plain, sizes = [], [], []
    for run in range(runs):
        rng = np.random.default_rng(20_000 + run)
        votes, labels = simulate([men, women], [120, 80], 15, 0.5, rng, names)
        answers = [{"gender": "man" if label == "g0" else "woman"} for label in labels]
        result = weighted_board(votes, answers, targets.margins, cap=targets.cap, rounds=rounds, seed=run)
        weighted = result.weighted.ratings()
        plain = result.unweighted.ratings()
        taus_weighted.append(kendall_tau(np.array([weighted[n] for n in names]), truth_vector))
        taus_plain.append(kendall_tau(np.array([plain[n] for n in names]), truth_vector))
        sizes.append(result.raking.effective_size)
    print(
        f"raking: crowd 40% women, target 70% (30 points), 200 participants x 15 votes, 6 generators, {runs} runs: "
        f"Kendall tau vs the target population's ranking: weighted {np.mean(taus_weighted):.2f} "
        f"(min {np.min(taus_weighted):.2f}), unweighted {np.mean(taus_plain):.2f} (min {np.min(taus_plain):.2f}); "
        f"effective sample size {np.mean(sizes):.0f} of 200"
    )


def timing(rounds: int, permutations: int) -> None:
    k = 8
    names = tuple(f"gen{i}" for i in range(k))
    rng = np.random.default_rng(7)
    # Warm-up: pay the imports (SciPy's sparse matrices, choix and scipy.stats) outside the timings.
    warm, _ = simulate([np.zeros(k)], [3], 20, 0.5, rng, names)
    board(warm, rounds=1)
    means = [rng.normal(0, 0.7, k) for _ in range(4)]
    started = time.perf_counter()
    votes, labels = simulate(means, [500, 500, 500, 500], 50, 0.5, rng, names)
    built = time.perf_counter() - started
    answers = [{"group": label} for label in labels]
    started = time.perf_counter()
    votes.counts()  # builds the participant table once, as the first board of a request does
    table = time.perf_counter() - started
    started = time.perf_counter()
    members = [i for i, label in enumerate(labels) if label == "g0"]
    board(votes, members=members, rounds=rounds, seed=0)
    one_group = time.perf_counter() - started
    started = time.perf_counter()
    result = compare_groups(votes, labels, permutations=permutations, rounds=rounds, seed=0, min_size=5)
    test = time.perf_counter() - started
    targets = parse_targets({"margins": [{"questions": ["group"], "shares": {f"g{g}": 0.25 for g in range(4)}}]})
    started = time.perf_counter()
    weighted_board(votes, answers, targets.margins, rounds=rounds, seed=0)
    weighted = time.perf_counter() - started
    print(
        f"timing: {len(votes.participant):,} votes, {votes.size:,} participants, {k} generators, 4 groups, "
        f"{rounds} bootstrap rounds, {permutations} permutations: simulated in {built:.2f} s, participant table "
        f"{table:.2f} s; one group's board {one_group:.2f} s; the test with 4 boards and the differences "
        f"{test:.2f} s (p = {result.p_value:.3f}); the weighted board beside the unweighted {weighted:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="calibration runs (default 200)")
    parser.add_argument("--permutations", type=int, default=199)
    parser.add_argument("--power-runs", type=int, default=50)
    parser.add_argument("--raking-runs", type=int, default=30)
    parser.add_argument("--raking-rounds", type=int, default=0, help="bootstrap rounds of the weighted board")
    parser.add_argument("--timing-rounds", type=int, default=200)
    parser.add_argument("--skip", default="", help="comma-separated: power, calibration, raking, timing")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    print(f"# bench/groups.py on {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    if "power" not in skip:
        power(args.power_runs, args.permutations)
    if "calibration" not in skip:
        calibration(args.runs, args.permutations)
    if "raking" not in skip:
        raking(args.raking_runs, args.raking_rounds)
    if "timing" not in skip:
        timing(args.timing_rounds, args.permutations)


if __name__ == "__main__":
    main()
