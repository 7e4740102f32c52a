"""PopArena on several hosts (issue 34): the rehearsal of bench/cluster.py, short, and the pieces it is made of.

The slow test builds the hosts as network namespaces (two web hosts of two uvicorn processes behind deploy/'s
nginx and health gate, two remote workers that reach only the proxy, PostgreSQL, Redis, moto's S3 server),
lets scripted participants vote through the proxy while watchers hold leaderboard sockets on both web hosts,
kills a web host, cuts a worker off, restarts the storage server, and asserts what a participant, a
researcher and an operator would notice. It needs root and Debian's nginx, and is skipped, saying why, where
network namespaces cannot be made. The other tests check the parts on their own: the unit commands read from
deploy/, the storage server's restart, the exports' whole-or-absent check, the proxy log, the namespaces.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import netns  # noqa: E402
from bench.cluster import (  # noqa: E402
    Options,
    export_state,
    proxy_log,
    rehearse,
    unit_command,
    unit_env,
)

NAMESPACES = netns.unavailable()
NGINX = shutil.which("nginx") or (Path("/usr/sbin/nginx").exists() and "/usr/sbin/nginx")


# --- the units the rehearsal runs are deploy/'s -------------------------------------------------------------------


def test_the_web_unit_runs_uvicorn_with_the_env_files_processes_on_the_instance_port():
    env = unit_env("poparena-web@.service", {"PATH": "/bin"}, {"WEB_BIND": "198.18.0.3"})
    argv = unit_command("poparena-web@.service", "8000", env, {"/opt/poparena/.venv/bin/python": "python"})
    assert argv[:3] == ["python", "-m", "uvicorn"]
    # The instance is the port, WEB_PROCESSES (web.env: 2) the processes, WEB_BIND the address.
    assert argv[argv.index("--port") + 1] == "8000"
    assert argv[argv.index("--workers") + 1] == "2"
    assert argv[argv.index("--host") + 1] == "198.18.0.3"
    # common.env then web.env, in the unit's order: both files' settings are there.
    assert env["NUM_PROXIES"] == "1"
    assert env["AWS_STORAGE_BUCKET_NAME"] == "poparena-media"


def test_a_unit_whose_variable_no_env_file_defines_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"poparena-remote-worker@\.service uses \['WORKER_LEASE_SECONDS'\]"):
        unit_command("poparena-remote-worker@.service", "cpu", {"POPARENA_SERVER": "x", "WORKER_MAX_BATCH": "8"}, {})


def test_the_remote_worker_unit_takes_its_lease_from_the_env_file():
    env = unit_env("poparena-remote-worker@.service", {}, {"WORKER_LEASE_SECONDS": "5"})
    argv = unit_command("poparena-remote-worker@.service", "cuda:1", env, {})
    assert argv[argv.index("--lease-seconds") + 1] == "5"
    assert argv[argv.index("--device") + 1] == "cuda:1"
    assert "DATABASE_URL" not in env


# --- the storage server keeps what it stored across a restart --------------------------------------------------------


def start_store(journal: Path, port: int) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "object_store.py"), "--address", "127.0.0.1", "--port", str(port),
         "--journal", str(journal)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith(f"ready 127.0.0.1:{port}"), f"{line}{process.stderr.read() if process.stderr else ''}"
    return process


def s3_client(port: int) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1", aws_access_key_id="t",
        aws_secret_access_key="t", config=Config(retries={"max_attempts": 1}, max_pool_connections=20),
    )  # fmt: skip


def test_the_storage_server_restarted_answers_with_every_object_it_had_and_refuses_while_down(tmp_path):
    port = free_port()
    store = start_store(tmp_path / "s3.journal", port)
    client = s3_client(port)
    try:
        client.create_bucket(Bucket="media-test")
        bodies = {f"images/{i}.png": hashlib.sha256(str(i).encode()).digest() * (i + 1) for i in range(20)}
        for key, body in bodies.items():
            client.put_object(Bucket="media-test", Key=key, Body=body, ContentType="image/png")
        client.delete_object(Bucket="media-test", Key="images/3.png")
        del bodies["images/3.png"]
        # When it is stopped (SIGTERM) it refuses connections, and started again it has every object, no more.
        store.terminate()
        assert store.wait(timeout=30) == 0
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2)
        store = start_store(tmp_path / "s3.journal", port)
        listed = {item["Key"] for item in client.list_objects_v2(Bucket="media-test")["Contents"]}
        assert listed == set(bodies)
        for key, body in bodies.items():
            answer = client.get_object(Bucket="media-test", Key=key)
            assert answer["Body"].read() == body
            assert answer["ContentType"] == "image/png"
    finally:
        store.kill()
        store.wait()


def test_every_write_the_storage_server_acknowledged_survives_a_sigkill_amid_writes(tmp_path):
    # Given writers storing, overwriting and deleting objects on eight connections at once,
    port = free_port()
    store = start_store(tmp_path / "s3.journal", port)
    client = s3_client(port)
    client.create_bucket(Bucket="media-test")
    sent: dict[str, bytes] = {}  # every body ever sent, acknowledged or not
    acknowledged: dict[str, bytes | None] = {}  # the last acknowledged state of each key (None: deleted)
    lock = threading.Lock()
    killed = threading.Event()

    def write(writer: int) -> None:
        for n in range(1000):
            key = f"images/{writer}/{n % 40}.png"
            body = hashlib.sha256(f"{writer}-{n}".encode()).digest() * (1 + n % 50)
            if n % 7 != 6:
                with lock:
                    sent[key + f"@{n}"] = body
            try:
                if n % 7 == 6:
                    client.delete_object(Bucket="media-test", Key=key)
                    body_or_none: bytes | None = None
                else:
                    client.put_object(Bucket="media-test", Key=key, Body=body, ContentType="image/png")
                    body_or_none = body
            except Exception:  # the server was killed: this write was never acknowledged
                return
            with lock:
                if not killed.is_set():
                    acknowledged[key] = body_or_none

    writers = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for thread in writers:
        thread.start()
    try:
        # when the server is killed outright (no chance to save anything) in the middle of their writes,
        while len(acknowledged) < 150:
            time.sleep(0.01)
        with lock:
            killed.set()
            store.kill()
            store.wait()
            told = dict(acknowledged)
        for thread in writers:
            thread.join()
        # then started again it holds every object as its last acknowledged write left it,
        store = start_store(tmp_path / "s3.journal", port)
        listed = set()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket="media-test"):
            listed.update(item["Key"] for item in page.get("Contents", []))
        assert {k for k, body in told.items() if body is not None} <= listed
        for key, body in told.items():
            if body is None:
                continue
            answer = client.get_object(Bucket="media-test", Key=key)
            stored = answer["Body"].read()
            # (a write under way at the kill may have landed after the last acknowledged one: one of those bodies)
            assert stored == body or stored in {b for k, b in sent.items() if k.startswith(key + "@")}
            assert answer["ContentType"] == "image/png"
        # and no object is half written.
        for key in listed:
            stored = client.get_object(Bucket="media-test", Key=key)["Body"].read()
            assert stored in {b for k, b in sent.items() if k.startswith(key + "@")}
    finally:
        killed.set()
        store.kill()
        store.wait()


def test_a_journal_torn_by_a_kill_mid_record_loses_only_that_record_and_damage_before_its_end_is_refused(tmp_path):
    from bench.object_store import JournalError, encode, read_records

    whole = encode({"bucket": "b", "region": "us-east-1"}) + encode({"bucket": "b", "key": "k", "metadata": {}}, b"png")
    torn = encode({"bucket": "b", "key": "late", "metadata": {}}, b"0123456789")
    for cut in range(1, len(torn)):
        (tmp_path / "j").write_bytes(whole + torn[:cut])
        records, length = read_records(tmp_path / "j")
        assert [(h.get("key"), body) for h, body in records] == [(None, b""), ("k", b"png")]
        assert length == len(whole)
    # A record whose bytes do not match its checksum is not replayed.
    (tmp_path / "j").write_bytes(whole + torn[:-1] + b"X")
    assert len(read_records(tmp_path / "j")[0]) == 2
    # Damage with whole records after it is not a torn tail: the server refuses to start, naming the journal.
    (tmp_path / "j").write_bytes(whole + b"not json\n" + whole)
    with pytest.raises(JournalError, match=r"record at byte \d+ is not JSON, and records follow it"):
        read_records(tmp_path / "j")
    before = (tmp_path / "j").read_bytes()
    started = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "object_store.py"), "--address", "127.0.0.1", "--port",
         str(free_port()), "--journal", str(tmp_path / "j")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert started.returncode == 2
    assert "is not JSON, and records follow it" in started.stderr
    assert (tmp_path / "j").read_bytes() == before


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- exports: whole or absent -------------------------------------------------------------------------------------


def write_export(folder: Path, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True)
    entries = []
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        entries.append({"path": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)})
    (folder / "manifest.json").write_text(json.dumps({"files": entries}))


def test_an_export_is_whole_only_with_every_file_its_manifest_lists_and_nothing_else(tmp_path):
    assert export_state(tmp_path / "never-made") == "absent"
    write_export(tmp_path / "a", {"data.jsonl": b"{}\n", "images/ab.png": b"png"})
    assert export_state(tmp_path / "a") == "whole"
    (tmp_path / "a" / "images" / "ab.png").write_bytes(b"pnG")
    assert export_state(tmp_path / "a") == "broken: images/ab.png differs from the manifest"
    write_export(tmp_path / "b", {"data.jsonl": b"{}\n"})
    (tmp_path / "b" / "data.jsonl").unlink()
    assert export_state(tmp_path / "b") == "broken: data.jsonl is missing"
    write_export(tmp_path / "c", {"data.jsonl": b"{}\n"})
    (tmp_path / "c" / "stray.png").write_bytes(b"x")
    assert export_state(tmp_path / "c") == "broken: 1 files the manifest does not list"
    (tmp_path / "d").mkdir()
    assert export_state(tmp_path / "d") == "broken: no manifest.json"


def test_the_proxy_log_names_the_web_server_that_answered_last(tmp_path):
    (tmp_path / "access.log").write_text(
        "1.5|POST|/api/v1/comparisons/abc/votes|200|198.18.0.3:8000|0.010\n"
        "2.5|POST|/api/v1/comparisons/def/votes|200|198.18.0.3:8000, 198.18.0.4:8000|0.020\n"
        "3.5|GET|/api/v1/health|502|-|0.001\n"
        "not a line of ours\n"
    )
    lines = proxy_log(tmp_path)
    assert [(line.uri.split("/")[4] if "votes" in line.uri else "", line.upstream) for line in lines] == [
        ("abc", "198.18.0.3"),
        ("def", "198.18.0.4"),
        ("", ""),
    ]
    assert lines[2].status == 502


# --- network namespaces ----------------------------------------------------------------------------------------------


@pytest.mark.skipif(NAMESPACES is not None, reason=f"network namespaces cannot be made here: {NAMESPACES}")
def test_a_linked_host_reaches_only_its_peer_a_cut_makes_it_hang_and_close_leaves_nothing():
    network = netns.Network()
    try:
        proxy, web = network.add_host("proxy"), network.add_host("web")
        worker = network.add_linked_host("worker", proxy)
        servers = [
            subprocess.Popen(host.command(sys.executable, "-m", "http.server", "--bind", "0.0.0.0", "8080"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for host in (proxy, web)
        ]  # fmt: skip
        probe = "import socket,sys\ntry:\n socket.create_connection((sys.argv[1], 8080), timeout=2)\n"
        probe += "except OSError:\n sys.exit(1)"

        def reaches(host: netns.Host, address: str) -> bool:
            return subprocess.run(host.command(sys.executable, "-c", probe, address)).returncode == 0

        deadline = time.monotonic() + 30
        while not reaches(web, proxy.address) and time.monotonic() < deadline:
            time.sleep(0.2)
        # The worker reaches the proxy by its own address (routed over the link), and nothing else.
        assert reaches(worker, proxy.address)
        assert not reaches(worker, web.address)
        # Cut off, its connections time out (nothing refuses them); restored, they go through again.
        network.cut(worker)
        started = time.monotonic()
        assert not reaches(worker, proxy.address)
        assert time.monotonic() - started >= 1.9
        network.restore(worker)
        assert reaches(worker, proxy.address)
    finally:
        network.close()
    assert network.leftovers() == []
    assert all(server.wait(timeout=10) is not None for server in servers)


# --- the rehearsal -------------------------------------------------------------------------------------------------


# In CI with the slow tests; the marker `rehearsal` selects it alone.
@pytest.mark.slow
@pytest.mark.rehearsal
@pytest.mark.skipif(NAMESPACES is not None, reason=f"network namespaces cannot be made here: {NAMESPACES}")
@pytest.mark.skipif(not NGINX, reason="Debian's nginx is not installed (apt-get install nginx-light)")
def test_the_short_rehearsal_keeps_every_vote_image_board_and_export_through_its_three_faults():
    report = rehearse(Options.short())
    failed = sorted(name for name, ok in report["checks"].items() if not ok)
    shown = {k: v for k, v in report.items() if k not in ("logs", "options", "hosts")}
    assert not failed, f"{failed} failed: {json.dumps(shown, default=str)[:20000]}"
    votes, phases = report["votes"], report["phases"]
    # Participants voted through the proxy in every phase, on both web hosts, and nothing acknowledged was lost.
    assert votes["lost"] == 0
    assert votes["duplicated"] == 0
    assert votes["unexplained_stored"] == 0
    assert all(row["lost"] == 0 for row in report["votes_by_phase"].values())
    assert report["api_requests_by_web_host"]["web1"] > 0
    assert report["api_requests_by_web_host"]["web2"] > 0
    # A vote taken by one host reached the leaderboard socket held on the other.
    assert report["push_latency"]["across_hosts"]["n"] > 0
    # The killed host's processes all died, and once started again it answered requests through the proxy.
    web = phases["web host killed"]
    assert web["processes_killed"] >= 3  # uvicorn's supervisor and its two processes
    assert web["requests_it_answered_after_its_restart"] > 0
    # The cut-off worker held sets; another worker finished them while it could not reach the proxy.
    cut = phases["worker host cut off"]
    assert cut["sets_held_when_cut"] > 0
    assert cut["finished_elsewhere_while_cut"]
    assert report["generation"]["cut_workers_sets_now"] == {"ready": cut["sets_held_when_cut"]}
    # The storage server came back with every image; images were served again after it.
    storage = phases["storage restarted"]
    assert storage["objects_kept_across_the_restart"] >= storage["objects_before_the_stop"] > 0
    assert storage["objects_lost_across_the_restart"] == 0
    assert report["storage"]["missing_from_bucket"] == 0
    assert storage["images_fetched_after_it_was_back"] > 0
    assert storage["image_errors_after_it_was_back"] == 0
    assert report["final_export"]["state"] == "whole"
    assert report["cleanup"] == {"namespaces_and_links_left": [], "processes_left": []}
