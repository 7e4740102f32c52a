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
machine's 2 cores: an upper bound on the server's time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.servers import asgi_server, manage, server_env  # noqa: E402

SETUP = """
import hashlib
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from annotation.models import Campaign, Criterion
from annotation.services import set_campaign_status
from generation.models import Generator, Image, Population, Prompt

campaign = Campaign.objects.create(slug="load", title="Load test", population_size=6, votes_per_pair=5)
Criterion.objects.create(campaign=campaign, key="diversity", question="More diverse?", position=0)
Criterion.objects.create(campaign=campaign, key="quality", question="Better?", position=1)
prompts = [Prompt.objects.create(caption=f"prompt {{i}}", category="load") for i in range({prompts})]
campaign.prompts.set(prompts)
now = timezone.now()
for g in range({generators}):
    generator = Generator.objects.create(name=f"g{{g}}", source="builtin:tiny-random")
    campaign.generators.add(generator)
    names = [default_storage.save(f"images/{{g:02d}}/{{g}}-{{i}}.png", ContentFile(b"png")) for i in range(6)]
    populations = Population.objects.bulk_create(
        Population(generator=generator, prompt=p, size=6, seeds=list(range(6)), status="ready", ready_at=now)
        for p in prompts for _ in range({per_queue})
    )
    Image.objects.bulk_create(
        Image(population=pop, index=i, file=names[i], seed=i, generation_prompt="x", width=32, height=32,
              sha256=hashlib.sha256(b"png").hexdigest())
        for pop in populations for i in range(6)
    )
set_campaign_status(campaign=campaign, status="open")
"""

VOTES = {"votes": [{"criterion": "diversity", "choice": "left"}, {"criterion": "quality", "choice": "tie"}]}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def server_ms(headers: http.client.HTTPMessage) -> float | None:
    """The server's own time for a request, from its `Server-Timing: app;dur=X` header."""
    for part in (headers.get("Server-Timing") or "").split(","):
        name, _, params = part.strip().partition(";")
        if name == "app" and params.startswith("dur="):
            return float(params[4:])
    return None


class Participant(threading.Thread):
    """One scripted participant: its own session cookie and one kept-alive connection, as a browser has."""

    def __init__(self, base: str, comparisons: int, think_ms: int, seed: int) -> None:
        super().__init__(daemon=True)
        self.address = urllib.parse.urlsplit(base)
        self.comparisons = comparisons
        self.think_ms = think_ms
        self.rng = random.Random(seed)
        self.cookie = ""
        self.connection: http.client.HTTPConnection | None = None
        self.issue_ms: list[float] = []
        self.vote_ms: list[float] = []
        self.issue_server_ms: list[float] = []
        self.vote_server_ms: list[float] = []
        self.voted_tokens: list[str] = []
        self.errors: list[str] = []

    def post(self, path: str, body: dict) -> tuple[int, dict, float, float | None]:
        payload = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Cookie": self.cookie}
        for attempt in range(2):  # a kept-alive connection the server closed is reopened once
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.address.hostname, self.address.port, timeout=30)
            started = time.perf_counter()
            try:
                self.connection.request("POST", path, body=payload, headers=headers)
                response = self.connection.getresponse()
                data = json.loads(response.read() or b"{}")
            except (http.client.HTTPException, OSError):
                self.connection.close()
                self.connection = None
                if attempt:
                    raise
                continue
            elapsed = (time.perf_counter() - started) * 1000
            for cookie in response.headers.get_all("Set-Cookie") or []:
                if cookie.startswith("sessionid="):
                    self.cookie = cookie.split(";", 1)[0]
            return response.status, data, elapsed, server_ms(response.headers)
        raise AssertionError("unreachable")

    def run(self) -> None:
        # People arrive over time, not in one instant: each starts within the first think time.
        time.sleep(self.think_ms * self.rng.uniform(0, 1) / 1000)
        for _ in range(self.comparisons):
            status, data, ms, server = self.post("/api/v1/campaigns/load/comparisons/next", {})
            if status != 200:
                self.errors.append(f"next: {status} {data}")
                return
            self.issue_ms.append(ms)
            if server is not None:
                self.issue_server_ms.append(server)
            # A person looks at twelve images before answering: uniform in [0.5, 1.5] x think_ms.
            time.sleep(self.think_ms * self.rng.uniform(0.5, 1.5) / 1000)
            status, reveal, ms, server = self.post(
                f"/api/v1/comparisons/{data['token']}/votes", {**VOTES, "dwell_ms": 1000}
            )
            if status != 200:
                self.errors.append(f"vote: {status} {reveal}")
                continue
            self.vote_ms.append(ms)
            if server is not None:
                self.vote_server_ms.append(server)
            self.voted_tokens.append(data["token"])


def warm_up(base: str, workers: int) -> None:
    """Let every server process import and connect before the clock starts (a deployed server is warm)."""
    for _ in range(8 * workers):
        urllib.request.urlopen(base + "/api/v1/campaigns/load/", timeout=30).read()  # noqa: S310 (local server)


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
            setup = SETUP.format(generators=args.generators, prompts=args.prompts, per_queue=args.per_queue)
            manage(env, "shell", "--no-imports", "-c", setup)
            with asgi_server(env, args.server, args.workers) as base:
                warm_up(base, args.workers)
                participants = [Participant(base, args.comparisons, args.think_ms, i) for i in range(args.participants)]
                started = time.perf_counter()
                for participant in participants:
                    participant.start()
                for participant in participants:
                    participant.join()
                elapsed = time.perf_counter() - started
            with psycopg.connect(f"{args.pg}/{database}") as db:
                stored = db.execute("SELECT count(*) FROM arena_vote").fetchone()[0]
                per_comparison = db.execute(
                    "SELECT count(*) FROM (SELECT comparison_id FROM arena_vote GROUP BY comparison_id "
                    "HAVING count(*) <> 2) AS odd"
                ).fetchone()[0]
    finally:
        with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    issue = [ms for p in participants for ms in p.issue_ms]
    votes = [ms for p in participants for ms in p.vote_ms]
    issue_server = [ms for p in participants for ms in p.issue_server_ms]
    vote_server = [ms for p in participants for ms in p.vote_server_ms]
    accepted = sum(len(p.voted_tokens) for p in participants)
    errors = [e for p in participants for e in p.errors]
    result = {
        "participants": args.participants,
        "think_ms": args.think_ms,
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
