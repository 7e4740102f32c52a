"""Run the real ASGI server (daphne, or uvicorn with workers) in a subprocess, for end-to-end tests and benches.

Tests start their servers and workers with `site_env`, which follows the run's DATABASE_URL and REDIS_URL
(a scratch database each; `migrated=True` clones one migrated once per test process instead of migrating
again); benches build their own sites on `server_env` (bench/loadkit.py).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def server_env(var_dir: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    # Scripted clients vote at once; the dwell floor has its own tests.
    env.update(POPARENA_VAR_DIR=str(var_dir), HF_HUB_OFFLINE="1", VOTE_MIN_DWELL_MS="0")
    env.update(overrides)
    return env


def site_env(var_dir: Path, *, migrated: bool = False, **overrides: str) -> dict[str, str]:
    """`server_env` for a test's own servers and workers, on the test run's backends.

    Under DATABASE_URL (PostgreSQL) a scratch database of its own, dropped when the test run ends; under
    REDIS_URL the cache and channel layer on that Redis under prefixes of their own. Without them, the
    SQLite file in `var_dir` and the in-memory layer, as `server_env` gives. `migrated`: the database starts
    as a copy of one this process migrated once (PostgreSQL's CREATE DATABASE ... TEMPLATE, or a copy of the
    SQLite file), so the caller skips `migrate`, the slowest part of a site's set-up.
    """
    extra: dict[str, str] = {}
    database = os.environ.get("DATABASE_URL", "")
    name = f"poparena_site_{uuid.uuid4().hex[:12]}"
    if database:
        server = _maintenance_url(database)
        _create_database(server, name, template=_migrated_template(database) if migrated else None)
        atexit.register(_drop_database, server, name)
        extra["DATABASE_URL"] = _database_url(database, name)
    elif migrated:
        var_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_migrated_template(""), var_dir / "db.sqlite3")
    redis = os.environ.get("REDIS_URL", "")
    if redis:
        extra.update(REDIS_URL=redis, CACHE_PREFIX=name, CHANNEL_PREFIX=name)
    return server_env(var_dir, **{**extra, **overrides})


def _maintenance_url(database: str) -> str:
    parts = urllib.parse.urlsplit(database)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/postgres", "", ""))


def _database_url(database: str, name: str) -> str:
    parts = urllib.parse.urlsplit(database)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))


# DATABASE_URL ("" for SQLite) -> the database (PostgreSQL) or file (SQLite) migrated once in this process.
_TEMPLATES: dict[str, str] = {}


def _migrated_template(database: str) -> str:
    """A database migrated once per test process (each xdist worker its own), for `site_env` to copy."""
    if database not in _TEMPLATES:
        folder = Path(tempfile.mkdtemp(prefix="poparena-template-"))
        atexit.register(shutil.rmtree, folder, True)
        if database:
            name = f"poparena_template_{uuid.uuid4().hex[:12]}"
            server = _maintenance_url(database)
            _create_database(server, name)
            atexit.register(_drop_database, server, name)
            manage(server_env(folder, DATABASE_URL=_database_url(database, name)), "migrate", "--noinput")
            _TEMPLATES[database] = name
        else:
            manage(server_env(folder), "migrate", "--noinput")
            _TEMPLATES[database] = str(folder / "db.sqlite3")
    return _TEMPLATES[database]


def _create_database(server: str, name: str, template: str | None = None) -> None:
    import psycopg

    statement = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(statement)  # type: ignore[arg-type]


def _drop_database(server: str, name: str) -> None:
    import psycopg

    with contextlib.suppress(psycopg.Error), psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def site_query(env: dict[str, str], sql: str, *params: object) -> list[tuple[Any, ...]]:
    """One read-only query on the database `env` names (its PostgreSQL database, or the SQLite file); `?`
    placeholders on both."""
    if env.get("DATABASE_URL"):
        import psycopg

        with psycopg.connect(env["DATABASE_URL"]) as db:
            return list(db.execute(sql.replace("?", "%s"), list(params)).fetchall())  # type: ignore[arg-type]
    with sqlite3.connect(Path(env["POPARENA_VAR_DIR"]) / "db.sqlite3", timeout=30) as db:
        return list(db.execute(sql, params).fetchall())


def manage(env: dict[str, str], *args: str, timeout: int = 600, cwd: Path = ROOT) -> str:
    """manage.py of this checkout, or of another copy of the code (`cwd`: bench/loadkit.py's A/B)."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return result.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_command(server: str, port: int, workers: int = 1, tls: tuple[Path, Path] | None = None) -> list[str]:
    """The command line that serves config.asgi on 127.0.0.1:port with daphne or uvicorn.

    `tls` (certificate file, key file) serves HTTPS instead, with uvicorn only.
    """
    if server == "daphne":
        if workers != 1:
            raise ValueError("daphne runs one process; use uvicorn for several workers")
        if tls is not None:
            raise ValueError("serve HTTPS with uvicorn")
        return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"]
    if server == "uvicorn":
        https = [] if tls is None else ["--ssl-certfile", str(tls[0]), "--ssl-keyfile", str(tls[1])]
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-level",
            "warning",
            *https,
            "config.asgi:application",
        ]
    raise ValueError(f"unknown server {server!r} (daphne or uvicorn)")


# Base URL -> the server process behind it, for tests that kill a server on purpose.
RUNNING: dict[str, subprocess.Popen[bytes]] = {}


@contextmanager
def asgi_server(
    env: dict[str, str], server_name: str = "daphne", workers: int = 1, tls: tuple[Path, Path] | None = None
) -> Iterator[str]:
    """Start the ASGI server on a free port; yield its base URL once it answers; stop it afterwards.

    The server's log goes to a file, not a pipe: a pipe nobody reads fills up with tracebacks and
    then blocks the server mid-request. `tls` (certificate, key) serves HTTPS (uvicorn).
    """
    port = free_port()
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(
            server_command(server_name, port, workers, tls), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log
        )
        base = f"{'http' if tls is None else 'https'}://127.0.0.1:{port}"
        # A test's own self-signed certificate: the poll asks whether the server answers, not who it is.
        unverified = None if tls is None else ssl._create_unverified_context()  # noqa: S323
        deadline = time.monotonic() + 60
        while True:
            try:
                # Any HTTP answer, even an error page, means the server is up.
                urllib.request.urlopen(base + "/api/v1/campaigns/", timeout=5, context=unverified)  # noqa: S310
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    server.kill()
                    server.wait()
                    log.seek(0)
                    raise RuntimeError(f"server did not start: {log.read().decode()[-2000:]}") from None
                time.sleep(0.3)
        RUNNING[base] = server
        try:
            yield base
        finally:
            RUNNING.pop(base, None)
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


class WatchedProcess:
    """A child process whose output (stdout with stderr, as text) is read line by line on a thread, with waits
    that fail, showing that output, if the process dies or the deadline passes first."""

    def __init__(self, process: subprocess.Popen[str], timeout_s: float) -> None:
        self.process = process
        self.lines: list[str] = []
        self.deadline = time.monotonic() + timeout_s
        self._reader = threading.Thread(target=lambda: self.lines.extend(process.stdout or ()), daemon=True)
        self._reader.start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, condition: Callable[[], bool], what: str, poll_s: float = 0.1) -> None:
        while not condition():
            assert self.process.poll() is None, self.output
            assert time.monotonic() < self.deadline, f"{what}: {self.output}"
            time.sleep(poll_s)

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def finish(self, timeout_s: float) -> int:
        """Wait for the process to exit by itself; its exit code, with all its output read."""
        code = self.process.wait(timeout=timeout_s)
        self._reader.join(timeout=10)
        return code

    def stop(self) -> str:
        """SIGTERM, then its whole output once it has exited."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)
        self._reader.join(timeout=10)
        return self.output
