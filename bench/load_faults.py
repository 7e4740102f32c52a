"""Benchmark (issue 9): 200 scripted participants voting flat out, steadily or through a fault.

Scenarios (--scenario):
- steady: participants vote as fast as the server answers (--think-ms 0) for --duration seconds.
- kill-worker: the campaign also has prompts with nothing ready, and a real generation worker
  (`manage.py run_generation_worker`, built-in tiny random-weight generator) fills them while
  people vote. Part way through, the worker is SIGKILLed while it holds claimed populations
  and a new one is started; its short lease (--lease-seconds) lets the new one reclaim them.
- restart-web: part way through, the web server gets --signal TERM (graceful) or KILL (the
  whole process group at once) and a new one starts on the same port; clients retry requests
  that got no answer, as a browser's script does.

Afterwards it checks, and reports as JSON: every acknowledged vote is in arena_vote exactly
once; every stored vote was acknowledged or belongs to a request whose answer was lost; no 5xx;
no ready population without all its images (and their files); no comparison ever issued with a
population that is not ready; no population left generating, and the killed worker's claims
reclaimed. Latencies: client (loopback, includes this script's share of the CPU) and server
(`Server-Timing: app;dur=X`). CPU per process group shows where the time goes.

Run (PostgreSQL on 127.0.0.1:5432 with trust auth and Redis on 6379, as in CI):
    .venv/bin/python bench/load_faults.py --scenario steady [--participants 200] [--duration 120]
        [--workers 2] [--think-ms 0] [--pg postgres://postgres@127.0.0.1:5432]
        [--redis redis://127.0.0.1:6379/0]
    .venv/bin/python bench/load_faults.py --scenario kill-worker
    .venv/bin/python bench/load_faults.py --scenario restart-web --signal KILL
`--pg ''` runs on a SQLite file with one server process instead (`--redis ''`, `--workers 1`).

Issue 18: `--path vote+next` has participants make one request per comparison, as the vote page
does (the vote brings the next comparison); `--path issue+vote` (the default) two, as before.
`--ab REV` runs the same scenario, options and load on the code of git revision REV first (an
exported copy, `git archive`; the older page's two requests per comparison) and then on this
checkout (or `--new REV2`) with each `--path` given, back to back in one run; `--ab-order abba`
runs old, new, new, old so that a drift of the machine's other load weighs on both alike. `--ab-path`
gives the old code's path (`vote+next` for code from issue 18 on; issue+vote by default).
    .venv/bin/python bench/load_faults.py --scenario steady --duration 60 --ab 00e5cfd^ --path vote+next
    .venv/bin/python bench/load_faults.py --scenario steady --duration 45 --ab 5c05d2c --ab-path vote+next \
        --new HEAD --path vote+next --ab-order abba
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.loadkit import (  # noqa: E402
    CRITERIA,
    PATHS,
    CpuMeter,
    Participant,
    Site,
    WebServer,
    cpu_seconds,
    drive,
    exported_tree,
    generation_integrity,
    merge,
    p50_p99,
    revision_of,
    scratch_site,
    setup_code,
    vote_integrity,
    warm_up,
)

SCENARIOS = ("steady", "kill-worker", "restart-web")


@dataclass
class LoadOptions:
    participants: int = 200
    duration: float = 120.0
    workers: int = 2
    server: str = "uvicorn"
    think_ms: int = 0
    generators: int = 4
    prompts: int = 10
    per_queue: int = 0  # 0: enough for about 150 comparisons/s over the whole run
    empty_prompts: int = 6  # kill-worker: prompts only the generation worker fills
    fault_at: float = 0.4  # share of the duration after which the fault happens
    signal: str = "TERM"  # restart-web: TERM or KILL
    lease_seconds: int = 5  # kill-worker: the worker's claim lease
    worker_max_batch: int = 4
    retry_s: float = 60.0  # how long a participant retries a request that got no answer
    path: str = "issue+vote"  # PATHS: two requests per comparison, or one (the vote brings the next)
    one_client: bool = False  # every participant the same user agent: one client to the server (issue 29)

    def queue_depth(self) -> int:
        if self.per_queue:
            return self.per_queue
        # Each comparison uses two populations, each serves votes_per_pair (5) comparisons.
        needed = 150 * self.duration * 2 / 5 / (self.generators * self.prompts)
        return max(20, math.ceil(needed * 1.2))


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@contextmanager
def scenario_site(scenario: str, options: LoadOptions, *, pg: str, redis: str, root: Path = ROOT) -> Iterator[Site]:
    """A scratch site with the load campaign; kill-worker adds prompts that only generation fills."""
    setup = setup_code(
        generators=options.generators,
        prompts=options.prompts,
        per_queue=options.queue_depth(),
        empty_prompts=options.empty_prompts if scenario == "kill-worker" else 0,
    )
    name = f"poparena_load_{scenario.replace('-', '_')}_{os.getpid()}_{threading.get_ident() % 10000}"
    overrides = {
        # Production settings: DEBUG off (no query log, no static-file rescans per request).
        "DEBUG": "false",
        "SECRET_KEY": f"bench-{os.getpid()}-not-a-production-secret",
        "SECURE_COOKIES": "false",
        # Every scripted participant comes from 127.0.0.1: the per-address throttle (200 requests/s)
        # would measure itself. The per-participant throttle stays on.
        "THROTTLE_ANON": "off",
        # Likewise the per-address limit on new sessions (issue 29, 60/hour): 200 participants from one
        # address would leave 140 asking again every 0.1 s for the whole run. Older code ignores it.
        "THROTTLE_NEW_SESSION": "off",
    }
    with scratch_site(name, pg=pg, redis=redis, setup=setup, root=root, **overrides) as site:
        yield site


# --- the generation worker ----------------------------------------------------------------------------------


class WorkerProcess:
    """`manage.py run_generation_worker` as a child process; its claims carry its name host:pid:cpu."""

    def __init__(self, site: Site, *, lease_seconds: int, max_batch: int) -> None:
        # One torch thread: the web server keeps the other core.
        env = {**site.env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        # Read after the process died (a failed start), so it outlives any one call.
        self.log: IO[str] = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "run_generation_worker",
                "--max-batch",
                str(max_batch),
                "--lease-seconds",
                str(lease_seconds),
                "--idle-sleep",
                "0.2",
            ],
            cwd=site.root,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.name = f"{socket.gethostname()}:{self.process.pid}:cpu"
        self.cpu_s = 0.0

    def held(self, site: Site) -> list[int]:
        rows = site.query(
            "SELECT id FROM generation_population WHERE status = 'generating' AND claimed_by = ?", [self.name]
        )
        return [int(pk) for (pk,) in rows]

    def sample_cpu(self) -> None:
        self.cpu_s = max(self.cpu_s, cpu_seconds([self.process.pid]))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        self.sample_cpu()
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()[-3000:]


def made_by_worker(site: Site) -> int:
    """Populations a generation worker made (the seeded ones have no generation time)."""
    sql = "SELECT COUNT(*) FROM generation_population WHERE status = 'ready' AND generation_ms IS NOT NULL"
    return int(site.query(sql)[0][0])


def wait_for(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def kill_worker_mid_batch(site: Site, worker: WorkerProcess, timeout: float = 60) -> list[int]:
    """SIGKILL the worker the moment it holds claimed populations; returns those it still held."""
    if not wait_for(lambda: bool(worker.held(site)), timeout, interval=0.01):
        raise RuntimeError(f"the worker never held a claim:\n{worker.output()}")
    worker.stop(signal.SIGKILL)
    return worker.held(site)


# --- one scenario -------------------------------------------------------------------------------------------


def run_scenario(scenario: str, site: Site, options: LoadOptions) -> dict[str, Any]:
    """Serve `site`, drive the participants through the scenario, and check everything afterwards."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}: one of {', '.join(SCENARIOS)}")
    fault: dict[str, Any] = {}
    load_before = load_average()
    web = WebServer(site.env, options.server, options.workers, root=site.root)
    web.start()
    workers: list[WorkerProcess] = []
    try:
        warm_up(web.base, options.workers)
        if scenario == "kill-worker":
            workers.append(WorkerProcess(site, lease_seconds=options.lease_seconds, max_batch=options.worker_max_batch))
            # The worker has loaded its pipeline once a population it made is ready.
            if not wait_for(lambda: made_by_worker(site) > 0, 120, 0.2):
                raise RuntimeError(f"the generation worker made nothing:\n{workers[0].output()}")
        meter = CpuMeter(web)
        worker_cpu_before = cpu_seconds([w.process.pid for w in workers])
        started = time.perf_counter()
        deadline = started + options.duration
        participants = [
            Participant(
                web.base,
                deadline=deadline,
                think_ms=options.think_ms,
                seed=i,
                retry_s=options.retry_s,
                path=options.path,
                agent="" if options.one_client else None,
            )
            for i in range(options.participants)
        ]
        runner = threading.Thread(target=drive, args=(participants,), daemon=True)
        runner.start()
        time.sleep(options.duration * options.fault_at)
        fault_started = time.perf_counter()
        if scenario == "kill-worker":
            fault = inject_worker_kill(site, workers, options)
        elif scenario == "restart-web":
            fault = inject_web_restart(web, options)
        fault_over = time.perf_counter()
        runner.join()
        elapsed = time.perf_counter() - started
        for worker in workers:
            worker.sample_cpu()
        cpu = meter.report(worker_cpu_s=sum(w.cpu_s for w in workers) - worker_cpu_before)
        if scenario == "kill-worker":
            fault.update(finish_worker_fault(site, workers, fault, options))
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.stop(signal.SIGKILL)
        web.stop()
    tally = merge(participants)
    integrity = vote_integrity(site, tally)
    generation = generation_integrity(site)
    window = [t for t in tally.acknowledged_at if started + 0.1 * options.duration <= t <= deadline]
    issue, vote = p50_p99(tally.issue_ms), p50_p99(tally.vote_ms)
    issue_server, vote_server = p50_p99(tally.issue_server_ms), p50_p99(tally.vote_server_ms)
    both, both_server = p50_p99(tally.issue_ms + tally.vote_ms), p50_p99(tally.issue_server_ms + tally.vote_server_ms)
    accepted = len(tally.acknowledged)
    if fault:
        fault["acknowledged_before_fault"] = sum(1 for t in tally.acknowledged_at if t < fault_started)
        fault["acknowledged_after_fault"] = sum(1 for t in tally.acknowledged_at if t > fault_over)
    logs = {}
    if tally.server_errors or tally.errors:
        logs["web"] = web.log_tail(8000)
    if fault.get("reclaimed") is False:
        logs["workers"] = "\n".join(w.output() for w in workers)
    return {
        "logs": logs,
        "scenario": scenario + (f" ({options.signal})" if scenario == "restart-web" else ""),
        "code": revision_of(site.root),
        "path": options.path,
        "requests_per_comparison": round((tally.statuses.total()) / accepted, 2) if accepted else None,
        "comparisons_that_came_with_a_vote": tally.came_with_vote,
        "backend": site.vendor + (" + redis" if site.env.get("REDIS_URL") else ""),
        "server": f"{options.server} x{options.workers}",
        "participants": options.participants,
        "think_ms": options.think_ms,
        "duration_s": round(elapsed, 1),
        "comparisons_voted": accepted,
        "comparisons_per_s": round(accepted / elapsed, 1),
        "criterion_votes_per_s": round(CRITERIA * accepted / elapsed, 1),
        # From the first tenth of the run (arrival, caches warming) to the deadline, without the drain after it.
        "criterion_votes_per_s_after_warmup": round(CRITERIA * len(window) / (0.9 * options.duration), 1),
        "client_ms_p50_p99": {"issue": issue, "vote": vote, "all": both},
        "server_ms_p50_p99": {"issue": issue_server, "vote": vote_server, "all": both_server},
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "connection_errors": tally.connection_errors,
        "bad_payloads": tally.bad_payloads,
        "votes": integrity,
        "generation": generation,
        "fault": fault,
        "cpu_cores_used": cpu,
        "errors": len(tally.errors),
        "first_errors": tally.errors[:5] + tally.server_errors[:5],
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "options": asdict(options),
    }


def inject_worker_kill(site: Site, workers: list[WorkerProcess], options: LoadOptions) -> dict[str, Any]:
    killed = workers[0]
    held = kill_worker_mid_batch(site, killed)
    tries = 1
    while not held and tries < 5:  # it stored its batch between our look and the kill: try once more
        workers.append(WorkerProcess(site, lease_seconds=options.lease_seconds, max_batch=options.worker_max_batch))
        killed = workers[-1]
        held = kill_worker_mid_batch(site, killed)
        tries += 1
    killed_at = time.monotonic()
    workers.append(WorkerProcess(site, lease_seconds=options.lease_seconds, max_batch=options.worker_max_batch))
    fault: dict[str, Any] = {"killed": killed.name, "held_when_killed": held, "kill_tries": tries}

    def watch() -> None:
        # While people keep voting: how long until no population is held by the dead worker any more.
        if wait_for(lambda: not still_held(site, held, killed.name), options.lease_seconds + 120, 0.2):
            fault["reclaimed_within_s"] = round(time.monotonic() - killed_at, 1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    fault["watcher"] = watcher
    return fault


def still_held(site: Site, held: list[int], worker: str) -> list[tuple[Any, ...]]:
    marks = ",".join("?" * len(held)) or "NULL"
    return site.query(
        f"SELECT id FROM generation_population WHERE id IN ({marks}) AND claimed_by = ?",  # noqa: S608
        [*held, worker],
    )


def finish_worker_fault(
    site: Site, workers: list[WorkerProcess], fault: dict[str, Any], options: LoadOptions
) -> dict[str, Any]:
    """Wait for the killed worker's claims to be reclaimed, then stop the new worker with SIGTERM."""
    held: list[int] = fault["held_when_killed"]
    marks = ",".join("?" * len(held)) or "NULL"
    fault.pop("watcher").join(timeout=options.lease_seconds + 120)
    reclaimed = not still_held(site, held, fault["killed"])
    stopped = workers[-1].stop(signal.SIGTERM)
    outcome = dict(
        site.query(
            f"SELECT status, COUNT(*) FROM generation_population WHERE id IN ({marks}) GROUP BY status",  # noqa: S608
            held,
        )
    )
    generating = site.query("SELECT COUNT(*) FROM generation_population WHERE status = 'generating'")[0][0]
    return {
        "held_when_killed": len(held),
        "reclaimed": reclaimed,
        "killed_claims_now": {str(k): int(v) for k, v in outcome.items()},
        "generating_after_stop": int(generating),
        "new_worker_exit_code": stopped,
        "populations_made_by_workers": made_by_worker(site),
    }


def inject_web_restart(web: WebServer, options: LoadOptions) -> dict[str, Any]:
    sig = signal.SIGKILL if options.signal.upper() == "KILL" else signal.SIGTERM
    down = time.monotonic()
    stopped_s = web.stop(sig)
    start_s = web.start()
    return {
        "signal": sig.name,
        "old_server_gone_after_s": round(stopped_s, 2),
        "new_server_answering_after_s": round(start_s, 2),
        "outage_s": round(time.monotonic() - down, 2),
    }


def verdict(result: dict[str, Any]) -> dict[str, Any]:
    """The issue's integrity properties, each true when it holds."""
    votes, generation, fault = result["votes"], result["generation"], result["fault"]
    checks = {
        "no_lost_acknowledged_vote": votes["lost"] == 0,
        "no_duplicate": votes["duplicated"] == 0 and votes["half_voted"] == 0,
        "no_unexplained_stored_vote": votes["unexplained_stored"] == 0,
        "no_5xx": votes["server_5xx"] == 0,
        "no_half_written_population": generation["ready_without_all_images"] == 0
        and generation["images_of_unready_populations"] == 0
        and generation["image_files_missing"] == 0,
        "nothing_unready_issued": generation["issued_with_unready_population"] == 0 and result["bad_payloads"] == 0,
        "votes_went_through": votes["comparisons_acknowledged"] > 0,
    }
    if result["scenario"] == "kill-worker":
        checks["killed_mid_batch"] = fault["held_when_killed"] > 0
        checks["leases_reclaimed"] = fault["reclaimed"] and fault["generating_after_stop"] == 0
    return checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=SCENARIOS, default="steady")
    parser.add_argument("--participants", type=int, default=200)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of voting")
    parser.add_argument("--workers", type=int, default=2, help="web server processes (uvicorn)")
    parser.add_argument("--server", choices=["daphne", "uvicorn"], default="uvicorn")
    parser.add_argument("--think-ms", type=int, default=0, help="mean time a participant looks before voting")
    parser.add_argument("--signal", choices=["TERM", "KILL"], default="TERM", help="restart-web: how the server dies")
    parser.add_argument("--fault-at", type=float, default=0.4, help="share of the run after which the fault comes")
    parser.add_argument("--lease-seconds", type=int, default=5, help="kill-worker: the worker's claim lease")
    parser.add_argument("--per-queue", type=int, default=0, help="ready populations per queue (0: sized to the run)")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="'' for SQLite")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="'' for the in-memory layer")
    parser.add_argument(
        "--path", choices=PATHS, nargs="+", default=["issue+vote"], help="the new code's path(s), one run each"
    )
    parser.add_argument("--ab", metavar="REV", default="", help="also run the code of git revision REV (on --ab-path)")
    parser.add_argument(
        "--ab-path", choices=PATHS, default="issue+vote", help="the old code's path (vote+next from issue 18 on)"
    )
    parser.add_argument("--new", metavar="REV", default="", help="serve revision REV as the new code, not the checkout")
    parser.add_argument(
        "--one-client",
        action="store_true",
        help="send no user agent: with one address, all participants are one client (a lab behind one NAT)",
    )
    parser.add_argument("--ab-order", choices=["ab", "abba"], default="ab", help="old then new, or old new new old")
    args = parser.parse_args()
    if not args.pg and args.workers != 1:
        parser.error("SQLite runs one server process: pass --workers 1")
    options = LoadOptions(
        participants=args.participants,
        duration=args.duration,
        workers=args.workers,
        server=args.server,
        think_ms=args.think_ms,
        signal=args.signal,
        fault_at=args.fault_at,
        lease_seconds=args.lease_seconds,
        per_queue=args.per_queue,
        one_client=args.one_client,
    )
    with ExitStack() as trees:
        new_root = trees.enter_context(exported_tree(args.new)) if args.new else ROOT
        new_arms = [("new", new_root, path) for path in args.path]
        arms = new_arms
        if args.ab:
            # Code before issue 18 had no `next` in a vote: its page made two requests per comparison.
            old_arm = [("old", trees.enter_context(exported_tree(args.ab)), args.ab_path)]
            arms = old_arm + new_arms + (new_arms[::-1] + old_arm if args.ab_order == "abba" else [])
        results = []
        for label, root, path in arms:
            arm = LoadOptions(**{**asdict(options), "path": path})
            with scenario_site(args.scenario, arm, pg=args.pg, redis=args.redis, root=root) as site:
                result = run_scenario(args.scenario, site, arm)
            result["arm"] = label
            result["checks"] = verdict(result)
            results.append(result)
            print(json.dumps(result, indent=1), flush=True)
    if len(results) > 1:
        print(json.dumps({"ab": ab_summary(results)}, indent=1))
    if not all(all(result["checks"].values()) for result in results):
        sys.exit(1)


def ab_summary(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per run, and each new run's votes/s as a multiple of the old runs' mean."""
    old = [r["criterion_votes_per_s"] for r in results if r["arm"] == "old"]
    baseline = sum(old) / len(old) if old else 0.0
    return [
        {
            "arm": r["arm"],
            "code": r["code"],
            "path": r["path"],
            "criterion_votes_per_s": r["criterion_votes_per_s"],
            "x_old": round(r["criterion_votes_per_s"] / baseline, 2) if baseline and r["arm"] == "new" else None,
            "server_ms_p50_p99": r["server_ms_p50_p99"]["all"],
            "requests_per_comparison": r["requests_per_comparison"],
            "cpu_cores_used": r["cpu_cores_used"],
            "load_average_before": r["load_average_before"],
            "checks_hold": all(r["checks"].values()),
        }
        for r in results
    ]


if __name__ == "__main__":
    main()
