"""Data-parallel training under torchrun: two CPU processes train the weights one process trains, and register once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from training import distributed

from .conftest import TINY_SETTINGS

pytestmark = pytest.mark.django_db

TRAIN = ["--objective", "popalign", "--base", "tiny-base", "--steps", "2", "--lr", "1e-3"]
TRAIN += ["--threads", "1", "--no-progress"]


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
    assert float((gap.abs() > 1e-5).float().mean()) < 0.01
    first = [json.loads(line) for line in (trained / "tuned" / "training-log.jsonl").read_text().splitlines()]
    single = Path(settings.TRAINED_MODELS_DIR) / "single" / "training-log.jsonl"
    assert first[0]["loss"] == pytest.approx(json.loads(single.read_text().splitlines()[0])["loss"], abs=1e-5)


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
