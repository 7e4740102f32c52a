"""`run_generation_worker` started before its database is migrated, as scripts/demo starts it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.servers import ROOT, WatchedProcess, manage, site_env, site_query

SEED_QUEUE = """
from generation.models import Demand, Generator, Prompt
generator = Generator.objects.create(name="tiny", source="builtin:tiny-random",
                                     settings={"steps": 2, "width": 32, "height": 32, "init_seed": 1})
for n in range(2):
    prompt = Prompt.objects.create(caption=f"a shape number {n}", category="shape")
    Demand.objects.create(owner="campaign:t", generator=generator, prompt=prompt, size=2,
                          low_watermark=1, high_watermark=1)
"""


def ready_populations(env: dict[str, str]) -> int:
    return site_query(env, "SELECT COUNT(*) FROM generation_population WHERE status = 'ready'")[0][0]


@pytest.mark.slow
def test_a_worker_started_before_migrate_waits_imports_and_then_fills_the_queues_that_appear(tmp_path):
    env = site_env(tmp_path)
    # Given a worker started on a database that does not exist yet,
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_generation_worker", "--max-batch", "4", "--idle-sleep", "0.2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    worker = WatchedProcess(process, timeout_s=180)
    try:
        # which says what it waits for,
        worker.wait_for(lambda: worker.said("waiting: the database"), "it never said it waits")
        # when the database is migrated beside it and a queue is added,
        manage(env, "migrate", "--noinput")
        manage(env, "shell", "--no-imports", "-c", SEED_QUEUE)
        worker.wait_for(lambda: ready_populations(env) >= 2, "the worker filled nothing", 0.2)
    finally:
        output = worker.stop()
    # then it imported the pipeline libraries while it waited, and filled the queue with no failed attempt.
    assert process.returncode == 0, output
    assert "pipeline libraries imported while waiting for work" in output
    assert "the queue is ready" in output
    assert "4 images, 2 populations ready, 0 failed attempts" in output


def test_once_on_a_database_not_yet_migrated_says_so_and_creates_no_table(tmp_path):
    env = site_env(tmp_path)
    result = subprocess.run(
        [sys.executable, "manage.py", "run_generation_worker", "--once"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "the database lacks" in result.stderr
    assert "run `manage.py migrate` first" in result.stderr
    tables = (
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        if env.get("DATABASE_URL")
        else "SELECT name FROM sqlite_master WHERE type = 'table'"
    )
    assert site_query(env, tables) == []
