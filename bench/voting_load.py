"""Benchmark: 50 scripted participants voting through the JSON API against PostgreSQL.

Targets (issue 5): p99 under 50 ms to issue the next comparison and to record a vote; no
lost or duplicated vote. Reports p50/p99 of both calls and the votes per second sustained.

Run (PostgreSQL on 127.0.0.1:5432 with trust auth, as in CI):
    .venv/bin/python bench/voting_load.py [--participants 50] [--comparisons 20] [--server daphne|uvicorn]
        [--workers N] [--redis redis://127.0.0.1:6379/0]

It creates a scratch database, fills a campaign with ready populations directly (this
measures the voting path, not generation: image rows share a few files), starts the ASGI
server as a subprocess, and drives it from threads, each with its own session cookie.
Each participant waits --think-ms (on average) between seeing a comparison and voting, as a
person would; --think-ms 0 measures the throughput ceiling instead. Latencies are measured
by the client over loopback, so they include HTTP and the client's own share of this
machine's 2 cores: an upper bound on the server's time. `--path vote+next` makes one request
per comparison, as the vote page does (issue 18); bench/load_faults.py --ab compares revisions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.loadkit import PATHS, Participant, drive, merge, percentile, setup_code, warm_up  # noqa: E402
from tests.servers import asgi_server, manage, server_env  # noqa: E402

# A participant still waiting for a comparison this long after the start gives up.
GIVE_UP_S = 600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=50)
    parser.add_argument("--comparisons", type=int, default=20, help="comparisons each participant votes on")
    parser.add_argument("--generators", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=10)
    parser.add_argument("--per-queue", type=int, default=60, help="ready populations per (generator, prompt)")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--think-ms", type=int, default=2000, help="mean time a participant looks before voting")
    parser.add_argument("--server", choices=["daphne", "uvicorn"], default="uvicorn")
    parser.add_argument("--workers", type=int, default=2, help="server processes (uvicorn only)")
    parser.add_argument("--redis", default="", help="REDIS_URL for the channel layer and cache (needed by >1 worker)")
    parser.add_argument("--path", choices=PATHS, default="issue+vote", help="two requests per comparison, or one")
    args = parser.parse_args()

    database = f"poparena_bench_{os.getpid()}"
    with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    try:
        with tempfile.TemporaryDirectory() as tmp:
            extra = {"REDIS_URL": args.redis, "CACHE_PREFIX": database} if args.redis else {}
            # Production settings: DEBUG off (no query log, no static-file rescans per request).
            env = server_env(
                Path(tmp),
                DATABASE_URL=f"{args.pg}/{database}",
                LOG_LEVEL="WARNING",
                DEBUG="false",
                SECRET_KEY=f"bench-{os.getpid()}-not-a-production-secret",
                SECURE_COOKIES="false",
                **extra,
            )
            manage(env, "migrate", "--noinput")
            setup = setup_code(generators=args.generators, prompts=args.prompts, per_queue=args.per_queue)
            manage(env, "shell", "--no-imports", "-c", setup)
            with asgi_server(env, args.server, args.workers) as base:
                warm_up(base, args.workers)
                give_up = time.perf_counter() + GIVE_UP_S
                participants = [
                    Participant(
                        base,
                        comparisons=args.comparisons,
                        deadline=give_up,
                        think_ms=args.think_ms,
                        seed=i,
                        path=args.path,
                    )
                    for i in range(args.participants)
                ]
                elapsed = drive(participants)
            with psycopg.connect(f"{args.pg}/{database}") as db:
                stored = (db.execute("SELECT count(*) FROM arena_vote").fetchone() or (0,))[0]
                per_comparison = (
                    db.execute(
                        "SELECT count(*) FROM (SELECT comparison_id FROM arena_vote GROUP BY comparison_id "
                        "HAVING count(*) <> 2) AS odd"
                    ).fetchone()
                    or (0,)
                )[0]
    finally:
        with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    tally = merge(participants)
    issue, votes = tally.issue_ms, tally.vote_ms
    issue_server, vote_server = tally.issue_server_ms, tally.vote_server_ms
    accepted = len(tally.acknowledged)
    errors = tally.errors + tally.server_errors
    result = {
        "participants": args.participants,
        "think_ms": args.think_ms,
        "path": args.path,
        "comparisons_voted": accepted,
        "votes_stored": stored,
        "votes_expected": 2 * accepted,
        "comparisons_without_exactly_two_votes": per_comparison,
        "lost_or_duplicated": stored != 2 * accepted or per_comparison != 0,
        "errors": len(errors),
        "first_errors": errors[:3],
        "server_issue_ms_p50": round(statistics.median(issue_server), 1) if issue_server else None,
        "server_issue_ms_p99": round(percentile(issue_server, 0.99), 1) if issue_server else None,
        "server_vote_ms_p50": round(statistics.median(vote_server), 1) if vote_server else None,
        "server_vote_ms_p99": round(percentile(vote_server, 0.99), 1) if vote_server else None,
        "client_issue_ms_p50": round(statistics.median(issue), 1) if issue else None,
        "client_issue_ms_p99": round(percentile(issue, 0.99), 1) if issue else None,
        "client_vote_ms_p50": round(statistics.median(votes), 1) if votes else None,
        "client_vote_ms_p99": round(percentile(votes, 0.99), 1) if votes else None,
        "comparisons_per_s": round(accepted / elapsed, 1),
        "criterion_votes_per_s": round(2 * accepted / elapsed, 1),
        "target_p99_ms": 50,
        "server": f"{args.server} x{args.workers}" + (" + redis" if args.redis else ""),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
