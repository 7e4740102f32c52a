"""Resuming an interrupted training: the same weights as an unbroken run, and Ctrl-C on the real command."""

from __future__ import annotations

import json
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
