"""deploy/: the proxy's health checks flip a web server out of and back into nginx's list, nginx accepts the
configuration (when Debian's nginx is installed), and every unit's variables come from the env files beside it."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from deploy import health_gate
from deploy.health_gate import ServerState, observe, parse_servers, render

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
PUBLIC = "arena.example.org"


def test_the_server_list_is_host_port_lines_and_anything_else_is_named():
    text = "# web hosts\n10.0.0.11:8000\n\n10.0.0.12:8000  # second\n[::1]:8001\n"
    assert parse_servers(text) == ["10.0.0.11:8000", "10.0.0.12:8000", "[::1]:8001"]
    for bad, why in [
        ("10.0.0.11\n", "line 1: '10.0.0.11' is not HOST:PORT"),
        ("a:1\nb:99999\n", "line 2: 'b:99999' is not HOST:PORT"),
        ("a:1; evil\n", "is not HOST:PORT"),
        ("a:1\na:1\n", "line 2: a:1 is listed twice"),
        ("# nothing\n", "no web server is listed"),
    ]:
        with pytest.raises(ValueError, match=re.escape(why)):
            parse_servers(bad)


def test_a_server_goes_down_after_two_failed_checks_and_back_after_two_good_ones():
    states = [ServerState("a:8000"), ServerState("b:8000")]
    observe(states[0], False)
    assert "down" not in render(states), "one failed check is not enough"
    observe(states[0], False)
    assert render(states).splitlines()[1:] == [
        "server a:8000 max_fails=2 fail_timeout=10s down;",
        "server b:8000 max_fails=2 fail_timeout=10s;",
    ]
    observe(states[0], True)
    observe(states[0], False)  # a streak is broken by a check that agrees
    observe(states[0], True)
    assert "down" in render(states)
    observe(states[0], True)
    assert "down" not in render(states)


def test_when_every_server_fails_none_is_marked_down():
    states = [ServerState("a:8000", up=False), ServerState("b:8000", up=False)]
    assert "down" not in render(states)


def test_a_slow_server_is_not_taken_out_while_the_one_left_in_the_list_has_just_died():
    # Given a killed server a (one failed check so far: still listed) and a live but slow server b, whose
    # checks timed out twice under load
    a, b = ServerState("a:8000"), ServerState("b:8000")
    observe(b, False)
    observe(b, False)
    observe(a, False)
    # Then b stays in nginx's list: marking it down would leave nginx only the dead server (an outage).
    assert a.up
    assert not b.up
    assert "down" not in render([a, b])
    # Once a's second check fails too, both are failing: still none is marked down.
    observe(a, False)
    assert "down" not in render([a, b])
    # When b passes again while a stays dead, a is the one marked down, as soon as b is back in.
    observe(b, True)
    observe(b, True)
    assert render([a, b]).splitlines()[1:] == [
        "server a:8000 max_fails=2 fail_timeout=10s down;",
        "server b:8000 max_fails=2 fail_timeout=10s;",
    ]


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        ok = self.path == health_gate.HEALTH_PATH and self.headers["Host"] == PUBLIC
        self.send_response(200 if ok else 400)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def healthy_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def closed_port() -> str:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def test_one_round_marks_the_server_that_does_not_answer_down(healthy_server, tmp_path):
    dead = closed_port()
    servers = tmp_path / "web-servers"
    servers.write_text(f"{healthy_server}\n{dead}\n")
    out = tmp_path / "upstreams.conf"

    code = health_gate.main(["--servers", str(servers), "--out", str(out), "--host", PUBLIC, "--reload", "", "--once"])

    assert code == 0
    assert f"server {healthy_server} max_fails=2 fail_timeout=10s;" in out.read_text()
    assert f"server {dead} max_fails=2 fail_timeout=10s down;" in out.read_text()
    # The Host header matters: a server that refuses the public name (ALLOWED_HOSTS) is unhealthy.
    assert not health_gate.check_health(healthy_server, host="elsewhere.example", timeout_s=2)


def test_a_bad_server_list_stops_the_gate_with_its_reason(tmp_path, capsys):
    servers = tmp_path / "web-servers"
    servers.write_text("web-1\n")
    code = health_gate.main(["--servers", str(servers), "--out", str(tmp_path / "o"), "--host", PUBLIC, "--once"])
    assert code == 2
    assert "'web-1' is not HOST:PORT" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(
    shutil.which("nginx") is None, reason="Debian's nginx is not installed (apt-get install nginx-light)"
)
def test_nginx_accepts_the_proxy_configuration(tmp_path):
    upstreams = tmp_path / "poparena-upstreams.conf"
    upstreams.write_text(render([ServerState("10.0.0.11:8000"), ServerState("10.0.0.12:8000", up=False)]))
    site = (DEPLOY / "nginx" / "poparena.conf").read_text()
    assert "include /etc/nginx/poparena-upstreams.conf;" in site
    (tmp_path / "poparena.conf").write_text(site.replace("/etc/nginx/poparena-upstreams.conf", str(upstreams)))
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  include {tmp_path}/poparena.conf;\n}}\n"
    )
    result = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def env_file(name: str) -> dict[str, str]:
    pairs = {}
    for line in (DEPLOY / "env" / name).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key] = value
    return pairs


def test_every_unit_reads_env_files_that_exist_and_define_what_its_command_uses():
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    assert {u.name for u in units} >= {"poparena-web@.service", "poparena-worker@.service"}
    for unit in units:
        text = unit.read_text()
        files = re.findall(r"^EnvironmentFile=/etc/poparena/(\S+)$", text, flags=re.MULTILINE)
        assert files, f"{unit.name} reads no env file"
        defined: dict[str, str] = {}
        for name in files:
            defined |= env_file(name)
        used = set(re.findall(r"\$\{([A-Z_]+)\}", text))
        assert used <= set(defined), f"{unit.name} uses {sorted(used - set(defined))} that its env files lack"


# Variables the units, uvicorn or boto3 read rather than config/settings.py.
NOT_SETTINGS = {
    "WEB_BIND",
    "WEB_PROCESSES",
    "WORKER_MAX_BATCH",
    "WORKER_LEASE_SECONDS",
    "POPARENA_SERVER",
    "POPARENA_WORKER_TOKEN",
    "PUBLIC_HOST",
    "HF_HOME",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
}


def test_every_setting_in_the_env_templates_is_one_that_env_example_lists():
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), flags=re.MULTILINE))
    for template in sorted((DEPLOY / "env").glob("*.env")):
        unknown = set(env_file(template.name)) - listed - NOT_SETTINGS
        assert not unknown, f"{template.name}: {sorted(unknown)} are not PopArena settings (.env.example)"


def test_web_servers_behind_the_proxy_trust_exactly_one_forwarded_address():
    web = env_file("web.env")
    assert web["NUM_PROXIES"] == "1"
    assert web["SERVE_MEDIA"] == "false"
    common = env_file("common.env")
    assert common["DEBUG"] == "false"
    assert common["AWS_STORAGE_BUCKET_NAME"]
    assert {"DATABASE_URL", "REDIS_URL"} <= set(common)
    # A worker that reaches only the proxy holds no database, Redis or storage credentials.
    remote = env_file("remote-worker.env")
    assert not {"DATABASE_URL", "REDIS_URL", "AWS_SECRET_ACCESS_KEY", "SECRET_KEY"} & set(remote)
