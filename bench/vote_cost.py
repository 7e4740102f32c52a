"""Benchmark (issues 9, 18): CPU, queries and Redis round trips of one comparison, in process, both paths.

One scripted participant after another asks for a comparison and votes on it through Django's
ASGI handler (django.test.AsyncClient: the same middleware adaptation and thread hops as uvicorn,
without the socket), against a scratch site with the load benchmarks' campaign. Reports, per
request kind: process CPU ms (all threads), wall ms, SQL queries, Redis commands (a pipeline
counts as one round trip) and the database server's CPU over the run, for the two-request path
(issue, then vote) and the one-request path (a vote that brings the next comparison) side by side;
`--profile FILE` writes cProfile stats of the same requests through the WSGI test client (one thread; the ASGI
handler runs each request's sync part in a thread of its own, which cProfile does not follow).

    .venv/bin/python bench/vote_cost.py [--comparisons 400] [--pg postgres://postgres@127.0.0.1:5432]
        [--redis redis://127.0.0.1:6379/0] [--profile /tmp/vote.prof]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.loadkit import CAMPAIGN, VOTES, cpu_seconds, pids_named, scratch_site, setup_code  # noqa: E402


class Counts:
    """SQL queries and Redis round trips made while `kind` is set; installed once into the libraries."""

    def __init__(self) -> None:
        self.kind = ""
        self.queries: Counter[str] = Counter()
        self.redis: Counter[str] = Counter()
        self.redis_commands: Counter[tuple[str, str]] = Counter()
        self.sql: Counter[tuple[str, str]] = Counter()

    def install(self) -> None:
        import redis
        from django.db.backends import utils

        counts = self
        single = redis.Redis.execute_command
        piped = redis.client.Pipeline.execute

        def execute_command(client: Any, *args: Any, **options: Any) -> Any:
            if counts.kind and not isinstance(client, redis.client.Pipeline):
                counts.redis[counts.kind] += 1
                counts.redis_commands[(counts.kind, str(args[0]))] += 1
            return single(client, *args, **options)

        def execute(pipe: Any, *args: Any, **options: Any) -> Any:
            if counts.kind:
                counts.redis[counts.kind] += 1
                counts.redis_commands[(counts.kind, "pipeline")] += 1
            return piped(pipe, *args, **options)

        redis.Redis.execute_command = execute_command  # type: ignore[method-assign]
        redis.client.Pipeline.execute = execute  # type: ignore[method-assign]

        # On the class: under ASGI every request's sync code runs in a thread (and connection) of its own.
        sql_execute = utils.CursorWrapper._execute_with_wrappers

        def execute_with_wrappers(cursor: Any, sql: str, *args: Any, **kwargs: Any) -> Any:
            if counts.kind:
                counts.queries[counts.kind] += 1
                counts.sql[(counts.kind, sql.split()[0].upper())] += 1
            return sql_execute(cursor, sql, *args, **kwargs)

        utils.CursorWrapper._execute_with_wrappers = execute_with_wrappers  # type: ignore[method-assign]


def run(
    comparisons: int, participants: int, counts: Counts, *, asgi: bool, profile: Any = None, one_trip: bool = False
) -> dict[str, Any]:
    """Issue and vote `comparisons` times, participants taking turns; CPU, queries and round trips per request.

    With `one_trip`, a vote asks for the next comparison (`next` in its body), as the vote page does:
    a participant's first comparison is issued, every later one comes with the vote before it.
    """
    from django.test import AsyncClient, Client

    clients: list[Any] = [(AsyncClient if asgi else Client)() for _ in range(participants)]
    loop = asyncio.new_event_loop()

    def post(client: Any, path: str, body: dict[str, Any]) -> Any:
        if asgi:
            return loop.run_until_complete(client.post(path, body, content_type="application/json"))
        return client.post(path, body, content_type="application/json")

    cpu = {"issue": 0.0, "vote": 0.0}
    wall: dict[str, list[float]] = {"issue": [], "vote": []}
    requests = Counter[str]()
    pending: dict[int, str] = {}  # participant -> the token of the comparison they hold
    vote_body = {**VOTES, "dwell_ms": 1000, **({"next": {"exclude": []}} if one_trip else {})}
    pg_before = cpu_seconds(pids_named("postgres"))
    redis_before = cpu_seconds(pids_named("redis-server"))
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    for i in range(comparisons):
        who = i % participants
        client = clients[who]
        for kind in ("vote",) if who in pending else ("issue", "vote"):
            counts.kind = kind
            requests[kind] += 1
            if profile is not None:
                profile.enable()
            c0, w0 = time.process_time(), time.perf_counter()
            if kind == "issue":
                response = post(client, f"/api/v1/campaigns/{CAMPAIGN}/comparisons/next", {})
            else:
                response = post(client, f"/api/v1/comparisons/{pending.pop(who)}/votes", vote_body)
            cpu[kind] += time.process_time() - c0
            wall[kind].append((time.perf_counter() - w0) * 1000)
            if profile is not None:
                profile.disable()
            counts.kind = ""
            if response.status_code != 200:
                raise RuntimeError(f"{kind}: {response.status_code} {response.content[:300]!r}")
            following = response.json() if kind == "issue" else response.json().get("next")
            if following:
                pending[who] = following["token"]
    elapsed = time.perf_counter() - started
    loop.close()
    pg_cpu = cpu_seconds(pids_named("postgres")) - pg_before
    redis_cpu = cpu_seconds(pids_named("redis-server")) - redis_before
    n = comparisons

    def median(values: list[float]) -> float:
        return round(sorted(values)[len(values) // 2], 2) if values else 0.0

    return {
        "handler": "asgi" if asgi else "wsgi",
        "path": "vote+next (one request per comparison)" if one_trip else "issue, then vote",
        "comparisons": n,
        "participants": participants,
        "requests_per_comparison": round(sum(requests.values()) / n, 2),
        "load_average_before": round(load_before, 2),
        "seconds": round(elapsed, 1),
        "web_cpu_ms": {k: round(v * 1000 / n, 2) for k, v in cpu.items()}
        | {"per_comparison": round(sum(cpu.values()) * 1000 / n, 2)},
        "wall_ms_median": {k: median(v) for k, v in wall.items()},
        "queries_per_comparison": round(sum(counts.queries.values()) / n, 2),
        "sql_statements": {f"{k}:{c}": round(v / n, 2) for (k, c), v in sorted(counts.sql.items())},
        "redis_round_trips_per_comparison": round(sum(counts.redis.values()) / n, 2),
        "redis_commands": {f"{k}:{c}": round(v / n, 2) for (k, c), v in sorted(counts.redis_commands.items())},
        # Includes any other user of this PostgreSQL server during the run.
        "postgres_cpu_ms_per_comparison": round(pg_cpu * 1000 / n, 2),
        "redis_cpu_ms_per_comparison": round(redis_cpu * 1000 / n, 2),
    }


def show_sql() -> None:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.post(f"/api/v1/campaigns/{CAMPAIGN}/comparisons/next", {}, content_type="application/json")
    client.post(f"/api/v1/campaigns/{CAMPAIGN}/comparisons/next", {}, content_type="application/json")
    for kind in ("issue", "vote"):
        with CaptureQueriesContext(connection) as queries:
            if kind == "issue":
                response = client.post(
                    f"/api/v1/campaigns/{CAMPAIGN}/comparisons/next", {"exclude": []}, content_type="application/json"
                )
                token = response.json()["token"]
            else:
                client.post(
                    f"/api/v1/comparisons/{token}/votes", {**VOTES, "dwell_ms": 1000}, content_type="application/json"
                )
        print(f"--- {kind}: {len(queries)} queries")
        for query in queries:
            print(f"[{query['time']}] {query['sql'][:600]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comparisons", type=int, default=400)
    parser.add_argument("--participants", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=40, help="comparisons before measuring")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="'' for SQLite")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="'' for the in-memory cache")
    parser.add_argument("--profile", default="", help="write cProfile stats here and print the top functions")
    parser.add_argument("--show-sql", action="store_true", help="print the statements of one issue and one vote")
    parser.add_argument("--no-timing", action="store_true", help="skip the timed runs (with --profile or --show-sql)")
    args = parser.parse_args()

    name = f"poparena_vote_cost_{os.getpid()}"
    # Enough ready populations that no run meets a sold-out queue (10 prompts, 4 generators).
    per_queue = 20 + (3 * args.comparisons + 2 * args.warmup) // 10
    overrides = {
        "DEBUG": "false",
        "SECRET_KEY": f"bench-{os.getpid()}-not-a-production-secret",
        "SECURE_COOKIES": "false",
        "THROTTLE_ANON": "off",
        "ALLOWED_HOSTS": "testserver",  # the test clients' host name
    }
    with scratch_site(name, pg=args.pg, redis=args.redis, setup=setup_code(per_queue=per_queue), **overrides) as site:
        os.environ.update(site.env)
        os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
        import django

        django.setup()
        counts = Counts()
        counts.install()
        run(args.warmup, args.participants, counts, asgi=True)
        run(args.warmup, args.participants, counts, asgi=False)
        runs = [(asgi, one_trip) for asgi in (True, False) for one_trip in (False, True)]
        for asgi, one_trip in [] if args.no_timing else runs:
            for counter in (counts.queries, counts.sql, counts.redis, counts.redis_commands):
                counter.clear()
            result = run(args.comparisons, args.participants, counts, asgi=asgi, one_trip=one_trip)
            result["backend"] = site.vendor + (" + redis" if args.redis else "")
            print(json.dumps(result, indent=2), flush=True)
        if args.profile:
            # One thread under the test client (WSGI handler): the same middleware, DRF and services.
            profile = cProfile.Profile(time.process_time)  # CPU, not waits on the database
            run(args.comparisons, args.participants, counts, asgi=False, profile=profile)
            profile.dump_stats(args.profile)
            pstats.Stats(args.profile).sort_stats("cumulative").print_stats(60)
        if args.show_sql:
            show_sql()
        from django.db import connections

        connections.close_all()


if __name__ == "__main__":
    main()
