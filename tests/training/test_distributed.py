"""Data-parallel training under torchrun: two CPU processes train the weights one process trains, register once,
encode the data once between them, and stop together, with a clear error, when one of them dies or hangs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from tests.servers import ROOT, WatchedProcess, free_port, site_env, site_query
from tests.servers import manage as site_manage
from training import distributed

from .conftest import TINY_SETTINGS

pytestmark = pytest.mark.django_db

TRAIN = ["--objective", "popalign", "--base", "tiny-base", "--steps", "2", "--lr", "1e-3"]
TRAIN += ["--threads", "1", "--no-progress"]
TORCHRUN = [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc_per_node", "2"]


def manage(*args: str, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], env=env, cwd=settings.BASE_DIR, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip


def unet_weights(folder: Path) -> dict[str, object]:
    from safetensors.torch import load_file

    return load_file(str(folder / "unet" / "diffusion_pytorch_model.safetensors"))


@pytest.mark.slow
def test_two_processes_train_what_one_trains_and_register_one_generator(tiny_base, popalign_export, tmp_path):
    import torch

    export = popalign_export(pairs=3, n=4)
    # Given a database of its own (the processes torchrun starts cannot see the test's), with the same base.
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(POPARENA_VAR_DIR=str(tmp_path / "var"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    env.pop("DJANGO_SETTINGS_MODULE", None)
    assert manage("migrate", "-v0", env=env).returncode == 0
    create = f"from generation.models import Generator; Generator.objects.create(name='tiny-base', source='builtin:tiny-random', settings={TINY_SETTINGS!r})"  # noqa: E501
    assert manage("shell", "-c", create, env=env).returncode == 0

    # When two processes train one model under torchrun, two pairs each of an effective batch of four,
    torchrun = Path(sys.executable).parent / "torchrun"
    run = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", "manage.py", "train_generator",
         "--export", str(export), "--name", "tuned", "--batch", "2", *TRAIN],
        env=env, cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip

    # then every process exits 0, one generator is registered and one folder written,
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("Registered generator 'tuned'") == 1, run.stdout
    assert "2 processes; effective batch 4 (--batch 2 x --accumulate 1 x 2 processes)" in run.stdout, run.stdout
    count = "from generation.models import Generator; print(Generator.objects.filter(name__startswith='tuned').count())"
    assert manage("shell", "-c", count, env=env).stdout.strip().splitlines()[-1] == "1"
    trained = tmp_path / "var" / "trained"
    assert sorted(p.name for p in trained.iterdir()) == ["tuned"]
    record = json.loads((trained / "tuned" / "training.json").read_text())
    assert (record["processes"], record["batch"], record["effective_batch"]) == (2, 2, 4)
    # Each image and caption was encoded once over the two processes, each encoding whole VAE batches of 16: the
    # export holds 24 distinct pictures (3 population pairs of 4 blue and 4 red) under one caption.
    distinct = len(list((export / "images").iterdir()))
    assert distinct == 24
    assert record["encoded"] == {"images_per_process": [16, 8], "captions_per_process": [1, 0]}
    assert "Encoded once over the processes: images 16 + 8, captions 1 + 0" in run.stdout, run.stdout
    # and the weights are those of one process trained on the same effective batch and seed. Not bit for bit: the
    # two runs sum the batch's gradients in another order, and Adam divides each gradient element by its own
    # size, so an element whose gradient is at rounding level (about 0.1% of them here) may step by up to the
    # learning rate either way. So the step-1 loss (before any update) must match, and the weights must match
    # to within a small share of how far training moved them, with nearly every element equal.
    call_command("train_generator", "--export", str(export), "--name", "single", "--batch", "4", *TRAIN)
    two, one = unet_weights(trained / "tuned"), unet_weights(Path(settings.TRAINED_MODELS_DIR) / "single")
    base_folder = next(Path(settings.POPARENA_MODEL_CACHE).glob("tiny-random-*"))
    base = unet_weights(base_folder)
    assert two.keys() == one.keys()
    gap = torch.cat([(two[k] - one[k]).flatten() for k in one])  # type: ignore[operator]
    moved = torch.cat([(one[k] - base[k].float()).flatten() for k in one])  # type: ignore[attr-defined,operator]
    assert float(gap.norm() / moved.norm()) < 0.02
    # (1.2% of the elements beyond 1e-5 in one run on a loaded machine: the first Adam step moves each element
    # by about the learning rate whatever its gradient's size, so rounding-level gradients may go either way)
    assert float((gap.abs() > 1e-5).float().mean()) < 0.03
    single_record = json.loads((Path(settings.TRAINED_MODELS_DIR) / "single" / "training.json").read_text())
    assert single_record["encoded"] == {"images_per_process": [distinct], "captions_per_process": [1]}
    first = [json.loads(line) for line in (trained / "tuned" / "training-log.jsonl").read_text().splitlines()]
    single = Path(settings.TRAINED_MODELS_DIR) / "single" / "training-log.jsonl"
    assert first[0]["loss"] == pytest.approx(json.loads(single.read_text().splitlines()[0])["loss"], abs=1e-5)


def rank_pid(launcher: int, rank: int) -> int:
    """The process torchrun (pid `launcher`) started for `rank` (its RANK environment variable)."""
    children = Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split()
    for child in children:
        if f"RANK={rank}".encode() in Path(f"/proc/{child}/environ").read_bytes().split(b"\0"):
            return int(child)
    raise AssertionError(f"no process of rank {rank} among torchrun's children {children}")


@pytest.mark.slow
def test_a_killed_process_stops_the_other_with_a_clear_error_and_leaves_nothing(popalign_export, model_cache, tmp_path):
    # Given a site with the tiny base, and two processes training it under torchrun for many steps,
    export = popalign_export(pairs=3, n=4)
    env = site_env(tmp_path / "site", migrated=True, OMP_NUM_THREADS="1", POPARENA_MODEL_CACHE=str(model_cache))
    base = f"Generator.objects.create(name='tiny-base', source='builtin:tiny-random', settings={TINY_SETTINGS!r})"
    site_manage(env, "shell", "--no-imports", "-c", f"from generation.models import Generator; {base}")
    command = [*TORCHRUN, "manage.py", "train_generator", "--export", str(export), "--name", "tuned"]
    command += ["--objective", "popalign", "--base", "tiny-base", "--steps", "100000", "--batch", "2"]
    command += ["--threads", "1", "--no-progress", "--eval-samples", "0"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    trainer = WatchedProcess(process, timeout_s=400)
    working = tmp_path / "site" / "trained" / ".tuned.training"
    trainer.wait_for(lambda: (working / "training-log.jsonl").is_file(), "no step was logged", 0.05)
    # when the second process is killed mid-training,
    os.kill(rank_pid(process.pid, 1), signal.SIGKILL)
    killed = time.monotonic()
    code = trainer.finish(timeout_s=120)
    # then the run ends non-zero soon after (not at the end of its 100000 steps, nor at a timeout),
    assert code != 0, trainer.output
    assert time.monotonic() - killed < 60
    # the surviving main process says why it stopped (the killed one's connection closed, or torchrun's SIGTERM)
    # and torchrun's report names the killed process,
    said = re.search(r"CommandError: process 0 of 2: (.*)", trainer.output)
    assert said, trainer.output
    assert "another process of this run died" in said[1] or "stopped by SIGTERM" in said[1], said[1]
    assert "nothing of the run is saved or registered" in said[1]
    assert re.search(r"rank\s*: 1 \(local_rank: 1\)\s*\n\s*exitcode\s*: -9", trainer.output), trainer.output
    # and nothing is registered or left behind: no generator, no weights, no working folder to trip the next run.
    assert site_query(env, "SELECT count(*) FROM generation_generator WHERE name = 'tuned'") == [(0,)]
    assert list((tmp_path / "site" / "trained").iterdir()) == []


@pytest.mark.slow
def test_a_process_that_hangs_stops_the_other_within_the_rank_timeout():
    # Given two processes in one group with a 3-second timeout, each taking collective steps,
    script = (
        "import os, signal\n"
        "from training import distributed\n"
        "distributed.start('cpu', 3)\n"
        "with distributed.watching(3):\n"
        "    for step in range(10**9):\n"
        "        if step == 20 and distributed.rank() == 1:\n"
        "            os.kill(os.getpid(), signal.SIGSTOP)\n"
        "        distributed.any_process(False)\n"
    )
    env = {**os.environ, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for r in (0, 1)
    ]
    main, other = (WatchedProcess(p, timeout_s=120) for p in processes)
    try:
        # when the second one stops answering (stopped, not dead: its connections stay open),
        main.wait_for(lambda: Path(f"/proc/{other.process.pid}/stat").read_text().split(") ")[1][0] == "T", "no stop")
        stopped = time.monotonic()
        # then the first gives up after the timeout, not before and not much after, naming why,
        code = main.finish(timeout_s=60)
        waited = time.monotonic() - stopped
    finally:
        other.process.kill()
        other.finish(timeout_s=30)
    assert code != 0
    assert 2 < waited < 30, (waited, main.output)
    assert (
        "GroupStopped: process 0 of 2: another process of this run died or did not answer within --rank-timeout (3 s)"
        in main.output
    ), main.output  # noqa: E501
    assert "Timed out" in main.output


def test_the_shares_cover_every_item_once_in_order():
    for items in (0, 1, 2, 5, 24):
        for processes in (1, 2, 3, 4):
            shares = [list(range(items))[distributed.shard(items, processes, r)] for r in range(processes)]
            assert [i for share in shares for i in share] == list(range(items))
            # as even as contiguous shares go: none larger than its fair share rounded up
            assert max(len(share) for share in shares) == -(-items // processes)


def test_each_process_takes_its_run_of_every_micro_batch():
    # An effective batch of 2 x 3 x 2 = 12 drawn as one sequence: micro-batch m is items 4m..4m+3, of which
    # process 0 takes the first two and process 1 the last two.
    shares = {rank: distributed.micro_slices(2, 3, 2, rank) for rank in (0, 1)}
    items = list(range(12))
    assert [items[s] for s in shares[0]] == [[0, 1], [4, 5], [8, 9]]
    assert [items[s] for s in shares[1]] == [[2, 3], [6, 7], [10, 11]]
    # One process, no accumulation: the whole batch.
    assert distributed.micro_slices(8, 1, 1, 0) == [slice(0, 8)]


def test_one_process_outside_torchrun(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert distributed.world_size() == 1
    assert distributed.is_main()
    assert distributed.device_for("cuda") == "cuda"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert not distributed.is_main()
    # Each process on a GPU host trains on the GPU of its local rank.
    assert distributed.device_for("cuda") == "cuda:1"
    assert distributed.device_for("cpu") == "cpu"
