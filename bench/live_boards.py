"""Benchmark (issue 29): scripted participants voting while live leaderboard sockets watch, against none.

Two arms on fresh, identical scratch sites, one after the other: participants vote flat out (or
with --think-ms) through the real API for --duration seconds, once with no leaderboard socket open
and once with --sockets sockets subscribed to the first criterion's board (as the leaderboard page
subscribes). It reports, per arm and as JSON:
- votes/s (comparisons voted per second; each carries one vote per criterion), and the ratio of the
  watched arm to the unwatched one (the target: at least 0.9);
- board lag: after the last acknowledged vote, how long until every socket held a board counting
  every vote (the target: at most 3 s); and the pushes each socket received;
- refits: the boards the sockets were pushed (each a refit in one server process), their rate,
  the CPU of one closed-form refit of the final board (timed in a separate process on the same
  database), and from both the CPU per second spent refitting; beside it the web server's CPU
  (cores used) in each arm, which includes everything the sockets cost;
- lost or duplicated votes (acknowledged against arena_vote, bench.loadkit.vote_integrity).

Run (PostgreSQL on 127.0.0.1:5432 with trust auth and Redis on 6379, as in CI):
    .venv/bin/python bench/live_boards.py [--participants 200] [--sockets 50] [--duration 60]
        [--workers 2] [--think-ms 0] [--push-s 1] [--pg postgres://postgres@127.0.0.1:5432]
        [--redis redis://127.0.0.1:6379/0]
`--pg '' --redis '' --workers 1` runs on a SQLite file with one server process and the in-memory
channel layer.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.loadkit import (  # noqa: E402
    CAMPAIGN,
    CRITERIA,
    CpuMeter,
    Participant,
    WebServer,
    drive,
    merge,
    revision_of,
    scratch_site,
    setup_code,
    vote_integrity,
    warm_up,
)
from tests.servers import manage  # noqa: E402

CRITERION = "diversity"

# Times one closed-form refit of the final board, the cache left out: what each push cost a process.
TIME_FIT = f"""
import time
from django.core.cache import cache
from annotation.models import Campaign
from arena.selectors import get_leaderboard
campaign = Campaign.objects.get(slug="{CAMPAIGN}")
spent = []
for _ in range(20):
    cache.clear()
    started = time.process_time()
    board = get_leaderboard(campaign=campaign, criterion="{CRITERION}", intervals="sandwich")
    spent.append(time.process_time() - started)
spent.sort()
print("FIT_MS", round(1000 * spent[len(spent) // 2], 2), board["votes"])
"""


@dataclass
class Watcher:
    """One leaderboard socket, as the page opens it: what it was pushed, and when (perf_counter)."""

    base: str
    pushes: list[tuple[float, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        from websockets.sync.client import connect
        from websockets.typing import Origin

        url = self.base.replace("http://", "ws://") + f"/ws/campaigns/{CAMPAIGN}/leaderboard/"
        try:
            with connect(url, origin=Origin(self.base), open_timeout=30) as socket:
                socket.send(json.dumps({"criterion": CRITERION, "category": ""}))
                while not self.stop.is_set():
                    try:
                        message = json.loads(socket.recv(timeout=0.5))
                    except TimeoutError:
                        continue
                    self.pushes.append((time.perf_counter(), int(message["votes"])))
                    self.ready.set()
        except Exception as exc:  # a socket that failed must show in the report
            self.errors.append(repr(exc))
            self.ready.set()


def counted_votes(site: Any) -> int:
    """The criterion's counted votes, as the board counts them (every scripted vote counts)."""
    rows = site.query(
        "SELECT COUNT(*) FROM arena_vote v JOIN annotation_criterion c ON c.id = v.criterion_id WHERE c.key = ?",
        [CRITERION],
    )
    return int(rows[0][0])


def run_arm(options: argparse.Namespace, sockets: int) -> dict[str, Any]:
    name = f"poparena_live_boards_{sockets}"
    setup = setup_code(per_queue=options.per_queue)
    push_s = str(options.push_s)
    # Every scripted participant comes from 127.0.0.1: the per-address limit on new sessions (60/hour)
    # would keep all but 60 of them asking again for the whole run.
    with scratch_site(
        name, pg=options.pg, redis=options.redis, setup=setup, LEADERBOARD_PUSH_S=push_s, THROTTLE_NEW_SESSION="off"
    ) as site:
        web = WebServer(site.env, options.server, options.workers)
        web.start()
        watchers = [Watcher(web.base) for _ in range(sockets)]
        threads = [threading.Thread(target=w.run, daemon=True) for w in watchers]
        try:
            warm_up(web.base, options.workers)
            for thread in threads:
                thread.start()
            for watcher in watchers:
                watcher.ready.wait(60)
            meter = CpuMeter(web)
            started = time.perf_counter()
            deadline = started + options.duration
            participants = [
                Participant(web.base, deadline=deadline, think_ms=options.think_ms, seed=i, path=options.path)
                for i in range(options.participants)
            ]
            drive(participants)
            elapsed = time.perf_counter() - started
            tally = merge(participants)
            last_vote = max(tally.acknowledged_at, default=started)
            final = counted_votes(site)
            # Every socket must come to hold a board with every vote: wait for it, up to a limit.
            caught_up: list[float | None] = []
            for watcher in watchers:
                limit = time.perf_counter() + options.lag_limit_s
                while not any(v == final for _, v in watcher.pushes) and time.perf_counter() < limit:
                    time.sleep(0.02)
                at = next((t for t, v in watcher.pushes if v == final), None)
                caught_up.append(None if at is None else max(0.0, at - last_vote))
            cpu = meter.report()
        finally:
            for watcher in watchers:
                watcher.stop.set()
            for thread in threads:
                thread.join(timeout=5)
            web.stop()
        fit_ms = None
        if sockets:
            out = manage(site.env, "shell", "--no-imports", "-c", TIME_FIT)
            fit_ms = float(out.split("FIT_MS", 1)[1].split()[0])
        integrity = vote_integrity(site, tally)
    # Pushes during the run: each distinct board a socket was sent is one refit in its server process.
    pushes = [sum(1 for t, _ in w.pushes if started <= t <= last_vote + options.lag_limit_s) for w in watchers]
    lags = [lag for lag in caught_up if lag is not None]
    refits_per_s = (max(pushes) / elapsed) if pushes else 0.0
    # Sockets spread over the server's processes, each of which refits its watched board once per push.
    processes_with_sockets = min(options.workers, sockets)
    return {
        "sockets": sockets,
        "duration_s": round(elapsed, 1),
        "comparisons_voted": len(tally.acknowledged),
        "comparisons_per_s": round(len(tally.acknowledged) / elapsed, 1),
        "criterion_votes_per_s": round(CRITERIA * len(tally.acknowledged) / elapsed, 1),
        "board_lag_s": {
            "max": round(max(lags), 2) if lags else None,
            "median": round(sorted(lags)[len(lags) // 2], 2) if lags else None,
            "sockets_never_caught_up": sum(1 for lag in caught_up if lag is None),
        },
        "pushes_per_socket": {"min": min(pushes, default=0), "max": max(pushes, default=0)},
        "refits_per_s_per_process": round(refits_per_s, 2),
        "refit_ms_cpu": fit_ms,
        "refit_cpu_s_per_s": (
            round(refits_per_s * processes_with_sockets * fit_ms / 1000, 4) if fit_ms is not None else 0.0
        ),
        "cpu_cores_used": cpu,
        "votes": integrity,
        "socket_errors": [e for w in watchers for e in w.errors][:5],
        "first_errors": tally.errors[:5] + tally.server_errors[:5],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--participants", type=int, default=200)
    parser.add_argument("--sockets", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--think-ms", type=int, default=0)
    parser.add_argument("--push-s", type=float, default=1.0, help="LEADERBOARD_PUSH_S for the server")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--server", default="uvicorn")
    parser.add_argument("--path", default="vote+next", choices=("issue+vote", "vote+next"))
    parser.add_argument("--per-queue", type=int, default=60, help="ready sets per generator and prompt")
    parser.add_argument("--lag-limit-s", type=float, default=15.0, help="how long to wait for the last board")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    options = parser.parse_args()
    if options.participants < 1 or options.sockets < 0 or options.duration <= 0:
        parser.error("--participants must be >= 1, --sockets >= 0 and --duration > 0")
    arms = [run_arm(options, 0), run_arm(options, options.sockets)]
    unwatched, watched = arms
    ratio = watched["comparisons_per_s"] / unwatched["comparisons_per_s"] if unwatched["comparisons_per_s"] else None
    report = {
        "code": revision_of(ROOT),
        "backend": ("postgresql" if options.pg else "sqlite") + (" + redis" if options.redis else ""),
        "server": f"{options.server} x{options.workers}",
        "participants": options.participants,
        "think_ms": options.think_ms,
        "push_s": options.push_s,
        "votes_per_s_ratio_watched_to_none": round(ratio, 3) if ratio is not None else None,
        "arms": arms,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "options": {k: v for k, v in vars(options).items() if k not in ("pg", "redis")},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
