"""Real worker processes against one PostgreSQL database: concurrent claims, SIGTERM, leftovers.

These start `run_generation_worker` as separate processes, so they need a database that
other processes can see: they run in the PostgreSQL pass of the suite (DATABASE_URL set).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from generation.models import Demand, Image, Population
from tests.factories import GeneratorFactory, PromptFactory
from tests.servers import WatchedProcess

ROOT = Path(__file__).resolve().parents[2]
TINY = {"steps": 2, "width": 32, "height": 32}

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


@pytest.fixture(autouse=True)
def _needs_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("worker processes share a database only on PostgreSQL (run with DATABASE_URL)")


def worker_process(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    db = connection.settings_dict
    url = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(
        DATABASE_URL=url,
        HF_HUB_OFFLINE="1",
        MEDIA_ROOT=str(tmp_path / "media"),
        POPARENA_MODEL_CACHE=str(tmp_path / "models"),
    )
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_generation_worker", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def demand(generators, prompts, *, size=4, high=2):
    for generator in generators:
        for prompt in prompts:
            Demand.objects.create(
                owner="campaign:t", generator=generator, prompt=prompt, size=size, low_watermark=1, high_watermark=high
            )


def test_two_workers_in_parallel_never_claim_the_same_population_and_leave_none_behind(tmp_path):
    # Given 2 generators x 6 prompts x 2 populations wanted, and the tiny models built once,
    generators = [GeneratorFactory(settings={**TINY, "init_seed": seed}) for seed in (1, 2)]
    demand(generators, [PromptFactory() for _ in range(6)])
    warmup = worker_process(tmp_path, "--once", "--campaign", "nothing")
    assert warmup.wait(timeout=180) == 0, warmup.stdout.read()
    # when two workers fill the queues at the same time,
    workers = [worker_process(tmp_path, "--once", "--max-batch", "4") for _ in range(2)]
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    # then every population is ready with all its images, each claimed exactly once,
    populations = list(Population.objects.all())
    assert len(populations) == 24
    assert {(p.status, p.attempts, p.claimed_by) for p in populations} == {("ready", 1, "")}
    assert Image.objects.count() == 24 * 4
    # and both workers did part of the work.
    made = [int(out.strip().splitlines()[-1].split()[0]) for out in outputs]
    assert sum(made) == 96
    assert all(n > 0 for n in made), made


def test_sigterm_stops_a_worker_cleanly_and_a_killed_worker_leaves_nothing_half_ready(tmp_path):
    generator = GeneratorFactory(settings={**TINY, "steps": 8, "width": 64, "height": 64})
    demand([generator], [PromptFactory() for _ in range(12)], size=6, high=1)
    # Given a worker in the middle of its work,
    worker = worker_process(tmp_path, "--max-batch", "2", "--lease-seconds", "2")
    deadline = time.monotonic() + 120
    # (one population made and another claimed, so there is work to abandon)
    while not (
        Population.objects.filter(status="ready").exists() and Population.objects.filter(status="generating").exists()
    ):
        assert time.monotonic() < deadline, "the worker made nothing"
        time.sleep(0.05)
    # when it is killed without warning,
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    # then no population is ready without all its images,
    for population in Population.objects.filter(status="ready"):
        assert population.images.count() == population.size
    assert not Image.objects.exclude(population__status="ready").exists()
    # and after its lease ran out (waited for on the rows themselves, not a guessed sleep),
    # a new worker reclaims the abandoned work and stops cleanly on SIGTERM.
    while Population.objects.filter(status="generating", lease_until__gt=timezone.now()).exists():
        assert time.monotonic() < deadline + 60, "the dead worker's lease never ran out"
        time.sleep(0.1)
    abandoned = set(Population.objects.filter(status="generating").values_list("pk", flat=True))
    assert abandoned, "the killed worker left no claimed work to reclaim"
    successor = worker_process(tmp_path, "--max-batch", "2")
    while not Population.objects.filter(pk__in=abandoned, status="ready").exists():
        assert time.monotonic() < deadline + 120, "abandoned work was never reclaimed"
        time.sleep(0.2)
    successor.send_signal(signal.SIGTERM)
    output = successor.communicate(timeout=60)[0]
    assert successor.returncode == 0, output
    assert not Population.objects.filter(status="generating").exists(), "a stopped worker hands its claim back"
    for population in Population.objects.filter(status="ready"):
        assert population.images.count() == population.size


def test_a_worker_started_before_its_queues_exist_imports_while_waiting_and_fills_them_without_a_failed_attempt(
    tmp_path,
):
    generator = GeneratorFactory(settings=TINY)
    # Given a worker process started with nothing to do (as scripts/demo starts it, before seeding),
    worker = WatchedProcess(worker_process(tmp_path, "--max-batch", "4", "--idle-sleep", "0.2"), timeout_s=180)
    try:
        # which says it imported the pipeline libraries while it waited,
        worker.wait_for(lambda: worker.said("pipeline libraries imported while waiting for work"), "no import")
        # when the queues appear,
        demand([generator], [PromptFactory() for _ in range(3)], size=2, high=1)
        worker.wait_for(
            lambda: Population.objects.filter(status="ready").count() >= 3, "the worker filled nothing", poll_s=0.2
        )
    finally:
        output = worker.stop()
    # then it fills them with no failed attempt: the import it made while waiting never races a pipeline's load.
    assert worker.process.returncode == 0, output
    assert "6 images, 3 populations ready, 0 failed attempts" in output
    assert not Population.objects.exclude(status="ready").exists()
