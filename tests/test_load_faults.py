"""Votes under load and faults, through the real ASGI server: nothing acknowledged is lost or counted twice.

A short version of the load-and-faults runs (issue 9): scripted participants vote as fast as
the server answers, once steadily and once while the web server is killed (SIGKILL) and a new
one started. Afterwards every acknowledged comparison has exactly its two votes, no comparison
is half-voted, no response was a 5xx, and the only votes stored without an acknowledgement
belong to requests whose answer was lost with the killed server. (A killed generation worker
is covered by tests/generation/test_worker_processes.py.)
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.servers import RUNNING, asgi_server, manage, server_env

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.voting_load import SETUP  # noqa: E402

VOTES = {"votes": [{"criterion": "diversity", "choice": "left"}, {"criterion": "quality", "choice": "tie"}]}


class Voter(threading.Thread):
    """One participant voting as fast as the server answers; the server's address may change under it."""

    def __init__(self, site: dict[str, str], rounds: int) -> None:
        super().__init__(daemon=True)
        self.site = site
        self.rounds = rounds
        self.cookie = ""
        self.acknowledged: list[str] = []
        self.unanswered: list[str] = []  # votes sent whose answer never came (server killed)
        self.server_errors: list[str] = []

    def post(self, path: str, body: dict) -> tuple[int, dict]:
        request = urllib.request.Request(
            self.site["base"] + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Cookie": self.cookie},
        )
        try:
            with urllib.request.urlopen(request, timeout=20) as response:  # noqa: S310 (local test server)
                status, headers, raw = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, headers, raw = error.code, error.headers, error.read()
        for cookie in headers.get_all("Set-Cookie") or []:
            if cookie.startswith("sessionid="):
                self.cookie = cookie.split(";", 1)[0]
        return status, json.loads(raw or b"{}")

    def run(self) -> None:
        done = 0
        while done < self.rounds:
            try:
                status, comparison = self.post("/api/v1/campaigns/load/comparisons/next", {})
            except OSError:
                time.sleep(0.1)  # the server is restarting
                continue
            if status >= 500:
                self.server_errors.append(f"next: {status} {comparison}")
            if status != 200:
                return
            token = comparison["token"]
            try:
                status, answer = self.post(f"/api/v1/comparisons/{token}/votes", {**VOTES, "dwell_ms": 800})
            except OSError:
                self.unanswered.append(token)
                time.sleep(0.1)
                continue
            if status >= 500:
                self.server_errors.append(f"vote: {status} {answer}")
            if status == 200:
                self.acknowledged.append(token)
                done += 1


@contextmanager
def load_site(tmp_path: Path) -> Iterator[tuple[dict[str, str], ExitStack]]:
    """A campaign with plenty of ready populations on this run's database, and a way to count its votes."""
    extra: dict[str, str] = {}
    pg = os.environ.get("DATABASE_URL", "")
    database = f"poparena_faults_{os.getpid()}"
    if pg:
        import psycopg

        server = pg.rsplit("/", 1)[0]
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{database}"')
        extra["DATABASE_URL"] = f"{server}/{database}"
        if os.environ.get("REDIS_URL"):
            extra.update(REDIS_URL=os.environ["REDIS_URL"], CACHE_PREFIX=database, CHANNEL_PREFIX=database)
    env = server_env(tmp_path, LOG_LEVEL="WARNING", **extra)
    try:
        manage(env, "migrate", "--noinput")
        manage(env, "shell", "--no-imports", "-c", SETUP.format(generators=3, prompts=6, per_queue=20))
        with ExitStack() as stack:
            site = {
                "base": stack.enter_context(asgi_server(env)),
                "var": str(tmp_path),
                "db": extra.get("DATABASE_URL", ""),
                "env": json.dumps(env),
            }
            yield site, stack
    finally:
        if pg:
            import psycopg

            with psycopg.connect(f"{pg.rsplit('/', 1)[0]}/postgres", autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def votes_per_comparison(site: dict[str, str]) -> dict[str, int]:
    query = (
        "SELECT c.token, COUNT(v.id) FROM arena_comparison c LEFT JOIN arena_vote v ON v.comparison_id = c.id "
        "GROUP BY c.token"
    )
    if site["db"]:
        import psycopg

        with psycopg.connect(site["db"]) as db:
            return dict(db.execute(query).fetchall())
    with sqlite3.connect(Path(site["var"]) / "db.sqlite3") as db:
        return dict(db.execute(query).fetchall())


def check_integrity(site: dict[str, str], voters: list[Voter]) -> None:
    stored = votes_per_comparison(site)
    acknowledged = [t for v in voters for t in v.acknowledged]
    unanswered = {t for v in voters for t in v.unanswered}
    assert [e for v in voters for e in v.server_errors] == [], "no response was a 5xx"
    assert acknowledged, "the voters got votes through"
    assert len(acknowledged) == len(set(acknowledged)), "no comparison was acknowledged twice"
    assert all(stored.get(token) == 2 for token in acknowledged), "every acknowledged vote is stored, once"
    assert set(stored.values()) <= {0, 2}, "no comparison is half-voted"
    voted = {token for token, n in stored.items() if n}
    assert voted - set(acknowledged) <= unanswered, "votes stored without an answer come only from lost answers"


def test_steady_load_stores_every_acknowledged_vote_exactly_once(tmp_path):
    with load_site(tmp_path) as (site, _):
        voters = [Voter(site, rounds=8) for _ in range(12)]
        for voter in voters:
            voter.start()
        for voter in voters:
            voter.join(timeout=120)
        check_integrity(site, voters)
        assert sum(len(v.acknowledged) for v in voters) == 12 * 8


def test_killing_the_web_server_mid_load_loses_no_acknowledged_vote(tmp_path):
    with load_site(tmp_path) as (site, stack):
        voters = [Voter(site, rounds=25) for _ in range(12)]
        for voter in voters:
            voter.start()
        while sum(len(v.acknowledged) for v in voters) < 40:
            time.sleep(0.02)
        # SIGKILL: no graceful shutdown, requests in flight are cut off.
        RUNNING[site["base"]].send_signal(signal.SIGKILL)
        before_kill = sum(len(v.acknowledged) for v in voters)
        site["base"] = stack.enter_context(asgi_server(json.loads(site["env"])))
        for voter in voters:
            voter.join(timeout=120)
        assert all(not voter.is_alive() for voter in voters)
        check_integrity(site, voters)
        assert before_kill < 12 * 25, "the server died while participants were still voting"
        assert sum(len(v.acknowledged) for v in voters) == 12 * 25, "everyone finished on the new server"
