"""Resuming an interrupted training: the same weights as an unbroken run, also on another number of processes, and
Ctrl-C on the real command, alone and under torchrun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from django.conf import settings

from generation.models import Generator
from generation.pipelines import PipelineSpec, load_pipeline
from tests.servers import ROOT, WatchedProcess, manage, site_env, site_query
from tests.training.conftest import TINY_SETTINGS
from tests.training.test_distributed import TORCHRUN, unet_weights
from training.loop import TrainingConfig
from training.services import TrainRequest, prepare_training, train_generator

pytestmark = pytest.mark.django_db


def load(generator: Generator):  # type: ignore[no-untyped-def]
    spec = PipelineSpec.from_settings(generator.source, generator.settings)
    return spec, load_pipeline(spec, device="cpu", cache_dir=Path(settings.POPARENA_MODEL_CACHE))


def test_two_steps_then_four_resumed_give_the_weights_of_six_steps_in_one_go(tiny_base, popalign_export):
    export = popalign_export()

    def request(name: str, *, resume: bool = False) -> TrainRequest:
        config = TrainingConfig(steps=6, batch=4, seed=11)
        return TrainRequest(export=export, base="tiny-base", name=name, config=config, resume=resume)

    # Given one run of six steps,
    whole = train_generator(prepared=prepare_training(request=request("whole")), progress=False)
    # and another with the same seed stopped after two steps and resumed for the other four,
    calls = {"n": 0}

    def stop_after_two() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    stopped = train_generator(
        prepared=prepare_training(request=request("split")), progress=False, should_stop=stop_after_two
    )
    assert stopped.outcome.steps_done == 2
    split = train_generator(prepared=prepare_training(request=request("split", resume=True)), progress=False)
    # then both registered the same weights, and neither is the base's.
    assert whole.generator is not None
    assert split.generator is not None
    whole_unet = dict(load(whole.generator)[1].unet.named_parameters())
    split_unet = dict(load(split.generator)[1].unet.named_parameters())
    base_unet = dict(load(tiny_base)[1].unet.named_parameters())
    assert whole_unet.keys() == split_unet.keys()
    for name, weight in whole_unet.items():
        assert torch.allclose(weight, split_unet[name], rtol=0, atol=1e-6), name
    assert any(not torch.allclose(w, base_unet[n], rtol=0, atol=1e-6) for n, w in whole_unet.items())
    assert [h["loss"] for h in split.outcome.history] == [h["loss"] for h in whole.outcome.history[2:]]


@pytest.mark.slow
def test_ctrl_c_on_the_real_command_keeps_the_run_and_resume_finishes_it(popalign_export, tmp_path):
    # Given a site with the tiny base and an export beside it,
    export = popalign_export()
    env = site_env(tmp_path / "site", migrated=True)
    base = f"Generator.objects.create(name='tiny-base', source='builtin:tiny-random', settings={TINY_SETTINGS!r})"
    manage(env, "shell", "--no-imports", "-c", f"from generation.models import Generator; {base}")
    command = [
        sys.executable, "manage.py", "train_generator", "--export", str(export), "--objective", "popalign",
        "--base", "tiny-base", "--name", "tuned", "--steps", "40", "--batch", "4", "--no-progress",
    ]  # fmt: skip
    log = tmp_path / "site" / "trained" / ".tuned.training" / "training-log.jsonl"
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    trainer = WatchedProcess(process, timeout_s=300)
    # when it is sent SIGINT once its first step is logged,
    trainer.wait_for(lambda: log.is_file() and bool(log.read_text().strip()), "no step was logged", 0.05)
    process.send_signal(signal.SIGINT)
    assert trainer.finish(timeout_s=120) == 0, trainer.output
    # then it stops after the step it is in, keeps the run and says how to resume it, registering nothing;
    assert "Stopping after this step" in trainer.output
    assert "Resume it with the same options plus --resume" in trainer.output, trainer.output
    done = len(log.read_text().splitlines())
    assert 1 <= done < 40
    assert f"Interrupted after {done} of 40 steps" in trainer.output
    assert (log.parent / "training-state.pt").is_file()
    assert site_query(env, "SELECT count(*) FROM generation_generator WHERE name = 'tuned'") == [(0,)]
    # and the same command with --resume trains the remaining steps and registers the generator.
    resumed = subprocess.run([*command, "--resume"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Registered generator 'tuned': 40 steps" in resumed.stdout
    folder = tmp_path / "site" / "trained" / "tuned"
    steps = [json.loads(line)["step"] for line in (folder / "training-log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 41))
    assert site_query(env, "SELECT count(*) FROM generation_generator WHERE name = 'tuned'") == [(1,)]


@pytest.mark.slow
def test_a_run_resumed_on_another_number_of_processes_trains_the_weights_of_an_unbroken_one(
    tiny_base, popalign_export, model_cache, tmp_path
):
    # Given an export, a site of its own for the runs under torchrun (its database, with the same base) whose
    # trained models go where this process's do, and one unbroken run of twelve steps of four pairs in one process,
    export = popalign_export(pairs=3, n=4)
    trained = Path(settings.TRAINED_MODELS_DIR)
    env = site_env(
        tmp_path / "site", migrated=True, OMP_NUM_THREADS="1", POPARENA_MODEL_CACHE=str(model_cache),
        TRAINED_MODELS_DIR=str(trained),
    )  # fmt: skip
    base = f"Generator.objects.create(name='tiny-base', source='builtin:tiny-random', settings={TINY_SETTINGS!r})"
    manage(env, "shell", "--no-imports", "-c", f"from generation.models import Generator; {base}")

    def request(name: str, *, resume: bool = False) -> TrainRequest:
        config = TrainingConfig(steps=12, batch=4, seed=11, lr=1e-3)
        return TrainRequest(export=export, base="tiny-base", name=name, config=config, resume=resume, eval_samples=0)

    train_generator(prepared=prepare_training(request=request("whole")), progress=False)
    two = [*TORCHRUN, "manage.py", "train_generator", "--export", str(export), "--objective", "popalign"]
    two += ["--base", "tiny-base", "--steps", "12", "--batch", "2", "--seed", "11", "--lr", "1e-3", "--threads", "1"]
    two += ["--eval-samples", "0", "--no-progress"]

    # When one run is interrupted in one process after two steps and resumed on two processes (two pairs each),
    calls = {"n": 0}

    def stop_after_two() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    train_generator(prepared=prepare_training(request=request("forth")), progress=False, should_stop=stop_after_two)
    resumed = subprocess.run([*two, "--name", "forth", "--resume"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    assert "Registered generator 'forth': 12 steps" in resumed.stdout, resumed.stdout
    # and another is interrupted by Ctrl-C on two processes (the terminal's SIGINT reaches torchrun and both
    # processes, and torchrun passes it on to them again) and resumed in one,
    process = subprocess.Popen(
        [*two, "--name", "back", "--steps", "100000"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    trainer = WatchedProcess(process, timeout_s=400)
    log = trained / ".back.training" / "training-log.jsonl"
    trainer.wait_for(lambda: log.is_file() and bool(log.read_text().strip()), "no step was logged", 0.05)
    os.killpg(process.pid, signal.SIGINT)
    trainer.finish(timeout_s=120)
    done = len(log.read_text().splitlines())
    assert f"Interrupted after {done} of 100000 steps" in trainer.output, trainer.output
    assert (log.parent / "training-state.pt").is_file()
    assert site_query(env, "SELECT count(*) FROM generation_generator WHERE name = 'back'") == [(0,)]
    record = json.loads((log.parent / "training.json").read_text())
    assert (record["processes"], record["effective_batch"]) == (2, 4)
    assert done < 12, "Ctrl-C came too late for the comparison"
    # (its remaining steps, to twelve, in one process of four pairs: the number of steps may change on --resume)
    back = train_generator(prepared=prepare_training(request=request("back", resume=True)), progress=False)
    assert back.generator is not None
    assert back.outcome.steps_done == 12
    # then both logged the unbroken run's losses step by step, and hold its weights to float tolerance: the sums
    # over two processes are taken in another order, and Adam's first steps move each element by about the
    # learning rate whatever its gradient's size, so rounding-level gradients go either way (losses 0.6% apart in
    # one run); a step lost, repeated or drawn anew, or Adam's state restarted, would be far more.
    whole = unet_weights(trained / "whole")
    base = unet_weights(next(Path(settings.POPARENA_MODEL_CACHE).glob("tiny-random-*")))
    moved = torch.cat([(w - base[k].float()).flatten() for k, w in whole.items()])  # type: ignore[attr-defined]
    losses = [json.loads(line)["loss"] for line in (trained / "whole" / "training-log.jsonl").read_text().splitlines()]
    for name in ("forth", "back"):
        logged = [json.loads(line) for line in (trained / name / "training-log.jsonl").read_text().splitlines()]
        assert [row["step"] for row in logged] == list(range(1, 13)), name
        assert [row["loss"] for row in logged] == pytest.approx(losses, rel=0.02), name
        other = unet_weights(trained / name)
        gap = torch.cat([(other[k] - w).flatten() for k, w in whole.items()])
        assert float(gap.norm() / moved.norm()) < 0.02, (name, float(gap.norm() / moved.norm()))
