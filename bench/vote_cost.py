"""Benchmark (issues 9, 18): CPU, queries and Redis round trips of one comparison, in process, both paths.

One scripted participant after another asks for a comparison and votes on it, against a scratch
site with the load benchmarks' campaign, through the ASGI application exactly as the server
serves it (config.asgi.application: its routing, the API's own middleware chain and thread hops,
driven by a small in-process ASGI client, without the socket) and through Django's WSGI test
client. Reports, per request kind: process CPU ms (all threads), wall ms, SQL queries, Redis
round trips (a pipeline or MULTI/EXEC counts as one; the channel layer's `redis.asyncio` calls,
such as the leaderboard announcement after a vote, are counted beside the cache's, and listed
as `async:` commands) and the database server's CPU over the run, for the two-request path
(issue, then vote) and the one-request path (a vote that brings the next comparison) side by
side; `--profile FILE` writes cProfile stats of the same requests through the WSGI test client
(one thread; the ASGI handler runs each request's sync part in a thread of its own, which
cProfile does not follow). `--statements` also charges PostgreSQL's CPU to each statement: the clock
ticks its backend process used around each call (read from /proc, so the server must run on this
machine), summed per statement text, as `postgres_cpu_by_statement`.

`--ab REV` measures the code of git revision REV first (an exported copy, `git archive`, in a
process of its own; only the two-request path, which is all it had) and then this checkout
(or `--new REV2`), and prints the old and new figures side by side.

    .venv/bin/python bench/vote_cost.py [--comparisons 400] [--pg postgres://postgres@127.0.0.1:5432]
        [--redis redis://127.0.0.1:6379/0] [--profile /tmp/vote.prof] [--ab 00e5cfd^] [--handlers asgi]
        [--statements]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.loadkit import (  # noqa: E402
    CAMPAIGN,
    VOTES,
    cpu_seconds,
    exported_tree,
    pids_named,
    revision_of,
    scratch_site,
    setup_code,
)


class Counts:
    """SQL queries and Redis round trips made while `kind` is set; installed once into the libraries."""

    def __init__(self) -> None:
        self.kind = ""
        self.queries: Counter[str] = Counter()
        self.redis: Counter[str] = Counter()
        self.redis_commands: Counter[tuple[str, str]] = Counter()
        self.sql: Counter[tuple[str, str]] = Counter()
        # --statements: PostgreSQL CPU per statement, in clock ticks of the backend serving it (see timed_statement).
        self.per_statement = False
        self.statement_ticks: Counter[str] = Counter()
        self.statement_calls: Counter[str] = Counter()

    def statements(self, top: int = 10) -> list[dict[str, Any]]:
        """The statements that cost PostgreSQL most CPU, each with its calls and ms of CPU per call."""
        tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
        return [
            {
                "statement": text,
                "calls": self.statement_calls[text],
                "postgres_cpu_ms_per_call": round(ticks * tick_ms / self.statement_calls[text], 2),
                "postgres_cpu_ms": round(ticks * tick_ms),
            }
            for text, ticks in self.statement_ticks.most_common(top)
        ]

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

        # The channel layer (channels-redis) talks to Redis through redis.asyncio.
        from redis.asyncio import client as aio

        async_single = aio.Redis.execute_command
        async_piped = aio.Pipeline.execute

        async def async_execute_command(client: Any, *args: Any, **options: Any) -> Any:
            if counts.kind and not isinstance(client, aio.Pipeline):
                counts.redis[counts.kind] += 1
                counts.redis_commands[(counts.kind, f"async:{args[0]}")] += 1
            return await async_single(client, *args, **options)

        async def async_execute(pipe: Any, *args: Any, **options: Any) -> Any:
            if counts.kind:
                counts.redis[counts.kind] += 1
                counts.redis_commands[(counts.kind, "async:pipeline")] += 1
            return await async_piped(pipe, *args, **options)

        aio.Redis.execute_command = async_execute_command  # type: ignore[method-assign]
        aio.Pipeline.execute = async_execute  # type: ignore[method-assign]

        # On the class: under ASGI every request's sync code runs in a thread (and connection) of its own.
        sql_execute = utils.CursorWrapper._execute_with_wrappers

        def execute_with_wrappers(cursor: Any, sql: str, *args: Any, **kwargs: Any) -> Any:
            if counts.kind:
                counts.queries[counts.kind] += 1
                counts.sql[(counts.kind, sql.split()[0].upper())] += 1
                if counts.per_statement and cursor.db.vendor == "postgresql":
                    return timed_statement(counts, cursor, sql, lambda: sql_execute(cursor, sql, *args, **kwargs))
            return sql_execute(cursor, sql, *args, **kwargs)

        utils.CursorWrapper._execute_with_wrappers = execute_with_wrappers  # type: ignore[method-assign]


def backend_ticks(pid: int) -> int:
    """User + system CPU clock ticks of one process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def timed_statement(counts: Counts, cursor: Any, sql: str, execute: Any) -> Any:
    """Run one statement and charge its PostgreSQL backend's CPU ticks meanwhile to the statement's text.

    A tick is 10 ms, so one call is mostly 0 or 1 tick; over hundreds of calls the sums are what each statement
    costs (the backend does nothing else meanwhile: one connection, one statement at a time). Needs the server on
    this machine.
    """
    pid = cursor.db.connection.info.backend_pid
    key = " ".join(sql.split())[:100]
    before = backend_ticks(pid)
    try:
        return execute()
    finally:
        counts.statement_ticks[key] += backend_ticks(pid) - before
        counts.statement_calls[key] += 1


@dataclass
class AppResponse:
    status_code: int
    content: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.content)


class AppClient:
    """POSTs JSON to an ASGI application in this process and keeps the session cookie, as a browser would."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.cookies: dict[str, str] = {}

    async def post(self, path: str, body: dict[str, Any], content_type: str = "application/json") -> AppResponse:
        data = json.dumps(body).encode()
        headers = [
            (b"host", b"testserver"),
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(data)).encode()),
        ]
        if self.cookies:
            headers.append((b"cookie", "; ".join(f"{k}={v}" for k, v in self.cookies.items()).encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        incoming = [{"type": "http.request", "body": data, "more_body": False}]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            if incoming:
                return incoming.pop()
            # The client stays connected: Django's disconnect listener waits here until it is cancelled.
            await asyncio.Event().wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await self.app(scope, receive, send)
        start = next(m for m in sent if m["type"] == "http.response.start")
        for name, value in start["headers"]:
            if name.lower() == b"set-cookie":
                cookie, _, _ = value.decode().partition(";")
                key, _, morsel = cookie.partition("=")
                self.cookies[key.strip()] = morsel
        content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return AppResponse(start["status"], content, start["headers"])


def run(
    comparisons: int, participants: int, counts: Counts, *, asgi: bool, profile: Any = None, one_trip: bool = False
) -> dict[str, Any]:
    """Issue and vote `comparisons` times, participants taking turns; CPU, queries and round trips per request.

    With `one_trip`, a vote asks for the next comparison (`next` in its body), as the vote page does:
    a participant's first comparison is issued, every later one comes with the vote before it.
    """
    from django.test import Client

    from config.asgi import application

    clients: list[Any] = [AppClient(application) if asgi else Client() for _ in range(participants)]
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
    # The one-request path: a vote that brings the next comparison.
    response = client.post(f"/api/v1/campaigns/{CAMPAIGN}/comparisons/next", {}, content_type="application/json")
    body = {**VOTES, "dwell_ms": 1000, "next": {"exclude": []}}
    with CaptureQueriesContext(connection) as queries:
        client.post(f"/api/v1/comparisons/{response.json()['token']}/votes", body, content_type="application/json")
    print(f"--- vote+next: {len(queries)} queries")
    for query in queries:
        print(f"[{query['time']}] {query['sql'][:600]}")


def measure(args: argparse.Namespace, code: Path, paths: list[str]) -> list[dict[str, Any]]:
    """Serve `code` in this process (this checkout, or an exported revision) and time each handler and path."""
    if code != ROOT:
        # Django, the settings and every app come from the exported copy; the bench's own helpers are loaded already.
        sys.path.insert(0, str(code))
    name = f"poparena_vote_cost_{os.getpid()}"
    # Enough ready populations that no run meets a sold-out queue (10 prompts, 4 generators).
    per_queue = 20 + (3 * args.comparisons + 2 * args.warmup) // 10
    overrides = {
        "DEBUG": "false",
        "SECRET_KEY": f"bench-{os.getpid()}-not-a-production-secret",
        "SECURE_COOKIES": "false",
        "THROTTLE_ANON": "off",
        "THROTTLE_NEW_SESSION": "off",  # every scripted participant is a new session from one address
        "ALLOWED_HOSTS": "testserver",  # the test clients' host name
    }
    results = []
    setup = setup_code(per_queue=per_queue)
    with scratch_site(name, pg=args.pg, redis=args.redis, setup=setup, root=code, **overrides) as site:
        os.environ.update(site.env)
        os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
        import django

        django.setup()
        counts = Counts()
        counts.install()
        counts.per_statement = args.statements
        for handler in args.handlers:
            run(args.warmup, args.participants, counts, asgi=handler == "asgi")
        runs = [(handler, path) for handler in args.handlers for path in paths]
        for handler, path in [] if args.no_timing else runs:
            for counter in (counts.queries, counts.sql, counts.redis, counts.redis_commands):
                counter.clear()
            counts.statement_ticks.clear()
            counts.statement_calls.clear()
            result = run(
                args.comparisons, args.participants, counts, asgi=handler == "asgi", one_trip=path == "vote+next"
            )
            if args.statements:
                result["postgres_cpu_by_statement"] = counts.statements()
            result["backend"] = site.vendor + (" + redis" if args.redis else "")
            result["code"] = revision_of(code)
            print(json.dumps(result, indent=2), flush=True)
            results.append(result)
        if args.profile:
            # One thread under the test client (WSGI handler): the same middleware, DRF and services; the first
            # of --paths.
            profile = cProfile.Profile(time.process_time)  # CPU, not waits on the database
            one_trip = args.paths[0] == "vote+next"
            run(args.comparisons, args.participants, counts, asgi=False, profile=profile, one_trip=one_trip)
            profile.dump_stats(args.profile)
            pstats.Stats(args.profile).sort_stats("cumulative").print_stats(60)
        if args.show_sql:
            show_sql()
        from django.db import connections

        connections.close_all()
    return results


def measure_in_child(args: argparse.Namespace, code: Path, paths: list[str]) -> list[dict[str, Any]]:
    """measure() in a process of its own: one process imports one revision's Django apps."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [sys.executable, __file__, "--code", str(code), "--json-out", out.name, "--paths", *paths]
        command += ["--comparisons", str(args.comparisons), "--participants", str(args.participants)]
        command += ["--warmup", str(args.warmup), "--pg", args.pg, "--redis", args.redis, "--handlers", *args.handlers]
        subprocess.run(command, check=True, stdout=sys.stderr)
        results: list[dict[str, Any]] = json.loads(Path(out.name).read_text())
        return results


def side_by_side(results: list[dict[str, Any]]) -> str:
    """The figures of every run as one Markdown table (as BENCHMARKS.md shows them)."""
    lines = [
        "| code | handler, path | requests per comparison | web CPU ms per comparison (issue + vote) "
        "| PostgreSQL CPU ms | queries | Redis round trips (of them channel layer) | load before |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cpu = r["web_cpu_ms"]
        layer = sum(v for k, v in r["redis_commands"].items() if ":async:" in k)
        lines.append(
            f"| {r['arm']} {r['code']} | {r['handler']}, {r['path']} | {r['requests_per_comparison']} "
            f"| {cpu['per_comparison']} ({cpu['issue']} + {cpu['vote']}) | {r['postgres_cpu_ms_per_comparison']} "
            f"| {r['queries_per_comparison']} | {r['redis_round_trips_per_comparison']} ({round(layer, 2)}) "
            f"| {r['load_average_before']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comparisons", type=int, default=400)
    parser.add_argument("--participants", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=40, help="comparisons before measuring")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="'' for SQLite")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="'' for the in-memory cache")
    parser.add_argument("--handlers", nargs="+", choices=["asgi", "wsgi"], default=["asgi", "wsgi"])
    parser.add_argument("--paths", nargs="+", choices=["issue+vote", "vote+next"], default=["issue+vote", "vote+next"])
    parser.add_argument("--ab", metavar="REV", default="", help="first measure git revision REV (issue+vote only)")
    parser.add_argument(
        "--new", metavar="REV", default="", help="with --ab: measure REV as the new code, not the checkout"
    )
    parser.add_argument("--profile", default="", help="write cProfile stats here and print the top functions")
    parser.add_argument("--show-sql", action="store_true", help="print the statements of one issue and one vote")
    parser.add_argument("--no-timing", action="store_true", help="skip the timed runs (with --profile or --show-sql)")
    parser.add_argument(
        "--statements",
        action="store_true",
        help="also report PostgreSQL's CPU per statement (its backend's clock ticks around each call; local server)",
    )
    parser.add_argument("--code", default="", help=argparse.SUPPRESS)  # a child of --ab: the code to serve
    parser.add_argument("--json-out", default="", help=argparse.SUPPRESS)  # a child of --ab: where its results go
    args = parser.parse_args()

    if args.ab or args.new:
        if args.profile or args.show_sql or args.statements:
            parser.error("--profile, --show-sql and --statements measure one revision: leave out --ab and --new")
        results = []
        with ExitStack() as trees:
            arms = [("old", trees.enter_context(exported_tree(args.ab)), ["issue+vote"])] if args.ab else []
            arms.append(("new", trees.enter_context(exported_tree(args.new)) if args.new else ROOT, args.paths))
            for label, code, paths in arms:
                results += [{"arm": label, **r} for r in measure_in_child(args, code, paths)]
        print(side_by_side(results))
        return
    results = measure(args, Path(args.code) if args.code else ROOT, args.paths)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results))


if __name__ == "__main__":
    main()
