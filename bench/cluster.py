"""Rehearsal (issue 34): PopArena on several hosts, each a network namespace of this machine, through three faults.

The hosts (bench/netns.py; each its own address on a private network, 198.18.x.0/24):
- proxy: Debian's nginx with deploy/nginx/poparena.conf and deploy/health_gate.py, run as their systemd units
  run them (deploy/systemd/poparena-health-gate.service);
- web1, web2: each `poparena-web@8000.service`'s uvicorn command, WEB_PROCESSES=2 processes, with
  deploy/env/common.env + web.env (only the addresses, secrets and the settings listed in WEB_OVERRIDES differ);
- worker1, worker2: `poparena-remote-worker@cpu.service` with remote-worker.env and a `worker` token each; their
  only network is a link to the proxy (no route to the database, Redis, storage or the web hosts, checked);
- db: a PostgreSQL server of its own (initdb in a scratch folder); redis: a Redis server of its own;
- storage: moto's standalone S3 server (bench/object_store.py: every acknowledged write journaled and fsynced before
  its answer, so a restart, or a kill, keeps the bucket).
This script runs in the machine's own namespace, on the bridge: the participants' side of the proxy and the
operator's (migrate, seeding, the checks read PostgreSQL and the bucket directly).

What happens, in order, while scripted participants (bench/loadkit.py's, through the proxy, each comparison's
first image fetched too) vote flat out and a prober votes every 1.5 s in a campaign of its own:
1. steady load (--steady-s);
2. web1 is killed (SIGKILL to every process of the host, an export running there included) and started again
   after --web-down-s; the health gate takes it out of nginx's list and back in (while its processes boot, the
   next fault is already under way: the storage fault waits for it to be back);
3. worker1 is cut off (its link to the proxy goes down) while it holds claimed sets; their lease
   (--lease-s) runs out, worker2 claims and finishes them; then the link comes back;
4. the storage server is restarted (SIGTERM; started again once it has exited) while an export reads images from it.
Watchers hold leaderboard sockets on both web hosts, connected to each host directly, so that every vote the
proxy sends to the other host must cross Redis to reach them; they reconnect (to the same host) when it dies.

Afterwards it checks and reports as JSON: every acknowledged vote stored once, none stored without an answer
lost with its server (loadkit.vote_integrity), per fault too; the final board on every watcher of both hosts;
push latency of the prober's votes to watchers on the other web host (nginx's log says which host took each
vote); votes/s through the proxy and the server's p99 (Server-Timing); for each fault the proxy's 502s, the
longest wait of any request and the longest time with no request answered; the cut-off worker's sets finished
elsewhere while it was away (its late uploads refused, counted); every stored image in the bucket; no set
half-written; each export interrupted by a fault
whole or absent, and a last one whole. Then every namespace, link and process is gone (checked).

Run as root (network namespaces), with Debian's nginx (apt-get install nginx-light):
    .venv/bin/python bench/cluster.py [--participants 40] [--steady-s 20] [--web-down-s 5] [--settle-s 10]
        [--lease-s 5] [--watchers 4] [--out report.json]
    .venv/bin/python bench/cluster.py --short    # the CI test's version: a few seconds per phase
It exits 1 when a check fails. tests/test_cluster.py runs the short version.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import math
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.loadkit import (  # noqa: E402
    CAMPAIGN,
    CRITERIA,
    VOTES,
    Participant,
    Site,
    Tally,
    merge,
    p50_p99,
    percentile,
    revision_of,
    vote_integrity,
)
from bench.netns import Host, Network, kill_namespace_processes, unavailable  # noqa: E402
from tests.servers import server_env  # noqa: E402

DEPLOY = ROOT / "deploy"
WEB_PORT = 8000  # the instance of poparena-web@.service
PUBLIC_PORT = 80  # deploy/nginx/poparena.conf listens here
PG_PORT, REDIS_PORT, S3_PORT = 5432, 6379, 9000
BUCKET = "poparena-media"
PROBE = "probe"  # the prober's campaign: its board moves only with the prober's votes
CRITERION = "diversity"  # the board the watchers show (the first criterion of both campaigns)
GATEWAY_ERRORS = (502, 503, 504)
STORAGE_STOP_S = 120  # how long the storage server may take to exit after SIGTERM before it is killed
POPULATION_SIZE = 6
PROBE_SIZE = 2

# What the rehearsal sets beyond the addresses and secrets, and why (everything else comes from deploy/env/).
WEB_OVERRIDES = {
    # No TLS between this script and the proxy: cookies without Secure, the scheme not read from the proxy.
    "BEHIND_TLS_PROXY": "false",
    "SECURE_COOKIES": "false",
    # The rehearsal renders no page, so collectstatic is not run.
    "STATIC_MANIFEST": "false",
    # Every scripted participant comes from this machine's one address behind the proxy: the per-address
    # throttles (200 requests/s, 60 new sessions an hour) would measure themselves. Per-session ones stay.
    "THROTTLE_ANON": "off",
    "THROTTLE_NEW_SESSION": "off",
    # Scripted participants answer at once (tests.servers.server_env sets it for every bench).
    "VOTE_MIN_DWELL_MS": "0",
    "LOG_LEVEL": "WARNING",
}

# The two campaigns: "load" (bench/loadkit.py's participants vote in it; some prompts only the workers fill) and
# "probe" (the prober's). Ready sets are seeded with real PNGs in the bucket, every set of a generator sharing
# its generator's files; the superuser owns one `worker` token per worker host, whose keys are printed once.
SETUP = """
import io, json
from PIL import Image as Picture
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from access.services import create_api_token
from annotation.models import Campaign, Criterion
from annotation.services import set_campaign_status
from generation.image_files import canonical_png
from generation.models import Generator, Image, Population, Prompt
import hashlib

def png(seed):
    buffer = io.BytesIO()
    Picture.new("RGB", (32, 32), ((seed * 37) % 256, (seed * 91) % 256, (seed * 13) % 256)).save(buffer, "PNG")
    return canonical_png(buffer.getvalue()).data

def campaign(slug, size, prompts, empty, generators, per_queue):
    made = Campaign.objects.create(slug=slug, title=slug, population_size=size, votes_per_pair=5)
    Criterion.objects.create(campaign=made, key="diversity", question="More diverse?", position=0)
    Criterion.objects.create(campaign=made, key="quality", question="Better?", position=1)
    ready = [Prompt.objects.create(caption=f"{slug} prompt {i}", category=slug) for i in range(prompts)]
    blank = [Prompt.objects.create(caption=f"{slug} generated prompt {i}", category=slug) for i in range(empty)]
    made.prompts.set(ready + blank)
    now = timezone.now()
    for g in range(generators):
        generator = Generator.objects.create(name=f"{slug}-g{g}", source="builtin:tiny-random", settings=SETTINGS)
        made.generators.add(generator)
        files = []
        for i in range(size):
            data = png(1000 * len(slug) + 10 * g + i)
            files.append((default_storage.save(f"images/{slug}/{g}-{i}.png", ContentFile(data)), data))
        sets = Population.objects.bulk_create(
            (Population(generator=generator, prompt=p, size=size, seeds=list(range(size)), status="ready", ready_at=now)
             for p in ready for _ in range(per_queue)), batch_size=2000)
        Image.objects.bulk_create(
            (Image(population=s, index=i, file=files[i][0], seed=i, generation_prompt="seeded", width=32, height=32,
                   sha256=hashlib.sha256(files[i][1]).hexdigest())
             for s in sets for i in range(size)), batch_size=5000)
    set_campaign_status(campaign=made, status="open")

campaign("load", LOAD_SIZE, LOAD_PROMPTS, EMPTY_PROMPTS, GENERATORS, LOAD_PER_QUEUE)
campaign("probe", PROBE_SIZE, 1, 0, 2, PROBE_PER_QUEUE)
user = get_user_model().objects.create_superuser("rehearsal", "rehearsal@example.org", None)
keys = {}
for host in WORKER_HOSTS:
    issued = create_api_token(user=user, name=f"rehearsal {host}", scopes=["worker"])
    keys[host] = [issued.token.pk, issued.key]
issued = create_api_token(user=user, name="rehearsal exports", scopes=["export"])
keys["operator"] = [issued.token.pk, issued.key]
print("KEYS " + json.dumps(keys) + " " + str(Campaign.objects.get(slug="load").pk))
"""


# --- options --------------------------------------------------------------------------------------------------


@dataclass
class Options:
    participants: int = 40
    think_ms: int = 0
    steady_s: float = 20.0
    web_down_s: float = 5.0  # how long the killed web host stays down before it is started again
    settle_s: float = 10.0  # load after each fault, before the next
    lease_s: int = 5  # the workers' claim lease (WORKER_LEASE_SECONDS; the API's minimum is 5)
    reclaim_limit_s: float = 60.0  # how long the cut may last while the cut worker's sets are finished elsewhere
    watchers: int = 4  # load-board sockets per web host (plus one probe-board socket each)
    probe_every_s: float = 1.5
    generators: int = 4
    prompts: int = 8
    empty_prompts: int = 4
    worker_settings: dict[str, Any] = field(
        default_factory=lambda: {"steps": 4, "width": 32, "height": 32, "guidance_scale": 0.0}
    )
    worker_max_batch: int = 6
    lag_limit_s: float = 20.0  # how long the last board may take to reach every watcher

    @classmethod
    def short(cls) -> Options:
        """The CI test's version: the same hosts and faults, a few seconds each."""
        return cls(
            participants=8,
            steady_s=3.0,
            web_down_s=1.0,
            settle_s=3.0,
            watchers=2,
            probe_every_s=1.0,
            generators=2,
            prompts=3,
            empty_prompts=2,
            # The other worker may first have to load its pipeline (it may not have generated yet): on this 2-core
            # machine under others' load (10-15) the sets were finished elsewhere only after 90 s and more.
            reclaim_limit_s=180.0,
        )

    def total_s(self) -> float:
        return self.steady_s + 3 * self.settle_s + self.web_down_s + 20 + self.lease_s + 20

    def per_queue(self) -> int:
        """Ready sets per seeded queue: about 40 comparisons/s for the whole run, each set serving 5 of them."""
        needed = 40 * self.total_s() * 2 / 5 / (self.generators * self.prompts)
        return max(10, math.ceil(needed))

    def probe_per_queue(self) -> int:
        # The prober never sees a set twice (it is one client), so each probe uses a fresh set of each queue.
        return math.ceil(1.5 * (self.total_s() + 120) / self.probe_every_s)


# --- deploy/: env files and unit commands -------------------------------------------------------------------------


def env_file(name: str) -> dict[str, str]:
    """deploy/env/NAME as a mapping (KEY=VALUE lines; # comments)."""
    pairs = {}
    for line in (DEPLOY / "env" / name).read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def unit_env_files(unit: str) -> list[str]:
    text = (DEPLOY / "systemd" / unit).read_text()
    return re.findall(r"^EnvironmentFile=/etc/poparena/(\S+)$", text, flags=re.MULTILINE)


def unit_command(unit: str, instance: str, env: Mapping[str, str], paths: Mapping[str, str]) -> list[str]:
    """The unit's ExecStart as argv: %i/%I the instance, ${VAR} from `env`, the paths of a host as `paths` maps them."""
    text = (DEPLOY / "systemd" / unit).read_text().replace("\\\n", " ")
    (line,) = re.findall(r"^ExecStart=(.*)$", text, flags=re.MULTILINE)
    for old, new in paths.items():
        line = line.replace(old, new)
    line = line.replace("%i", instance).replace("%I", instance)
    missing = sorted(set(re.findall(r"\$\{(\w+)\}", line)) - set(env))
    if missing:
        raise ValueError(f"{unit} uses {missing}, which its environment lacks")
    line = re.sub(r"\$\{(\w+)\}", lambda m: shlex.quote(env[m.group(1)]), line)
    return shlex.split(line)


def unit_env(unit: str, base: Mapping[str, str], overrides: Mapping[str, str]) -> dict[str, str]:
    """The process environment of a unit: `base`, then its env files in order, then the rehearsal's overrides."""
    env = dict(base)
    for name in unit_env_files(unit):
        env.update(env_file(name))
    env.update(overrides)
    return env


# --- processes on the hosts -------------------------------------------------------------------------------------


class Process:
    """A process started inside a host, its output in a file of the run's folder."""

    def __init__(self, host: Host, argv: Sequence[str], *, env: Mapping[str, str], log: Path, user: str = "") -> None:
        self.host = host
        self.log_path = log
        # A host's process started again writes on in the same file: this one's output starts here.
        self.offset = log.stat().st_size if log.exists() else 0
        self.log: IO[bytes] = open(log, "ab")  # noqa: SIM115 (open as long as the process runs)
        drop = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"] if user else []
        self.process = subprocess.Popen(
            host.command(*drop, *argv),
            cwd=ROOT,
            env=dict(env),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30) -> int | None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()
        return self.process.returncode

    def output(self, chars: int = 4000) -> str:
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as log:
            log.seek(self.offset)
            return log.read().decode(errors="replace")[-chars:]


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(interval)


def answers(address: str, port: int, timeout_s: float = 1.0) -> bool:
    try:
        socket.create_connection((address, port), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def http_status(address: str, port: int, path: str, *, host: str = "", timeout_s: float = 5.0) -> int:
    connection = http.client.HTTPConnection(address, port, timeout=timeout_s)
    try:
        connection.request("GET", path, headers={"Host": host} if host else {})
        response = connection.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        connection.close()


# --- the cluster ----------------------------------------------------------------------------------------------------


class Cluster:
    """The hosts, their processes and the run's folder; close() leaves nothing behind."""

    def __init__(self, folder: Path, options: Options) -> None:
        self.folder = folder
        self.options = options
        self.net = Network()
        self.processes: dict[str, Process] = {}
        self.proxy = self.net.add_host("proxy")
        self.web = {name: self.net.add_host(name) for name in ("web1", "web2")}
        self.db = self.net.add_host("db")
        self.redis = self.net.add_host("redis")
        self.storage = self.net.add_host("storage")
        self.workers = {name: self.net.add_linked_host(name, self.proxy) for name in ("worker1", "worker2")}
        self.public = f"http://{self.proxy.address}"
        self.database_url = f"postgres://postgres@{self.db.address}:{PG_PORT}/poparena"
        self.secret_key = secrets.token_urlsafe(50)
        self.hash_key = secrets.token_urlsafe(32)
        # worker host (or "operator", the exporting researcher) -> (token id, key); kept in memory only
        self.keys: dict[str, tuple[int, str]] = {}
        self.campaign_pk = 0
        self.nginx_dir = folder / "proxy"
        self.exports = folder / "exports"  # the web hosts' shared EXPORTS_ROOT (a mount every web host has)

    # -- environments --

    def host_dir(self, name: str) -> Path:
        path = self.folder / "hosts" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def common_overrides(self, name: str) -> dict[str, str]:
        var = self.host_dir(name)
        return {
            "SECRET_KEY": self.secret_key,
            "PARTICIPANT_HASH_KEY": self.hash_key,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": f"redis://{self.redis.address}:{REDIS_PORT}/0",
            "AWS_S3_ENDPOINT_URL": f"http://{self.storage.address}:{S3_PORT}",
            # moto takes any key; these stand for the deployment's own.
            "AWS_ACCESS_KEY_ID": "rehearsal",
            "AWS_SECRET_ACCESS_KEY": "rehearsal",  # noqa: S106 (not a secret: moto's)
            "POPARENA_VAR_DIR": str(var),
            "HF_HOME": str(var / "huggingface"),
        }

    def web_env(self, name: str) -> dict[str, str]:
        base = server_env(self.host_dir(name))
        overrides = {
            **self.common_overrides(name),
            **WEB_OVERRIDES,
            "WEB_BIND": self.web[name].address if name in self.web else "127.0.0.1",
            "ALLOWED_HOSTS": self.proxy.address,
            "CSRF_TRUSTED_ORIGINS": self.public,
            "STATIC_ROOT": str(self.host_dir(name) / "static"),
            "EXPORTS_ROOT": str(self.exports),
        }
        return unit_env("poparena-web@.service", base, overrides)

    def worker_env(self, name: str) -> dict[str, str]:
        var = self.host_dir(name)
        token_id, key = self.keys[name]
        base = server_env(var)
        overrides = {
            # The public address, reached over the worker's only link (bench/netns.py routes it there).
            "POPARENA_SERVER": self.public,
            "POPARENA_WORKER_TOKEN": key,
            "WORKER_MAX_BATCH": str(self.options.worker_max_batch),
            "WORKER_LEASE_SECONDS": str(self.options.lease_s),
            "POPARENA_VAR_DIR": str(var),
            "HF_HOME": str(var / "huggingface"),
            "GENERATION_CPU_THREADS": "1",
            "LOG_LEVEL": "INFO",
        }
        env = unit_env("poparena-remote-worker@.service", base, overrides)
        assert not {"DATABASE_URL", "REDIS_URL", "AWS_SECRET_ACCESS_KEY", "SECRET_KEY"} & set(env)
        return env

    def unit_paths(self) -> dict[str, str]:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        return {
            "/opt/poparena/.venv/bin/python": sys.executable,
            "/opt/poparena/deploy/": f"{DEPLOY}/",
            "/etc/poparena/web-servers": str(self.nginx_dir / "web-servers"),
            "/etc/nginx/poparena-upstreams.conf": str(self.nginx_dir / "poparena-upstreams.conf"),
            "/usr/sbin/nginx -s reload": f"{nginx} -p {self.nginx_dir} -c {self.nginx_dir / 'nginx.conf'} -s reload",
        }

    def start(self, name: str, host: Host, argv: Sequence[str], env: Mapping[str, str], user: str = "") -> Process:
        log = self.folder / "logs" / f"{name}.log"
        log.parent.mkdir(exist_ok=True)
        process = self.processes[name] = Process(host, argv, env=env, log=log, user=user)
        return process

    # -- the shared services --

    def start_database(self) -> None:
        binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not binaries:
            raise RuntimeError("PostgreSQL's server is not installed (/usr/lib/postgresql/*/bin/initdb)")
        bindir = binaries[-1].parent
        data = self.folder / "db"
        data.mkdir()
        import pwd

        postgres = pwd.getpwnam("postgres")
        os.chown(data, postgres.pw_uid, postgres.pw_gid)
        subprocess.run(
            [
                "setpriv",
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        # Trust from the private network only: the database host is reachable from nowhere else.
        with open(data / "pg_hba.conf", "a") as rules:
            rules.write(f"host all all {self.net.subnet} trust\n")
        argv = [
            str(bindir / "postgres"),
            "-D",
            str(data),
            "-c",
            f"listen_addresses={self.db.address}",
            "-c",
            f"port={PG_PORT}",
            "-c",
            f"unix_socket_directories={data}",
            "-c",
            "max_connections=200",
        ]
        self.start("postgres", self.db, argv, os.environ, user="postgres")

    def start_redis(self) -> None:
        data = self.folder / "redis"
        data.mkdir()
        argv = [
            "redis-server",
            "--bind",
            self.redis.address,
            "--port",
            str(REDIS_PORT),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
            "--dir",
            str(data),
        ]
        self.start("redis", self.redis, argv, os.environ)

    def start_storage(self) -> Process:
        argv = [
            sys.executable,
            str(ROOT / "bench" / "object_store.py"),
            "--address",
            self.storage.address,
            "--port",
            str(S3_PORT),
            "--journal",
            str(self.folder / "s3.journal"),
        ]
        process = self.start("storage", self.storage, argv, os.environ)
        wait_until(lambda: "ready" in process.output() or not process.alive(), 120, "the storage server", 0.05)
        if not process.alive():
            raise RuntimeError(f"the storage server did not start:\n{process.output()}")
        return process

    def s3(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=f"http://{self.storage.address}:{S3_PORT}",
            region_name=env_file("common.env")["AWS_S3_REGION_NAME"],
            aws_access_key_id="rehearsal",
            aws_secret_access_key="rehearsal",  # noqa: S106
            config=Config(retries={"max_attempts": 10, "mode": "standard"}),
        )

    def create_database(self) -> None:
        import psycopg

        admin = self.database_url.rsplit("/", 1)[0] + "/postgres"
        wait_until(lambda: answers(self.db.address, PG_PORT), 60, "PostgreSQL")
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute("CREATE DATABASE poparena")

    def prepare_database(self) -> None:
        """migrate, then the campaigns, the tokens and the seeded sets (SETUP)."""
        env = self.web_env("operator")
        self.manage(env, "migrate", "--noinput")
        options = self.options
        code = SETUP
        for name, value in {
            "SETTINGS": repr(options.worker_settings),
            "LOAD_SIZE": str(POPULATION_SIZE),
            "PROBE_SIZE": str(PROBE_SIZE),
            "LOAD_PROMPTS": str(options.prompts),
            "EMPTY_PROMPTS": str(options.empty_prompts),
            "GENERATORS": str(options.generators),
            "LOAD_PER_QUEUE": str(options.per_queue()),
            "PROBE_PER_QUEUE": str(options.probe_per_queue()),
            "WORKER_HOSTS": repr(sorted(self.workers)),
        }.items():
            code = code.replace(name, value)
        out = self.manage(env, "shell", "--no-imports", "-c", code)
        keys, campaign = out.split("KEYS ", 1)[1].splitlines()[0].rsplit(" ", 1)
        self.keys = {host: (int(pk), key) for host, (pk, key) in json.loads(keys).items()}
        self.campaign_pk = int(campaign)

    def manage(self, env: Mapping[str, str], *args: str, timeout_s: float = 600) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
        return result.stdout

    # -- web hosts, proxy, workers --

    def start_web(self, name: str) -> Process:
        env = self.web_env(name)
        argv = unit_command("poparena-web@.service", str(WEB_PORT), env, self.unit_paths())
        return self.start(name, self.web[name], argv, env)

    def web_answers(self, name: str) -> bool:
        return http_status(self.web[name].address, WEB_PORT, "/api/v1/health", host=self.proxy.address) == 200

    def start_proxy(self) -> None:
        folder = self.nginx_dir
        folder.mkdir()
        (folder / "web-servers").write_text("".join(f"{h.address}:{WEB_PORT}\n" for h in self.web.values()))
        site = (DEPLOY / "nginx" / "poparena.conf").read_text()
        include = "include /etc/nginx/poparena-upstreams.conf;"
        if include not in site:
            raise RuntimeError(f"deploy/nginx/poparena.conf no longer says {include!r}")
        (folder / "poparena.conf").write_text(site.replace(include, f"include {folder}/poparena-upstreams.conf;"))
        temp = "".join(
            f"  {kind}_temp_path {folder}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (folder / "nginx.conf").write_text(
            f"daemon off;\nworker_processes 1;\npid {folder}/nginx.pid;\nerror_log {folder}/error.log warn;\n"
            "events { worker_connections 4096; }\n"
            "http {\n"
            f"{temp}"
            "  log_format rehearsal '$msec|$request_method|$request_uri|$status|$upstream_addr|$request_time';\n"
            f"  access_log {folder}/access.log rehearsal;\n"
            f"  include {folder}/poparena.conf;\n"
            "}\n"
        )
        gate_env = unit_env("poparena-health-gate.service", os.environ, {"PUBLIC_HOST": self.proxy.address})
        gate = unit_command("poparena-health-gate.service", "", gate_env, self.unit_paths())
        # The gate writes the server list before nginx starts (nginx needs the file it includes); its first
        # reload meets no nginx yet, which it shrugs off, as at a real proxy's boot.
        self.start("health-gate", self.proxy, gate, gate_env)
        upstreams = folder / "poparena-upstreams.conf"
        wait_until(upstreams.exists, 30, "the health gate's server list")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.start("nginx", self.proxy, [nginx, "-p", str(folder), "-c", str(folder / "nginx.conf")], os.environ)
        wait_until(lambda: answers(self.proxy.address, PUBLIC_PORT), 30, "nginx")

    def exports_folder(self) -> Path:
        """The load campaign's exports (exports.publish.campaign_exports_folder: named by its key)."""
        return self.exports / f"campaign-{self.campaign_pk}"

    def upstreams_down(self) -> set[str]:
        text = (self.nginx_dir / "poparena-upstreams.conf").read_text()
        return set(re.findall(r"^server (\S+) .* down;$", text, flags=re.MULTILINE))

    def start_worker(self, name: str) -> Process:
        env = self.worker_env(name)
        argv = unit_command("poparena-remote-worker@.service", "cpu", env, self.unit_paths())
        return self.start(name, self.workers[name], argv, env)

    def reachable_from(self, host: Host, address: str, port: int) -> bool:
        probe = "import socket,sys\ntry:\n socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)\n"
        probe += "except OSError:\n sys.exit(1)"
        result = subprocess.run(host.command("python3", "-c", probe, address, str(port)), capture_output=True)
        return result.returncode == 0

    def kill_host(self, name: str) -> int:
        """SIGKILL every process of the host at once (its web server, and anything else it was running)."""
        killed = kill_namespace_processes(self.web[name].namespace)
        self.processes[name].stop(signal.SIGKILL)
        return killed

    def close(self) -> dict[str, Any]:
        for process in self.processes.values():
            with contextlib.suppress(Exception):
                process.stop(signal.SIGKILL, timeout_s=5)
        # Participants' side first, the shared services last (bench/netns.py: Network.close).
        self.net.close(first=[*self.workers, "proxy", *self.web])
        ours = [p.process.pid for p in self.processes.values() if p.process.poll() is None]
        return {"namespaces_and_links_left": self.net.leftovers(), "processes_left": ours}


# --- participants, the prober, watchers -----------------------------------------------------------------------------


class ProxyParticipant(Participant):
    """loadkit's scripted participant, through the proxy.

    nginx answers 502 (with its own page, not PopArena's JSON) when the web server it sent a request to died with
    it: that answer is lost with the server, as a dropped connection is, so it is retried for up to `retry_s`,
    and a vote retried that way that comes back 409 already_voted was stored by the dead server (loadkit's
    `unanswered` and `already_voted_after_loss`). Each comparison's first left image is fetched through the proxy,
    as the page shows it. Every request's start, end and status is kept for the fault windows.
    """

    def __init__(self, base: str, **kwargs: Any) -> None:
        super().__init__(base, **kwargs)
        self.requests: list[tuple[float, float, int]] = []  # (start, end, status) of each request, retries included
        self.gateway_errors: list[float] = []
        self.images: list[tuple[float, float, int]] = []  # (asked, answered, status) of each image fetched
        self.image_connection: http.client.HTTPConnection | None = None

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], float, float | None, bool]:
        started = time.perf_counter()
        give_up = started + self.retry_s
        lost_any = False
        while True:
            status, data, _, server, lost = super().post(path, body)
            lost_any = lost_any or lost
            if status in GATEWAY_ERRORS and "error" not in data:
                self.gateway_errors.append(time.perf_counter())
                lost_any = True
                if time.perf_counter() < give_up:
                    time.sleep(0.1)
                    continue
            break
        ended = time.perf_counter()
        self.requests.append((started, ended, status))
        comparison = data.get("next") if path.endswith("/votes") else data
        if status == 200 and isinstance(comparison, dict) and comparison.get("left", {}).get("images"):
            self.fetch_image(comparison["left"]["images"][0])
        return status, data, (ended - started) * 1000, server, lost_any

    def fetch_image(self, url: str) -> None:
        asked = time.perf_counter()
        for attempt in range(2):  # a kept-alive connection the proxy closed is reopened once
            if self.image_connection is None:
                self.image_connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                self.image_connection.request("GET", url, headers={"User-Agent": self.agent})
                response = self.image_connection.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                self.image_connection.close()
                self.image_connection = None
                if attempt:
                    self.images.append((asked, time.perf_counter(), 0))
                continue
            ok = response.status == 200 and data.startswith(b"\x89PNG")
            self.images.append((asked, time.perf_counter(), response.status if ok or response.status != 200 else -1))
            return


class Prober(ProxyParticipant):
    """Votes once every `every_s` in the probe campaign, one comparison at a time, through the proxy.

    Its board moves only with its own votes, so the time from a vote's answer to the push that counts it is
    exact on every watcher. Its votes are checked with the participants' (both criteria each).
    """

    def __init__(self, base: str, *, every_s: float, **kwargs: Any) -> None:
        super().__init__(base, **kwargs)
        self.every_s = every_s
        self.stop = threading.Event()
        self.voted: list[tuple[str, float]] = []  # (token, when the vote was answered)

    def _run(self) -> None:
        tally = self.tally
        while not self.stop.is_set():
            status, data, ms, server, _ = self.post(f"/api/v1/campaigns/{PROBE}/comparisons/next", {})
            tally.statuses[status] += 1
            if status != 200:
                (tally.server_errors if status >= 500 else tally.errors).append(f"probe next: {status} {data}"[:300])
                self.stop.wait(self.every_s)
                continue
            token = data["token"]
            status, reveal, ms, server, lost = self.post(f"/api/v1/comparisons/{token}/votes", {**VOTES, "dwell_ms": 1})
            tally.statuses[status] += 1
            if lost:
                tally.unanswered.add(token)
            if status == 200:
                tally.acknowledged.append(token)
                tally.acknowledged_at.append(time.perf_counter())
                self.voted.append((token, time.perf_counter()))
            elif status == 409 and lost and reveal.get("error", {}).get("code") == "already_voted":
                tally.already_voted_after_loss.add(token)
            else:
                (tally.server_errors if status >= 500 else tally.errors).append(f"probe vote: {status} {reveal}"[:300])
            self.stop.wait(self.every_s)


@dataclass
class Watcher:
    """One leaderboard socket held on one web host, as the page holds it; reconnects to that host when it drops."""

    host: str
    address: str
    origin: str
    campaign: str
    pushes: list[tuple[float, int]] = field(default_factory=list)  # (time, votes on the board)
    connects: list[float] = field(default_factory=list)
    drops: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        from websockets.sync.client import connect
        from websockets.typing import Origin

        url = f"ws://{self.address}:{WEB_PORT}/ws/campaigns/{self.campaign}/leaderboard/"
        while not self.stop.is_set():
            try:
                with connect(url, origin=Origin(self.origin), open_timeout=10, close_timeout=1) as sock:
                    self.connects.append(time.perf_counter())
                    sock.send(json.dumps({"criterion": CRITERION, "category": ""}))
                    while not self.stop.is_set():
                        try:
                            message = json.loads(sock.recv(timeout=0.5))
                        except TimeoutError:
                            continue
                        self.pushes.append((time.perf_counter(), int(message["votes"])))
            except Exception as exc:  # a dead host: the page tries again within 3 s (static/js/leaderboard.js)
                if self.connects and (not self.drops or self.drops[-1] < self.connects[-1]):
                    self.drops.append(time.perf_counter())
                if len(self.errors) < 20:
                    self.errors.append(repr(exc)[:200])
                self.stop.wait(1.0)

    def connected_at(self, t: float) -> bool:
        """Whether the socket was open at `t` (connects and drops alternate)."""
        opened = [c for c in self.connects if c <= t]
        return bool(opened) and len([d for d in self.drops if d <= t]) < len(opened)

    def holds(self, votes: int) -> float | None:
        """When this socket first held a board with at least `votes` votes, or None."""
        return next((t for t, v in self.pushes if v >= votes), None)


# --- reading the proxy's log ------------------------------------------------------------------------------------


@dataclass
class ProxyLine:
    at: float  # time.time()
    method: str
    uri: str
    status: int
    upstream: str  # the last web server tried ("" when none was)


def proxy_log(folder: Path) -> list[ProxyLine]:
    lines = []
    path = folder / "access.log"
    for raw in path.read_text().splitlines() if path.exists() else []:
        parts = raw.split("|")
        if len(parts) != 6:
            continue
        upstream = parts[4].split(",")[-1].strip().rsplit(":", 1)[0] if parts[4] != "-" else ""
        lines.append(ProxyLine(float(parts[0]), parts[1], parts[2], int(parts[3]), upstream))
    return lines


# --- exports -------------------------------------------------------------------------------------------------------


def export_state(folder: Path) -> str:
    """'absent', 'whole' (every file its manifest lists, with its size and hash, and nothing else), or what is wrong."""
    if not folder.exists():
        return "absent"
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return "broken: no manifest.json"
    listed = json.loads(manifest.read_text())
    seen = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} - {"manifest.json"}
    for entry in listed["files"]:
        path = folder / entry["path"]
        if not path.is_file():
            return f"broken: {entry['path']} is missing"
        data = path.read_bytes()
        if len(data) != entry["bytes"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            return f"broken: {entry['path']} differs from the manifest"
        seen.discard(entry["path"])
    if seen:
        return f"broken: {len(seen)} files the manifest does not list"
    return "whole"


class ExportRun:
    """A researcher's export (POST /api/v1/campaigns/load/exports) asked of one web host, on a thread of its own.

    The export runs inside that web server's request, so it dies with the host; it is asked of the host directly
    (the proxy would pick one) with the public name as Host. Its result is whole or absent: the folder it names,
    and any folder that appeared in the campaign's exports meanwhile, must be whole (export_state).
    """

    def __init__(self, cluster: Cluster, address: str, port: int) -> None:
        self.cluster = cluster
        self.folder = cluster.exports_folder()
        self.before = set(visible(self.folder))
        self.answer: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._ask, args=(address, port), daemon=True)
        self.thread.start()

    def _ask(self, address: str, port: int) -> None:
        connection = http.client.HTTPConnection(address, port, timeout=300)
        headers = {
            "Host": self.cluster.proxy.address,
            "Authorization": f"Bearer {self.cluster.keys['operator'][1]}",
            "Content-Type": "application/json",
        }
        try:
            body = '{"format": "population-jsonl"}'
            connection.request("POST", f"/api/v1/campaigns/{CAMPAIGN}/exports", body, headers)
            response = connection.getresponse()
            body = json.loads(response.read() or b"{}")
            self.answer = {"status": response.status, "name": body.get("name"), "error": body.get("error")}
        except (OSError, http.client.HTTPException, ValueError) as error:
            self.answer = {"status": None, "lost": repr(error)[:200]}
        finally:
            connection.close()

    def under_way(self) -> bool:
        """Whether it is writing its staging folder now."""
        return self.thread.is_alive() and any(self.folder.glob(".*.partial"))

    def finish(self, timeout_s: float = 300) -> dict[str, Any]:
        self.thread.join(timeout_s)
        new = sorted(set(visible(self.folder)) - self.before)
        states = {name: export_state(self.folder / name) for name in new}
        named = self.answer.get("name")
        if named:
            state = states.get(named, "absent")
        else:
            state = "absent" if not new else "; ".join(f"{n}: {st}" for n, st in states.items())
        return {
            "answer": self.answer,
            "state": state,
            "new_folders_whole": all(st == "whole" for st in states.values()),
        }


def visible(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if not p.name.startswith(".")] if folder.exists() else []


# --- the rehearsal -----------------------------------------------------------------------------------------------


class Background:
    """A function run on a thread of its own; finish() waits for it and raises what it raised."""

    def __init__(self, function: Callable[[], None]) -> None:
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(function,), daemon=True)
        self.thread.start()

    def _run(self, function: Callable[[], None]) -> None:
        try:
            function()
        except BaseException as error:  # handed to finish()
            self.error = error

    def finish(self, timeout_s: float) -> bool:
        """Whether it was still running when called (it has ended now)."""
        running = self.thread.is_alive()
        self.thread.join(timeout_s)
        if self.thread.is_alive():
            raise TimeoutError(f"not finished within {timeout_s:.0f} s")
        if self.error is not None:
            raise self.error
        return running


@dataclass
class Window:
    name: str
    start: float  # perf_counter
    end: float = 0.0
    facts: dict[str, Any] = field(default_factory=dict)


class Rehearsal:
    def __init__(self, cluster: Cluster, options: Options) -> None:
        self.cluster = cluster
        self.options = options
        self.windows: list[Window] = []
        self.gate_log: list[tuple[float, frozenset[str]]] = []
        self.stop_watching = threading.Event()
        self.worker_log_mark = 0  # where the cut worker's log stood when its link came back
        self.storage_ready_at = 0.0
        self.warm_up_s = 0.0
        self.web_back_at_wall = float("inf")  # time.time() when the killed web host answered again
        self.web_return: Background | None = None  # waits for the killed web host to come back
        self.participants: list[ProxyParticipant] = []
        # The operator's view of the database (bench/loadkit.py's checks read it through a Site).
        self.site = Site(env=cluster.web_env("operator"), var_dir=cluster.folder, database_url=cluster.database_url)

    # -- helpers --

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.site.query(sql, params)

    def bucket_keys(self) -> set[str]:
        present: set[str] = set()
        for page in self.cluster.s3().get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            present.update(item["Key"] for item in page.get("Contents", []))
        return present

    def held_by(self, worker: str) -> list[int]:
        token_id = self.cluster.keys[worker][0]
        rows = self.query(
            "SELECT id FROM generation_population WHERE status = 'generating' AND claimed_by LIKE ?",
            [f"token-{token_id}:%"],
        )
        return [int(pk) for (pk,) in rows]

    def watch_gate(self) -> None:
        last: frozenset[str] | None = None
        while not self.stop_watching.is_set():
            with contextlib.suppress(OSError):
                down = frozenset(self.cluster.upstreams_down())
                if down != last:
                    self.gate_log.append((time.perf_counter(), down))
                    last = down
            self.stop_watching.wait(0.1)

    def gate_changes(self, since: float) -> list[tuple[float, frozenset[str]]]:
        return [(t - since, down) for t, down in self.gate_log if t >= since]

    # -- the faults --

    def kill_web(self, victim: str) -> dict[str, Any]:
        cluster, options = self.cluster, self.options
        address = f"{cluster.web[victim].address}:{WEB_PORT}"
        export = ExportRun(cluster, cluster.web[victim].address, WEB_PORT)
        wait_until(lambda: export.under_way() or not export.thread.is_alive(), 120, "the export on the web host")
        interrupted = export.thread.is_alive()
        killed_at = time.perf_counter()
        killed = cluster.kill_host(victim)
        time.sleep(options.web_down_s)
        restarted_at = time.perf_counter()
        cluster.start_web(victim)
        facts: dict[str, Any] = {
            "host": victim,
            "processes_killed": killed,
            "down_s": round(restarted_at - killed_at, 2),
            "export": {"interrupted": interrupted, **export.finish()},
        }

        def come_back() -> None:
            wait_until(lambda: cluster.web_answers(victim), 120, f"{victim} after its restart")
            answering_at = time.perf_counter()
            self.web_back_at_wall = time.time()
            wait_until(lambda: address not in cluster.upstreams_down(), 60, f"{victim} back in nginx's list")
            back_in_at = time.perf_counter()
            changes = self.gate_changes(killed_at)
            names = {h.address: n for n, h in cluster.web.items()}
            marked_down = next((t for t, down in changes if address in down), None)
            facts.update(
                restart_until_answering_s=round(answering_at - restarted_at, 2),
                health_gate_marked_down_after_s=round(marked_down, 2) if marked_down is not None else None,
                back_in_proxy_list_after_restart_s=round(back_in_at - restarted_at, 2),
                # Each change of the servers marked down in nginx's list: seconds after the kill, which.
                health_gate_changes=[
                    (round(t, 1), sorted(names.get(a.split(":")[0], a) for a in down)) for t, down in changes
                ],
            )

        # Its two processes boot (most of a minute on a loaded 2-core machine) while the worker fault goes on,
        # which involves only the proxy, web2 and the workers; wait_for_web_host() waits for it before the storage
        # fault, whose figures (images served after the restart) need both web hosts.
        self.web_return = Background(come_back)
        return facts

    def wait_for_web_host(self) -> None:
        """Until the killed web host answers again and is back in nginx's list, then load on both hosts."""
        if self.web_return is not None and self.web_return.finish(timeout_s=200):
            time.sleep(min(self.options.settle_s, 2.0))

    def cut_worker(self, victim: str) -> dict[str, Any]:
        cluster, options = self.cluster, self.options
        host = cluster.workers[victim]
        tries = 0
        held: list[int] = []
        cut_at = time.perf_counter()
        while not held and tries < 5:
            tries += 1
            wait_until(lambda: self.held_by(victim), 120, f"{victim} holding a claim", interval=0.02)
            cluster.net.cut(host)
            cut_at = time.perf_counter()
            time.sleep(0.5)  # an upload already at the server commits or not; then look what it still holds
            held = self.held_by(victim)
            if not held:
                cluster.net.restore(host)
        marks = ",".join("?" * len(held))

        def finished_elsewhere() -> bool:
            rows = self.query(f"SELECT status FROM generation_population WHERE id IN ({marks})", held)  # noqa: S608
            return all(status == "ready" for (status,) in rows)

        finished = False
        with contextlib.suppress(TimeoutError):
            finished = bool(wait_until(finished_elsewhere, options.reclaim_limit_s, "the cut worker's sets", 0.2))
        finished_at = time.perf_counter()
        reachable_while_cut = cluster.reachable_from(host, cluster.proxy.address, PUBLIC_PORT)
        cluster.net.restore(host)
        restored_at = time.perf_counter()
        self.worker_log_mark = cluster.processes[victim].log_path.stat().st_size
        return {
            "host": victim,
            "cut_tries": tries,
            "sets_held_when_cut": len(held),
            "held": held,
            "proxy_reachable_while_cut": reachable_while_cut,
            "finished_elsewhere_while_cut": finished,
            "finished_elsewhere_after_s": round(finished_at - cut_at, 2) if finished else None,
            "cut_s": round(restored_at - cut_at, 2),
        }

    def restart_storage(self) -> dict[str, Any]:
        cluster = self.cluster
        export = ExportRun(cluster, cluster.web["web2"].address, WEB_PORT)
        wait_until(lambda: export.under_way() or not export.thread.is_alive(), 120, "the export on web2")
        interrupted = export.thread.is_alive()
        before = self.bucket_keys()
        stopped_at = time.perf_counter()
        storage = cluster.processes["storage"]
        # It drains its requests for at most 5 s and exits (bench/object_store.py); it is started again only once
        # it has, however long that takes under load. Its journal keeps what it acknowledged even if it were killed.
        code = storage.stop(signal.SIGTERM, timeout_s=STORAGE_STOP_S)
        gone_at = time.perf_counter()
        said = re.findall(r"stopped \((\d+) objects kept, (\d+) requests dropped", storage.output())
        cluster.start_storage()
        ready_at = self.storage_ready_at = time.perf_counter()
        loaded = re.findall(r"\((\d+) objects loaded\)", cluster.processes["storage"].output())
        after = self.bucket_keys()
        return {
            "stop_exit_code": code,
            "stopped_after_s": round(gone_at - stopped_at, 2),
            "requests_dropped_at_the_stop": int(said[-1][1]) if said else None,
            "down_s": round(ready_at - stopped_at, 2),
            "objects_before_the_stop": len(before),
            "objects_kept_across_the_restart": int(loaded[-1]) if loaded else None,
            "objects_lost_across_the_restart": len(before - after),
            "export": {"interrupted": interrupted, **export.finish()},
        }

    # -- the run --

    def phase(self, name: str, action: Callable[[], dict[str, Any]] | None, settle_s: float) -> None:
        window = Window(name, time.perf_counter())
        self.windows.append(window)
        if action is not None:
            window.facts = action()
        time.sleep(settle_s)
        # Overloaded (others' load of 10-15 on 2 cores), a few seconds can pass without one answered vote: the
        # window waits for one, at most a minute, so that every phase shows whether service went on.
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: self.voted_since(window.start), 60, f"a vote in {name}")
        window.end = time.perf_counter()

    def voted_since(self, start: float) -> bool:
        return any(t >= start for p in self.participants for t in list(p.tally.acknowledged_at))

    def run(self) -> dict[str, Any]:
        cluster, options = self.cluster, self.options
        gate = threading.Thread(target=self.watch_gate, daemon=True)
        gate.start()
        watchers = [
            Watcher(host, cluster.web[host].address, cluster.public, campaign)
            for host in cluster.web
            for campaign in [CAMPAIGN] * options.watchers + [PROBE]
        ]
        threads = [threading.Thread(target=w.run, daemon=True) for w in watchers]
        for thread in threads:
            thread.start()
        wait_until(lambda: all(w.pushes for w in watchers), 60, "every watcher's first board")
        participants = self.participants = [
            ProxyParticipant(
                cluster.public,
                deadline=time.perf_counter() + 3600,
                think_ms=options.think_ms,
                seed=i,
                retry_s=60,
                path="vote+next",
            )
            for i in range(options.participants)
        ]
        prober = Prober(cluster.public, every_s=options.probe_every_s, seed=10_000, retry_s=60)
        launched = time.perf_counter()
        for participant in [*participants, prober]:
            participant.start()
        # The clock starts at the first answered vote: the first requests meet servers and workers still warming.
        wait_until(lambda: any(p.tally.acknowledged for p in participants), 180, "a participant's first vote")
        started = time.perf_counter()
        self.warm_up_s = started - launched
        try:
            self.phase("steady", None, options.steady_s)
            self.phase("web host killed", lambda: self.kill_web("web1"), options.settle_s)
            self.phase("worker host cut off", lambda: self.cut_worker("worker1"), options.settle_s)
            self.wait_for_web_host()
            self.phase("storage restarted", self.restart_storage, options.settle_s)
        finally:
            ended = time.perf_counter()
            for participant in participants:
                participant.deadline = ended
            prober.stop.set()
            for participant in [*participants, prober]:
                participant.join(timeout=120)
        tally = merge([*participants, prober])
        final = self.final_board(CAMPAIGN)
        caught: dict[str, list[float | None]] = {}
        finals = {CAMPAIGN: final, PROBE: self.final_board(PROBE)}
        for watcher in watchers:
            limit = time.perf_counter() + options.lag_limit_s
            while watcher.holds(finals[watcher.campaign]) is None and time.perf_counter() < limit:
                time.sleep(0.05)
            if watcher.campaign == CAMPAIGN:
                caught.setdefault(watcher.host, []).append(watcher.holds(final))
        last_vote = max(tally.acknowledged_at, default=ended)
        for watcher in watchers:
            watcher.stop.set()
        for thread in threads:
            thread.join(timeout=10)
        self.stop_watching.set()
        for name in sorted(cluster.workers):
            cluster.processes[name].stop(signal.SIGTERM, timeout_s=60)
        return self.report(participants, prober, watchers, tally, started, ended, final, caught, last_vote)

    def final_board(self, campaign: str) -> int:
        rows = self.query(
            "SELECT COUNT(*) FROM arena_vote v JOIN annotation_criterion c ON c.id = v.criterion_id "
            "JOIN annotation_campaign a ON a.id = c.campaign_id WHERE c.key = ? AND a.slug = ?",
            [CRITERION, campaign],
        )
        return int(rows[0][0])

    # -- the report --

    def push_latencies(self, prober: Prober, watchers: list[Watcher], log: list[ProxyLine]) -> dict[str, Any]:
        """Each probe vote: the time from its answer to the first push counting it, per watcher of the probe board."""
        served = {}
        for line in log:
            if line.method == "POST" and line.uri.endswith("/votes") and line.status == 200:
                served[line.uri.split("/")[4]] = line.upstream
        rank = {
            str(token): n + 1
            for n, (token,) in enumerate(
                self.query(
                    "SELECT c.token FROM arena_vote v JOIN arena_comparison c ON c.id = v.comparison_id "
                    "JOIN annotation_criterion k ON k.id = v.criterion_id JOIN annotation_campaign a "
                    "ON a.id = c.campaign_id WHERE a.slug = ? AND k.key = ? ORDER BY v.id",
                    [PROBE, CRITERION],
                )
            )
        }
        address = {name: host.address for name, host in self.cluster.web.items()}
        host_of = {a: name for name, a in address.items()}
        across: list[float] = []
        same: list[float] = []
        reconnected: list[float] = []  # the watcher's host was down when the vote was answered
        never = 0
        by_window: dict[str, list[float]] = {}
        for token, answered in prober.voted:
            if token not in rank or token not in served:
                continue
            window = self.window_at(answered)
            for watcher in watchers:
                if watcher.campaign != PROBE:
                    continue
                at = watcher.holds(rank[token])
                if at is None:
                    never += 1
                    continue
                latency = max(0.0, at - answered)
                # The socket was closed when the vote was answered, or its host died before pushing it.
                if not watcher.connected_at(answered) or any(answered < d < at for d in watcher.drops):
                    reconnected.append(latency)
                elif served[token] == address[watcher.host]:
                    same.append(latency)
                else:
                    across.append(latency)
                    by_window.setdefault(window, []).append(latency)

        def summary(values: list[float]) -> dict[str, Any]:
            if not values:
                return {"n": 0}
            return {
                "n": len(values),
                "p50_s": round(percentile(values, 0.5), 3),
                "p99_s": round(percentile(values, 0.99), 3),
                "max_s": round(max(values), 3),
            }

        return {
            "across_hosts": summary(across),
            "same_host": summary(same),
            "across_hosts_by_phase": {name: summary(values) for name, values in by_window.items()},
            "pushed_once_the_watchers_host_was_back": summary(reconnected),
            "probe_votes_never_pushed_to_a_watcher": never,
            "probe_votes_by_host": dict(Counter(host_of.get(served.get(t, ""), "?") for t, _ in prober.voted)),
        }

    def window_at(self, t: float) -> str:
        for window in self.windows:
            if window.start <= t <= (window.end or t):
                return window.name
        return "after"

    def service(self, participants: list[ProxyParticipant], window: Window) -> dict[str, Any]:
        """What participants saw in a window: proxy errors, the longest wait, the longest time nothing was answered."""
        answered = sorted(
            end
            for p in participants
            for start, end, status in p.requests
            if status == 200 and window.start <= end and end <= window.end
        )
        gaps = [b - a for a, b in zip([window.start, *answered], [*answered, window.end], strict=True)]
        waits = [
            end - start for p in participants for start, end, _ in p.requests if window.start <= start <= window.end
        ]
        images = [status for p in participants for _, t, status in p.images if window.start <= t <= window.end]
        duration = window.end - window.start
        acknowledged = [t for p in participants for t in p.tally.acknowledged_at if window.start <= t <= window.end]
        return {
            "seconds": round(duration, 1),
            "comparisons_per_s": round(len(acknowledged) / duration, 1) if duration else None,
            "proxy_gateway_errors": sum(
                1 for p in participants for t in p.gateway_errors if window.start <= t <= window.end
            ),
            "longest_time_without_an_answer_s": round(max(gaps), 2) if gaps else None,
            "longest_request_s": round(max(waits), 2) if waits else None,
            "server_errors": sum(
                1
                for p in participants
                for start, _, status in p.requests
                if status >= 500 and window.start <= start <= window.end
            ),
            "images_fetched": len(images),
            "image_errors": sum(1 for s in images if s != 200),
            # 0: no answer; -1: a 200 that was not a PNG
            "image_error_statuses": dict(Counter(s for s in images if s != 200)),
        }

    def integrity_by_window(self, tally: Tally) -> dict[str, dict[str, int]]:
        stored = {
            str(t): n
            for t, n in self.query(
                "SELECT c.token, COUNT(v.id) FROM arena_comparison c LEFT JOIN arena_vote v ON v.comparison_id = c.id "
                "GROUP BY c.token"
            )
        }
        out: dict[str, dict[str, int]] = {}
        counts = Counter(tally.acknowledged)
        for token, at in zip(tally.acknowledged, tally.acknowledged_at, strict=True):
            row = out.setdefault(self.window_at(at), {"acknowledged": 0, "lost": 0, "duplicated": 0})
            row["acknowledged"] += 1
            row["lost"] += stored.get(token, 0) < CRITERIA
            row["duplicated"] += (counts[token] > 1) + (stored.get(token, 0) > CRITERIA)
        return out

    def storage_check(self) -> dict[str, Any]:
        names = {str(name) for (name,) in self.query("SELECT DISTINCT file FROM generation_image")}
        present = self.bucket_keys()
        location = env_file("common.env").get("AWS_LOCATION", "")
        keys = {f"{location}/{n}".lstrip("/") for n in names}
        return {"image_files": len(keys), "missing_from_bucket": len(keys - present), "objects": len(present)}

    def generation_check(self, cut: dict[str, Any]) -> dict[str, Any]:
        by_status = dict(self.query("SELECT status, COUNT(*) FROM generation_population GROUP BY status"))
        wrong = self.query(
            "SELECT p.id FROM generation_population p LEFT JOIN generation_image i ON i.population_id = p.id "
            "WHERE p.status = 'ready' GROUP BY p.id, p.size HAVING COUNT(i.id) <> p.size"
        )
        made = self.query("SELECT COUNT(*) FROM generation_population WHERE generation_ms IS NOT NULL")[0][0]
        held = cut.get("held", [])
        marks = ",".join("?" * len(held)) or "NULL"
        outcome = dict(
            self.query(
                f"SELECT status, COUNT(*) FROM generation_population WHERE id IN ({marks}) GROUP BY status", held
            )
        )  # noqa: S608
        log = self.cluster.processes["worker1"].log_path.read_bytes()
        reclaimed = b"was reclaimed by another worker"
        return {
            "populations": {str(k): int(v) for k, v in by_status.items()},
            "made_by_workers": int(made),
            "ready_without_all_images": len(wrong),
            "cut_workers_sets_now": {str(k): int(v) for k, v in outcome.items()},
            # Its sets taken over while it was cut off, and under load before (a 5 s lease is short when busy).
            "cut_worker_uploads_refused_after_restore": log[self.worker_log_mark :].count(reclaimed),
            "cut_worker_uploads_refused_before": log[: self.worker_log_mark].count(reclaimed),
        }

    def report(
        self,
        participants: list[ProxyParticipant],
        prober: Prober,
        watchers: list[Watcher],
        tally: Tally,
        started: float,
        ended: float,
        final: int,
        caught: dict[str, list[float | None]],
        last_vote: float,
    ) -> dict[str, Any]:
        cluster = self.cluster
        elapsed = ended - started
        log = proxy_log(cluster.nginx_dir)
        by_host = Counter(line.upstream for line in log if line.uri.startswith("/api/"))
        names = {h.address: name for name, h in cluster.web.items()}
        facts = {w.name: w.facts for w in self.windows}
        after_restart = [status for p in participants for t, _, status in p.images if t > self.storage_ready_at]
        facts.get("storage restarted", {}).update(
            images_fetched_after_it_was_back=len(after_restart),
            image_errors_after_it_was_back=sum(1 for status in after_restart if status != 200),
        )
        cut = facts.get("worker host cut off", {})
        final_export = ExportRun(cluster, cluster.proxy.address, PUBLIC_PORT).finish()
        web = facts.get("web host killed", {})
        victim = cluster.web.get(web.get("host", ""))
        web["requests_it_answered_after_its_restart"] = sum(
            1 for line in log if victim and line.upstream == victim.address and line.at > self.web_back_at_wall
        )
        integrity = vote_integrity(self.site, tally)
        server_all = tally.issue_server_ms + tally.vote_server_ms
        pushes = self.push_latencies(prober, watchers, log)
        return {
            "code": revision_of(ROOT),
            "hosts": {name: host.address for name, host in cluster.net.hosts.items()},
            "participants": self.options.participants,
            "duration_s": round(elapsed, 1),
            "warm_up_before_the_clock_s": round(self.warm_up_s, 1),
            "comparisons_voted": len(tally.acknowledged),
            "criterion_votes_per_s_through_the_proxy": round(CRITERIA * len(tally.acknowledged) / elapsed, 1),
            "server_ms_p50_p99": p50_p99(server_all),
            "client_ms_p50_p99": p50_p99(tally.issue_ms + tally.vote_ms),
            # "poparena_web": nginx found no server to try (every one marked down or failed), and answered 502.
            "api_requests_by_web_host": {names.get(k, k or "none"): v for k, v in by_host.items()},
            "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
            "votes": integrity,
            "votes_by_phase": self.integrity_by_window(tally),
            "phases": {w.name: {"service": self.service(participants, w), **w.facts} for w in self.windows},
            "push_latency": pushes,
            "final_board": {
                "votes": final,
                "watchers_holding_it": {h: sum(1 for t in ts if t is not None) for h, ts in caught.items()},
                "watchers": {h: len(ts) for h, ts in caught.items()},
                "lag_after_last_vote_s": {
                    h: round(max((t - last_vote for t in ts if t is not None), default=0.0), 2)
                    for h, ts in caught.items()
                },
                "socket_drops": {h: sum(len(w.drops) for w in watchers if w.host == h) for h in cluster.web},
            },
            "generation": self.generation_check(cut),
            "storage": self.storage_check(),
            "final_export": final_export,
            "errors": tally.errors[:5] + tally.server_errors[:5],
        }


def verdict(report: dict[str, Any]) -> dict[str, bool]:
    """The issue's targets and the rehearsal's own checks, each true or false."""
    votes = report["votes"]
    phases = report["phases"]
    web, cut, storage = phases["web host killed"], phases["worker host cut off"], phases["storage restarted"]
    board = report["final_board"]
    return {
        "no_vote_lost": votes["lost"] == 0,
        "no_vote_duplicated": votes["duplicated"] == 0 and votes["half_voted"] == 0,
        "every_unacknowledged_vote_explained": votes["unexplained_stored"] == 0,
        "no_server_error_answered": votes["server_5xx"] == 0 and not report["errors"],
        "votes_in_every_phase": all(p["service"]["comparisons_per_s"] for p in phases.values()),
        "both_web_hosts_served": all(report["api_requests_by_web_host"].get(h, 0) > 0 for h in ("web1", "web2")),
        "pushes_crossed_hosts": report["push_latency"]["across_hosts"]["n"] > 0,
        "every_probe_vote_pushed": report["push_latency"]["probe_votes_never_pushed_to_a_watcher"] == 0,
        "final_board_on_every_watcher": board["watchers_holding_it"] == board["watchers"],
        # Taken out of nginx's list or not (the gate keeps every server in when none passes, under overload),
        # the proxy must send it requests again once it is back.
        "killed_web_host_served_again_through_the_proxy": web["requests_it_answered_after_its_restart"] > 0,
        "export_during_web_kill_whole_or_absent": web["export"]["state"] in ("whole", "absent"),
        "cut_worker_held_sets": cut["sets_held_when_cut"] > 0,
        "cut_worker_could_not_reach_the_proxy": not cut["proxy_reachable_while_cut"],
        "cut_workers_sets_finished_elsewhere": cut["finished_elsewhere_while_cut"],
        "no_half_written_set": report["generation"]["ready_without_all_images"] == 0
        and report["generation"]["populations"].get("generating", 0) == 0,
        "export_during_storage_restart_whole_or_absent": storage["export"]["state"] in ("whole", "absent"),
        "every_image_in_the_bucket": report["storage"]["missing_from_bucket"] == 0,
        "storage_restart_lost_no_object": storage["objects_lost_across_the_restart"] == 0,
        "images_served_after_the_restart": storage["images_fetched_after_it_was_back"] > 0
        and storage["image_errors_after_it_was_back"] == 0,
        "exports_interrupted_left_only_whole_folders": web["export"]["new_folders_whole"]
        and storage["export"]["new_folders_whole"],
        "export_after_the_faults_whole": report["final_export"]["state"] == "whole",
        "worker_reaches_only_the_proxy": report["isolation"]["worker_reaches"]
        == {"proxy": True, "db": False, "redis": False, "storage": False, "web1": False},
        "nothing_left_behind": not report["cleanup"]["namespaces_and_links_left"]
        and not report["cleanup"]["processes_left"],
    }


def rehearse(options: Options) -> dict[str, Any]:
    """Build the hosts, run the rehearsal, take everything down; the report with its checks."""
    reason = unavailable()
    if reason:
        raise RuntimeError(reason)
    if not shutil.which("nginx") and not Path("/usr/sbin/nginx").exists():
        raise RuntimeError("Debian's nginx is not installed (apt-get install nginx-light)")
    folder = Path(tempfile.mkdtemp(prefix="poparena-cluster-"))
    folder.chmod(0o755)  # the postgres user reaches its data folder inside
    cluster = Cluster(folder, options)
    report: dict[str, Any] = {}
    timings: dict[str, float] = {}
    failed = True
    try:
        began = time.perf_counter()
        cluster.start_database()
        cluster.start_redis()
        cluster.start_storage()
        cluster.s3().create_bucket(Bucket=BUCKET)
        cluster.create_database()
        # The web servers boot while the database is migrated (their health check answers 503 until it is),
        # and the workers once their tokens exist.
        for name in cluster.web:
            cluster.start_web(name)
        cluster.start_proxy()
        cluster.prepare_database()
        timings["database_ready_s"] = time.perf_counter() - began
        for name in cluster.workers:
            cluster.start_worker(name)
        for name in cluster.web:
            wait_until(lambda n=name: cluster.web_answers(n), 120, f"{name}'s web server")  # type: ignore[misc]
        wait_until(lambda: not cluster.upstreams_down(), 30, "both web servers in nginx's list")
        isolation = {
            "worker_reaches": {
                "proxy": cluster.reachable_from(cluster.workers["worker1"], cluster.proxy.address, PUBLIC_PORT),
                "db": cluster.reachable_from(cluster.workers["worker1"], cluster.db.address, PG_PORT),
                "redis": cluster.reachable_from(cluster.workers["worker1"], cluster.redis.address, REDIS_PORT),
                "storage": cluster.reachable_from(cluster.workers["worker1"], cluster.storage.address, S3_PORT),
                "web1": cluster.reachable_from(cluster.workers["worker1"], cluster.web["web1"].address, WEB_PORT),
            }
        }
        rehearsal = Rehearsal(cluster, options)
        # Voting starts while the workers still import torch: the worker fault waits for a claim of theirs.
        timings["hosts_ready_s"] = time.perf_counter() - began
        report = rehearsal.run()
        report["isolation"] = isolation
        failed = False
    finally:
        logs = {
            name: p.output(3000)
            for name, p in cluster.processes.items()
            if name.startswith(("web", "worker", "storage"))
        }
        report["web_server_exceptions"] = {
            name: exceptions(cluster.processes[name].log_path) for name in cluster.web if name in cluster.processes
        }
        report["cleanup"] = cluster.close()
        report["startup"] = {k: round(v, 1) for k, v in timings.items()}
        report["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
        report["options"] = asdict(options)
        if failed or not all(verdict_safe(report).values()):
            report["logs"] = logs
        if failed:
            print("\n\n".join(f"== {name}\n{text}" for name, text in logs.items()), file=sys.stderr)
        shutil.rmtree(folder, ignore_errors=True)
    report["checks"] = verdict(report)
    return report


def exceptions(log: Path) -> dict[str, int]:
    """The exceptions a server's log ends tracebacks with, and how often (what answered 500, or broke a socket)."""
    text = log.read_text(errors="replace") if log.exists() else ""
    found = re.findall(r"^((?:[a-z_]+\.)*[A-Z]\w*(?:Error|Exception|Exit)\b.*)$", text, flags=re.MULTILINE)
    return dict(Counter(line[:160] for line in found).most_common(10))


def verdict_safe(report: dict[str, Any]) -> dict[str, bool]:
    try:
        return verdict(report)
    except (KeyError, TypeError):
        return {"complete": False}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Options()
    parser.add_argument("--short", action="store_true", help="the CI test's version: a few seconds per phase")
    for name in ("participants", "think_ms", "steady_s", "web_down_s", "settle_s", "lease_s", "watchers"):
        value = getattr(defaults, name)
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=None, help=f"default {value}")
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args()
    options = Options.short() if args.short else Options()
    for name in ("participants", "think_ms", "steady_s", "web_down_s", "settle_s", "lease_s", "watchers"):
        if getattr(args, name) is not None:
            setattr(options, name, getattr(args, name))
    if options.participants < 1 or options.lease_s < 5 or options.steady_s <= 0:
        parser.error("--participants must be at least 1, --lease-s at least 5 (the API's minimum), --steady-s > 0")
    # SIGTERM ends the run like Ctrl-C: the finally blocks take every host down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        report = rehearse(options)
    except RuntimeError as error:
        print(f"cluster: {error}", file=sys.stderr)
        sys.exit(2)
    text = json.dumps(report, indent=1, default=str)
    print(text)
    if args.out:
        args.out.write_text(text)
    if not all(report["checks"].values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
