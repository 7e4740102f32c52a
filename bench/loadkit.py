"""Shared pieces of the voting load benchmarks: scratch site, scripted participants, servers, checks, CPU.

bench/voting_load.py (issue 5) and bench/load_faults.py (issue 9) both drive the real ASGI
server with threads; tests/test_load_faults.py runs load_faults' scenarios for a few seconds.
A scratch site is a PostgreSQL database of its own (CREATE/DROP DATABASE on the server named
by a `postgres://` URL) or, with no URL, a SQLite file in a temporary folder.

Participants take one of two paths (issue 18): "issue+vote", two requests per comparison (ask
for a comparison, then vote), or "vote+next", one request per comparison as the vote page makes
them (the vote asks for the next comparison and gets it beside the reveal; only a participant's
first comparison, or one after the vote could not bring any, is asked for on its own).
For an A/B against older code, `exported_tree(REV)` writes that revision's files to a folder
(`git archive`, the checkout is never touched) and `scratch_site(..., root=)` and
`WebServer(root=)` migrate and serve that copy with this checkout's Python environment.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.servers import manage, server_command, server_env  # noqa: E402

PATHS = ("issue+vote", "vote+next")

# A campaign "load" with `generators` tiny random-weight generators, `prompts` prompts each with
# `per_queue` ready populations per generator (image rows share a few files: this measures the
# voting path, not generation), and `empty_prompts` more prompts with nothing ready, which only a
# generation worker can fill.
SETUP = """
import hashlib
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from annotation.models import Campaign, Criterion
from annotation.services import set_campaign_status
from generation.models import Generator, Image, Population, Prompt

campaign = Campaign.objects.create(slug="load", title="Load test", population_size=6, votes_per_pair={votes_per_pair})
Criterion.objects.create(campaign=campaign, key="diversity", question="More diverse?", position=0)
Criterion.objects.create(campaign=campaign, key="quality", question="Better?", position=1)
prompts = [Prompt.objects.create(caption=f"prompt {{i}}", category="load") for i in range({prompts})]
empty = [Prompt.objects.create(caption=f"generated prompt {{i}}", category="load") for i in range({empty_prompts})]
campaign.prompts.set(prompts + empty)
now = timezone.now()
for g in range({generators}):
    generator = Generator.objects.create(name=f"g{{g}}", source="builtin:tiny-random", settings={settings!r})
    campaign.generators.add(generator)
    names = [default_storage.save(f"images/{{g:02d}}/{{g}}-{{i}}.png", ContentFile(b"png")) for i in range(6)]
    populations = Population.objects.bulk_create(
        (Population(generator=generator, prompt=p, size=6, seeds=list(range(6)), status="ready", ready_at=now)
         for p in prompts for _ in range({per_queue})), batch_size=2000
    )
    Image.objects.bulk_create(
        (Image(population=pop, index=i, file=names[i], seed=i, generation_prompt="x", width=32, height=32,
               sha256=hashlib.sha256(b"png").hexdigest())
         for pop in populations for i in range(6)), batch_size=5000
    )
set_campaign_status(campaign=campaign, status="open")
"""

# Small and fast for the worker: 32 px, 2 steps, no classifier-free guidance.
TINY_SETTINGS = {"steps": 2, "width": 32, "height": 32, "guidance_scale": 0.0}
CAMPAIGN = "load"
POPULATION_SIZE = 6
VOTES = {"votes": [{"criterion": "diversity", "choice": "left"}, {"criterion": "quality", "choice": "tie"}]}
CRITERIA = len(VOTES["votes"])


def setup_code(
    *,
    generators: int = 4,
    prompts: int = 10,
    per_queue: int = 60,
    empty_prompts: int = 0,
    votes_per_pair: int = 5,
    settings: dict[str, Any] | None = None,
) -> str:
    return SETUP.format(
        generators=generators,
        prompts=prompts,
        per_queue=per_queue,
        empty_prompts=empty_prompts,
        votes_per_pair=votes_per_pair,
        settings=settings if settings is not None else TINY_SETTINGS,
    )


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def p50_p99(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return round(statistics.median(values), 1), round(percentile(values, 0.99), 1)


def server_ms(headers: http.client.HTTPMessage) -> float | None:
    """The server's own time for a request, from its `Server-Timing: app;dur=X` header."""
    for part in (headers.get("Server-Timing") or "").split(","):
        name, _, params = part.strip().partition(";")
        if name == "app" and params.startswith("dur="):
            return float(params[4:])
    return None


# --- the scratch site ---------------------------------------------------------------------------------------


@dataclass
class Site:
    """One scratch database (and media folder) with the environment its processes run under."""

    env: dict[str, str]
    var_dir: Path
    database_url: str  # "" for the SQLite file in var_dir
    root: Path = ROOT  # the code that serves it

    @property
    def vendor(self) -> str:
        return "postgresql" if self.database_url else "sqlite"

    @property
    def media_root(self) -> Path:
        return Path(self.env.get("MEDIA_ROOT") or self.var_dir / "media")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read-only query; `?` placeholders on both backends."""
        if self.database_url:
            import psycopg

            with psycopg.connect(self.database_url) as db:
                return list(db.execute(sql.replace("?", "%s"), list(params)).fetchall())
        with sqlite3.connect(self.var_dir / "db.sqlite3", timeout=30) as db:
            return list(db.execute(sql, list(params)).fetchall())


def admin_url(database_url: str) -> str:
    """postgres://user@host:port/anything -> the same server's maintenance database."""
    parts = urllib.parse.urlsplit(database_url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/postgres", "", ""))


@contextmanager
def exported_tree(revision: str) -> Iterator[Path]:
    """The files of git `revision` of this repository in a temporary folder (`git archive | tar -x`).

    Nothing in the checkout changes (no checkout, no stash); the copy runs with this checkout's
    virtual environment, so the revision must work with today's pinned packages.
    """
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{revision}^{{commit}}"], cwd=ROOT, capture_output=True, text=True
    )
    if commit.returncode != 0:
        raise ValueError(f"not a revision of this repository: {revision!r}")
    with tempfile.TemporaryDirectory(prefix=f"poparena-{commit.stdout.strip()[:9]}-") as folder:
        archive = subprocess.Popen(["git", "archive", commit.stdout.strip()], cwd=ROOT, stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", folder], stdin=archive.stdout, check=True)
        if archive.wait() != 0:
            raise RuntimeError(f"git archive {revision} failed")
        yield Path(folder)


def revision_of(root: Path) -> str:
    """What `root` serves: this checkout's HEAD (and whether it has uncommitted changes), or an exported folder's."""
    if root != ROOT:
        return root.name.split("-")[1]
    head = subprocess.run(["git", "rev-parse", "--short=9", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True)
    return head.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")


@contextmanager
def scratch_site(
    name: str, *, pg: str = "", redis: str = "", setup: str = "", root: Path = ROOT, **overrides: str
) -> Iterator[Site]:
    """A migrated database of its own named `name` (PostgreSQL when `pg` names a server, else SQLite).

    With `redis`, the cache and channel layer use it under prefixes of their own, so other users
    of the same Redis are not touched. `root` is the code that migrates and seeds it (another
    revision's exported tree for an A/B). The database is dropped afterwards.
    """
    with tempfile.TemporaryDirectory(prefix="poparena-load-") as tmp:
        extra: dict[str, str] = {}
        database_url = ""
        if pg:
            import psycopg

            server = admin_url(pg)
            database_url = server.rsplit("/", 1)[0] + f"/{name}"
            with psycopg.connect(server, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                admin.execute(f'CREATE DATABASE "{name}"')
            extra["DATABASE_URL"] = database_url
        if redis:
            extra.update(REDIS_URL=redis, CACHE_PREFIX=name, CHANNEL_PREFIX=name)
        env = server_env(Path(tmp), LOG_LEVEL="WARNING", **extra, **overrides)
        try:
            manage(env, "migrate", "--noinput", cwd=root)
            if setup:
                manage(env, "shell", "--no-imports", "-c", setup, cwd=root)
            yield Site(env=env, var_dir=Path(tmp), database_url=database_url, root=root)
        finally:
            if pg:
                import psycopg

                with psycopg.connect(admin_url(pg), autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- servers and workers as process groups ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WebServer:
    """The ASGI server in a process group of its own, on a fixed port, so it can be killed and started again."""

    def __init__(
        self, env: dict[str, str], server: str = "uvicorn", workers: int = 1, port: int = 0, root: Path = ROOT
    ) -> None:
        self.env = env
        self.root = root
        self.server = server
        self.workers = workers
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        # The log lives as long as the server object (it is read after a failed start), not one call.
        self.log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self.cpu_s_gone = 0.0  # CPU of earlier (stopped) server processes

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> float:
        """Start and wait until it answers; returns the seconds that took."""
        started = time.monotonic()
        self.process = subprocess.Popen(
            server_command(self.server, self.port, self.workers),
            cwd=self.root,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            start_new_session=True,
        )
        while True:
            try:
                urllib.request.urlopen(self.base + "/api/v1/campaigns/", timeout=5).read()  # noqa: S310 (local)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() - started > timeout:
                    self.stop(signal.SIGKILL)
                    raise RuntimeError(f"server did not start: {self.log_tail()}") from None
                time.sleep(0.1)
        return time.monotonic() - started

    def pids(self) -> list[int]:
        return [self.process.pid, *descendants(self.process.pid)] if self.process else []

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> float:
        """SIGTERM: the server's graceful shutdown (to its main process). SIGKILL: the whole group dies at once.

        Returns the seconds until every process of it was gone.
        """
        if self.process is None:
            return 0.0
        started = time.monotonic()
        self.cpu_s_gone += cpu_seconds(self.pids())
        try:
            if sig == signal.SIGKILL:
                os.killpg(self.process.pid, signal.SIGKILL)
            else:
                self.process.send_signal(sig)
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass
        # Children of a killed uvicorn supervisor must not keep the port.
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None
        return time.monotonic() - started

    def cpu_s(self) -> float:
        return self.cpu_s_gone + cpu_seconds(self.pids())

    def log_tail(self, chars: int = 3000) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-chars:]


def warm_up(base: str, workers: int) -> None:
    """Let every server process import and connect before the clock starts (a deployed server is warm)."""
    for _ in range(8 * workers):
        urllib.request.urlopen(base + f"/api/v1/campaigns/{CAMPAIGN}/", timeout=30).read()  # noqa: S310 (local)


# --- CPU accounting from /proc ----------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces: fields start after its closing parenthesis.
    return [text[: text.rfind(")") + 1], *text[text.rfind(")") + 2 :].split()]


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            children.setdefault(int(fields[2]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    total = 0
    for pid in pids:
        if fields := _stat(pid):
            total += int(fields[12]) + int(fields[13])  # utime, stime
    return total / _TICK


def pids_named(*names: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if comm in names:
                found.append(int(entry.name))
    return found


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


class CpuMeter:
    """CPU seconds used by the web server, the database, Redis, the generation worker and this client."""

    def __init__(self, web: WebServer, worker_pids: list[int] | None = None) -> None:
        self.web = web
        self.worker_pids = worker_pids if worker_pids is not None else []
        self.started = time.monotonic()
        self.start = self._sample()

    def _sample(self) -> dict[str, float]:
        own = os.times()
        busy, total = machine_busy()
        return {
            "web": self.web.cpu_s(),
            "postgres": cpu_seconds(pids_named("postgres")),
            "redis": cpu_seconds(pids_named("redis-server")),
            "client": own.user + own.system,
            "machine_busy": busy / _TICK,
            "machine_total": total / _TICK,
        }

    def report(self, worker_cpu_s: float = 0.0) -> dict[str, float]:
        """Cores used on average by each part since the meter started (1.0 = one core busy all the time)."""
        end = self._sample()
        wall = time.monotonic() - self.started
        used = {k: (end[k] - self.start[k]) / wall for k in ("web", "postgres", "redis", "client")}
        if worker_cpu_s:
            used["generation_worker"] = worker_cpu_s / wall
        span = end["machine_total"] - self.start["machine_total"]
        used["machine_busy_share"] = (end["machine_busy"] - self.start["machine_busy"]) / span if span else 0.0
        return {k: round(v, 2) for k, v in used.items()}


# --- scripted participants --------------------------------------------------------------------------------


# Reopen a kept-alive connection idle longer than this, before the server's own keep-alive timeout.
IDLE_REOPEN_S = 4.0


class ServerGone(Exception):
    """No answer within the retry window: the server stayed down."""


@dataclass
class Tally:
    """What one participant saw; merged over all participants for the report."""

    issue_ms: list[float] = field(default_factory=list)
    vote_ms: list[float] = field(default_factory=list)
    issue_server_ms: list[float] = field(default_factory=list)
    vote_server_ms: list[float] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)  # tokens whose votes got a 200
    acknowledged_at: list[float] = field(default_factory=list)  # perf_counter of each acknowledgement
    unanswered: set[str] = field(default_factory=set)  # tokens whose vote request got no answer at least once
    already_voted_after_loss: set[str] = field(default_factory=set)  # retried after a lost answer: 409
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)  # every 5xx
    errors: list[str] = field(default_factory=list)  # anything else unexpected
    connection_errors: int = 0
    bad_payloads: int = 0  # an issued comparison without exactly `size` images per side
    came_with_vote: int = 0  # vote+next: comparisons that came in a vote's answer, not a request of their own


class Participant(threading.Thread):
    """One scripted participant: its own session cookie and one kept-alive connection, as a browser has.

    It votes `comparisons` times, or until `deadline` (a perf_counter time), whichever comes
    first, along `path` (PATHS: "issue+vote" or "vote+next"). A request that gets no answer
    (connection refused, reset or closed) is retried on a new connection for up to `retry_s`
    seconds; a vote whose answer was lost and that the server then calls already voted was
    stored without an acknowledgement.
    """

    def __init__(
        self,
        base: str,
        *,
        comparisons: int | None = None,
        deadline: float | None = None,
        think_ms: int = 0,
        seed: int = 0,
        retry_s: float = 0.0,
        path: str = "issue+vote",
        agent: str | None = None,
    ) -> None:
        super().__init__(daemon=True)
        if path not in PATHS:
            raise ValueError(f"unknown path {path!r}: one of {', '.join(PATHS)}")
        self.one_trip = path == "vote+next"
        address = urllib.parse.urlsplit(base)
        self.host, self.port = address.hostname or "127.0.0.1", address.port
        self.comparisons = comparisons
        self.deadline = deadline
        self.think_ms = think_ms
        self.rng = random.Random(seed)
        self.retry_s = retry_s
        self.cookie = ""
        # Each participant its own browser, as people are: every scripted one comes from 127.0.0.1, and the
        # server knows a client by address and user agent (arena.clients, issue 29). "" sends none, so that all
        # participants are one client (a lab behind one address with one browser build).
        self.agent = f"bench participant {seed}" if agent is None else agent
        self.connection: http.client.HTTPConnection | None = None
        self.last_used = 0.0
        self.tally = Tally()

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], float, float | None, bool]:
        """(status, body, client ms, server ms, whether an earlier attempt's answer was lost)."""
        payload = json.dumps(body).encode()
        give_up = time.perf_counter() + self.retry_s
        lost = False
        attempt = 0
        while True:
            attempt += 1
            if self.connection is not None and time.perf_counter() - self.last_used > IDLE_REOPEN_S:
                # The server drops idle kept-alive connections (uvicorn after 5 s); a browser opens a new one.
                self.connection.close()
                self.connection = None
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
            headers = {"Content-Type": "application/json", "Cookie": self.cookie}
            if self.agent:
                headers["User-Agent"] = self.agent
            started = time.perf_counter()
            try:
                self.connection.request("POST", path, body=payload, headers=headers)
                response = self.connection.getresponse()
                raw = response.read()
            except (http.client.HTTPException, OSError) as exc:
                self.connection.close()
                self.connection = None
                self.tally.connection_errors += 1
                # A refused connection never reached the server; anything else may have.
                lost = lost or not isinstance(exc, ConnectionRefusedError)
                # A kept-alive connection the server closed is reopened at once, once.
                if attempt > 1 and time.perf_counter() > give_up:
                    raise ServerGone(f"{path}: {exc!r}") from exc
                if attempt > 1:
                    time.sleep(0.05)
                continue
            self.last_used = time.perf_counter()
            elapsed = (self.last_used - started) * 1000
            try:
                data = json.loads(raw or b"{}")
            except ValueError:
                data = {"raw": raw[:200].decode(errors="replace")}
            for cookie in response.headers.get_all("Set-Cookie") or []:
                if cookie.startswith("sessionid="):
                    self.cookie = cookie.split(";", 1)[0]
            return response.status, data, elapsed, server_ms(response.headers), lost

    def _more(self) -> bool:
        if self.comparisons is not None and len(self.tally.acknowledged) >= self.comparisons:
            return False
        return self.deadline is None or time.perf_counter() < self.deadline

    def run(self) -> None:
        try:
            self._run()
        except ServerGone as exc:
            self.tally.errors.append(f"server gone: {exc}")
        except Exception as exc:  # a bug in the script must show in the report, not vanish with the thread
            self.tally.errors.append(f"participant crashed: {exc!r}")

    def _run(self) -> None:
        tally = self.tally
        # People arrive over time, not in one instant: each starts within the first think time.
        time.sleep(self.think_ms * self.rng.uniform(0, 1) / 1000)
        # The vote page's body: the vote may bring the next comparison (issue 18); the older page's has no `next`.
        vote_body = {**VOTES, "dwell_ms": 1000, **({"next": {"exclude": []}} if self.one_trip else {})}
        held: dict[str, Any] | None = None  # a comparison that came with the previous vote
        while self._more():
            if held is None:
                status, data, ms, server, _ = self.post(f"/api/v1/campaigns/{CAMPAIGN}/comparisons/next", {})
                tally.statuses[status] += 1
                if status >= 500:
                    tally.server_errors.append(f"next: {status} {str(data)[:200]}")
                    time.sleep(0.05)
                    continue
                if status in (409, 429) and data.get("error", {}).get("code") in ("nothing_ready", "throttled"):
                    time.sleep(0.1)  # generation is behind (or a throttle): ask again shortly, as the page does
                    continue
                if status != 200:
                    tally.errors.append(f"next: {status} {str(data)[:200]}")
                    return
                tally.issue_ms.append(ms)
                if server is not None:
                    tally.issue_server_ms.append(server)
            else:
                data, held = held, None
            if any(len(data[side]["images"]) != POPULATION_SIZE for side in ("left", "right")):
                tally.bad_payloads += 1
            token = data["token"]
            # A person looks at twelve images before answering: uniform in [0.5, 1.5] x think_ms.
            if self.think_ms:
                time.sleep(self.think_ms * self.rng.uniform(0.5, 1.5) / 1000)
            status, reveal, ms, server, lost = self.post(f"/api/v1/comparisons/{token}/votes", vote_body)
            tally.statuses[status] += 1
            if lost:
                tally.unanswered.add(token)
            if status == 200:
                tally.vote_ms.append(ms)
                if server is not None:
                    tally.vote_server_ms.append(server)
                tally.acknowledged.append(token)
                tally.acknowledged_at.append(time.perf_counter())
                # Without one (next_error: nothing ready, say), the next turn asks on its own, as the page does.
                held = reveal.get("next") if self.one_trip else None
                if held is not None:
                    tally.came_with_vote += 1
            elif status == 409 and lost and reveal.get("error", {}).get("code") == "already_voted":
                tally.already_voted_after_loss.add(token)
            elif status >= 500:
                tally.server_errors.append(f"vote: {status} {str(reveal)[:200]}")
            else:
                tally.errors.append(f"vote: {status} {str(reveal)[:200]}")


def merge(participants: Sequence[Participant]) -> Tally:
    total = Tally()
    for p in participants:
        t = p.tally
        total.issue_ms += t.issue_ms
        total.vote_ms += t.vote_ms
        total.issue_server_ms += t.issue_server_ms
        total.vote_server_ms += t.vote_server_ms
        total.acknowledged += t.acknowledged
        total.acknowledged_at += t.acknowledged_at
        total.unanswered |= t.unanswered
        total.already_voted_after_loss |= t.already_voted_after_loss
        total.statuses += t.statuses
        total.server_errors += t.server_errors
        total.errors += t.errors
        total.connection_errors += t.connection_errors
        total.bad_payloads += t.bad_payloads
        total.came_with_vote += t.came_with_vote
    return total


def drive(participants: Sequence[Participant], *, join_timeout: float | None = None) -> float:
    """Start every participant, wait for all; returns the elapsed seconds."""
    started = time.perf_counter()
    for participant in participants:
        participant.start()
    for participant in participants:
        participant.join(timeout=join_timeout)
    return time.perf_counter() - started


# --- checks against the database ----------------------------------------------------------------------------


def votes_per_comparison(site: Site) -> dict[str, int]:
    rows = site.query(
        "SELECT c.token, COUNT(v.id) FROM arena_comparison c LEFT JOIN arena_vote v ON v.comparison_id = c.id "
        "GROUP BY c.token"
    )
    return {str(token): int(n) for token, n in rows}


def vote_integrity(site: Site, tally: Tally) -> dict[str, Any]:
    """Compare what was acknowledged with the arena_vote rows: lost, duplicated, stored without an answer."""
    stored = votes_per_comparison(site)
    acknowledged = Counter(tally.acknowledged)
    voted = {token for token, n in stored.items() if n}
    unacknowledged = voted - set(acknowledged)
    return {
        "comparisons_acknowledged": len(tally.acknowledged),
        "votes_stored": sum(stored.values()),
        # An acknowledged comparison without both of its criterion votes in the database.
        "lost": sum(1 for token in acknowledged if stored.get(token, 0) < CRITERIA),
        # A token acknowledged twice, or a comparison with more rows than criteria.
        "duplicated": sum(n - 1 for n in acknowledged.values() if n > 1)
        + sum(1 for n in stored.values() if n > CRITERIA),
        "half_voted": sum(1 for n in stored.values() if 0 < n < CRITERIA),
        "unacknowledged_but_stored": len(unacknowledged),
        # Stored without an acknowledgement and without a lost answer to explain it: must be 0.
        "unexplained_stored": len(unacknowledged - tally.unanswered),
        "server_5xx": len(tally.server_errors),
    }


def generation_integrity(site: Site) -> dict[str, Any]:
    """No population half-written, none non-ready ever issued, none left generating."""
    by_status = dict(site.query("SELECT status, COUNT(*) FROM generation_population GROUP BY status"))
    wrong_count = site.query(
        "SELECT p.id FROM generation_population p LEFT JOIN generation_image i ON i.population_id = p.id "
        "WHERE p.status = 'ready' GROUP BY p.id, p.size HAVING COUNT(i.id) <> p.size"
    )
    images_of_unready = site.query(
        "SELECT COUNT(*) FROM generation_image i JOIN generation_population p ON p.id = i.population_id "
        "WHERE p.status <> 'ready'"
    )[0][0]
    files = [str(name) for (name,) in site.query("SELECT DISTINCT file FROM generation_image")]
    missing = sum(1 for name in files if not (site.media_root / name).is_file())
    issued_unready = site.query(
        "SELECT COUNT(*) FROM arena_comparison c JOIN generation_population l ON l.id = c.left_population_id "
        "JOIN generation_population r ON r.id = c.right_population_id WHERE l.status <> 'ready' OR r.status <> 'ready'"
    )[0][0]
    referenced = set(files)
    on_disk = {str(path.relative_to(site.media_root)) for path in site.media_root.rglob("*") if path.is_file()}
    return {
        "populations": {str(k): int(v) for k, v in by_status.items()},
        "ready_without_all_images": len(wrong_count),
        "images_of_unready_populations": int(images_of_unready),
        "image_files_missing": missing,
        "issued_with_unready_population": int(issued_unready),
        # Files a killed worker wrote before its transaction; invisible, reported for the record.
        "orphan_files": len(on_disk - referenced),
    }
