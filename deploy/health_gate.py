"""The proxy's active health checks: poll each web server's /api/v1/health, write nginx's server list, reload on change.

Debian's nginx checks its upstreams only passively (a refused connection, a 502/503 marks a server failed for
`fail_timeout`), so a web server whose database or channel layer is gone would still be sent every request that
it answers with an error. This loop asks each web server directly for GET /api/v1/health (200 only when the
database answers, is migrated and the channel layer carries a message) and keeps nginx's list of servers in step:
a server is marked `down` after FALLS failed checks in a row and taken back after RISES good ones, but only
while another server is in the list and passed its latest check: when none is, none is marked down (nginx then
tries them all, skips those that refuse, and answers 502 only if all refuse). Without that rule a web server
that is alive but slow to answer its check under load was taken out while the one still listed had just died
(its second failed check not yet in), and nginx had no server left (bench/cluster.py's rehearsal showed it).

Standard library only: the proxy host needs Python 3 and this file, nothing of PopArena's code. Run by
deploy/systemd/poparena-health-gate.service; `--once` checks once and exits (a cron job, or a test).
"""

from __future__ import annotations

import argparse
import http.client
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

HEALTH_PATH = "/api/v1/health"
FALLS = 2
RISES = 2
# nginx's own passive check, kept beside the active one.
PASSIVE = "max_fails=2 fail_timeout=10s"


@dataclass
class ServerState:
    address: str
    up: bool = True
    streak: int = 0  # checks in a row that disagree with `up`
    passing: bool = True  # the latest check's result


def parse_servers(text: str) -> list[str]:
    """HOST:PORT per line; blank lines and # comments are skipped. ValueError naming a bad line."""
    servers: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        host, _, port = line.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536 or any(c.isspace() or c == ";" for c in line):
            raise ValueError(f"line {number}: {raw.strip()!r} is not HOST:PORT")
        if line in servers:
            raise ValueError(f"line {number}: {line} is listed twice")
        servers.append(line)
    if not servers:
        raise ValueError("no web server is listed")
    return servers


def observe(state: ServerState, healthy: bool, *, falls: int = FALLS, rises: int = RISES) -> None:
    """One check's result: flip the server after `falls` failures (or `rises` successes) in a row."""
    state.passing = healthy
    if healthy == state.up:
        state.streak = 0
        return
    state.streak += 1
    if state.streak >= (rises if healthy else falls):
        state.up = healthy
        state.streak = 0


def render(states: Sequence[ServerState]) -> str:
    """The `server` lines nginx includes in `upstream poparena_web`; none down unless another one is serving."""
    # "Serving": listed (up) and it passed its latest check. Marking servers down leaves nginx only the others.
    serving = any(state.up and state.passing for state in states)
    lines = ["# Written by deploy/health_gate.py; edit the list of web servers, not this file."]
    for state in states:
        down = " down" if not state.up and serving else ""
        lines.append(f"server {state.address} {PASSIVE}{down};")
    return "\n".join(lines) + "\n"


def check_health(address: str, *, host: str, timeout_s: float) -> bool:
    """Whether the web server at HOST:PORT answers GET /api/v1/health with 200 (Host: the public name)."""
    name, _, port = address.rpartition(":")
    connection = http.client.HTTPConnection(name.strip("[]"), int(port), timeout=timeout_s)
    try:
        connection.request("GET", HEALTH_PATH, headers={"Host": host, "User-Agent": "poparena-health-gate"})
        response = connection.getresponse()
        response.read()
        return response.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def write_if_changed(path: str, text: str) -> bool:
    """Replace the file atomically when its text changes; whether it did."""
    try:
        with open(path, encoding="utf-8") as handle:
            if handle.read() == text:
                return False
    except FileNotFoundError:
        pass
    folder = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix=".poparena-upstreams.", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)
    return True


def run_round(
    states: Sequence[ServerState], probe: Callable[[str], bool], out: str, reload: Sequence[str] | None
) -> bool:
    """Check every server once, rewrite the list and reload nginx if it changed; whether it changed."""
    for state in states:
        observe(state, probe(state.address))
    changed = write_if_changed(out, render(states))
    if changed and reload:
        subprocess.run(reload, check=False)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--servers", required=True, help="file with one web server HOST:PORT a line")
    parser.add_argument("--out", required=True, help="the server list nginx includes")
    parser.add_argument(
        "--host", required=True, help="the public name sent as Host (in the web servers' ALLOWED_HOSTS)"
    )
    parser.add_argument("--every", type=float, default=2.0, help="seconds between rounds (default 2)")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds one check may take (default 3)")
    parser.add_argument("--reload", default="nginx -s reload", help="command that reloads nginx ('' for none)")
    parser.add_argument("--once", action="store_true", help="one round, then exit")
    options = parser.parse_args(argv)
    try:
        with open(options.servers, encoding="utf-8") as handle:
            servers = parse_servers(handle.read())
    except (OSError, ValueError) as error:
        print(f"health_gate: {options.servers}: {error}", file=sys.stderr)
        return 2
    states = [ServerState(address) for address in servers]
    reload = shlex.split(options.reload) or None

    def probe(address: str) -> bool:
        return check_health(address, host=options.host, timeout_s=options.timeout)

    # The first round takes the servers as they are now, without waiting for a streak.
    for state in states:
        state.up = probe(state.address)
    write_if_changed(options.out, render(states))
    if reload:
        subprocess.run(reload, check=False)
    while not options.once:
        time.sleep(options.every)
        run_round(states, probe, options.out, reload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
