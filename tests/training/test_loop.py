"""The loop's batches: gradient accumulation trains as one larger batch, and training keeps off the global RNGs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from django.conf import settings
from django.core.management import call_command

from generation.pipelines import PipelineSpec, load_pipeline
from tests.training.conftest import TINY_SETTINGS
from training import objectives
from training.loop import TrainingConfig, fine_tune
from training.readers import PreferenceData, read_export
from training.services import TrainRequest, prepare_training, train_generator

pytestmark = pytest.mark.django_db


def tiny_pipe():  # type: ignore[no-untyped-def]
    spec = PipelineSpec.from_settings("builtin:tiny-random", TINY_SETTINGS)
    return load_pipeline(spec, device="cpu", cache_dir=Path(settings.POPARENA_MODEL_CACHE))


def trained(data: PreferenceData, folder: Path, **config: object) -> tuple[dict[str, torch.Tensor], list[dict]]:
    pipe = tiny_pipe()
    outcome = fine_tune(pipe, data, TrainingConfig(**config), folder, progress=False)  # type: ignore[arg-type]
    return {k: v.detach().clone() for k, v in pipe.unet.state_dict().items()}, outcome.history


def assert_same_training(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], base: dict[str, torch.Tensor]) -> None:
    """Equal to rounding. Summing a batch's gradients in another order changes the last bits, and Adam divides
    each gradient element by its own size, so an element whose gradient is at rounding level may step by up to
    the learning rate either way: the runs must agree within a small share of how far training moved the
    weights, with most elements equal. (Measured at beta 20, one or two threads: under 0.4 % of the distance moved
    and under 2 % of the elements apart by over 1e-5; a reference point taken per micro-batch: 31 % and 95 %.)"""
    gap = torch.cat([(a[k] - b[k]).flatten() for k in a])
    moved = torch.cat([(a[k] - base[k]).flatten() for k in a])
    assert float(moved.norm()) > 0
    assert float(gap.norm() / moved.norm()) < 0.02
    assert float((gap.abs() > 1e-5).float().mean()) < 0.1


@pytest.mark.parametrize("objective", objectives.OBJECTIVES)
def test_accumulating_k_batches_of_b_trains_as_one_batch_of_b_times_k(popalign_export, tmp_path, objective):
    # Every part of a step: a held caption and, with min_timestep, the trained captions below it. Beta 20, not the
    # default 100: PopAlign's loss multiplies rounding-level differences of g by beta.
    data = read_export(popalign_export(pairs=3, n=4))
    recipe = dict(objective=objective, steps=3, lr=1e-3, beta=20.0, seed=4, min_timestep=500)
    recipe.update(preserve=("a red square",), preserve_weight=10.0)
    base = {k: v.detach().clone() for k, v in tiny_pipe().unet.state_dict().items()}

    whole, whole_log = trained(data, tmp_path / "whole", batch=6, **recipe)
    split, split_log = trained(data, tmp_path / "split", batch=2, accumulate=3, **recipe)

    assert_same_training(whole, split, base)
    # The log describes the effective batch: the same loss, margin and preservation gap step by step, to rounding
    # (not accuracy: it counts g_w > g_l, a coin toss at step 1, where the model is the reference and g is 0).
    for one, three in zip(whole_log, split_log, strict=True):
        assert three["effective_batch"] == one["effective_batch"] == 6
        for key in ("loss", "reward_margin", "preservation"):
            assert three[key] == pytest.approx(one[key], rel=2e-3, abs=1e-5), (key, one, three)
    # and training moved the reward: a run that learnt nothing would pass the comparisons above trivially.
    assert whole_log[-1]["loss"] != whole_log[0]["loss"]


def test_a_reference_point_per_micro_batch_would_not_train_as_one_batch(popalign_export, tmp_path, monkeypatch):
    # PopAlign's z is a batch statistic. Taken per micro-batch (PopAlign's own trainer under accumulation), each
    # micro-batch is pushed around its own mean, not the effective batch's: the comparison above tells them apart.
    data = read_export(popalign_export(pairs=3, n=4))
    recipe = dict(steps=3, lr=1e-3, beta=20.0, seed=4, min_timestep=0, preserve_weight=0.0)
    base = {k: v.detach().clone() for k, v in tiny_pipe().unet.state_dict().items()}
    whole, _ = trained(data, tmp_path / "whole", batch=6, **recipe)
    popalign = objectives.OBJECTIVES[objectives.POPALIGN]
    without_reference_point = objectives.Objective(popalign.family, popalign.loss)
    monkeypatch.setitem(objectives.OBJECTIVES, objectives.POPALIGN, without_reference_point)
    per_micro_batch, _ = trained(data, tmp_path / "per", batch=2, accumulate=3, **recipe)
    with pytest.raises(AssertionError):
        assert_same_training(whole, per_micro_batch, base)


def test_the_log_and_the_record_say_the_effective_batch(tiny_base, popalign_export, capsys):
    export = popalign_export()
    call_command(
        "train_generator", "--export", str(export), "--objective", "popalign", "--base", "tiny-base",
        "--name", "tuned", "--steps", "2", "--batch", "2", "--accumulate", "3", "--no-progress",
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "effective batch 6 (--batch 2 x --accumulate 3 x 1 process)" in out
    folder = Path(settings.TRAINED_MODELS_DIR) / "tuned"
    record = json.loads((folder / "training.json").read_text())
    assert (record["batch"], record["accumulate"], record["processes"], record["effective_batch"]) == (2, 3, 1, 6)
    log = [json.loads(line) for line in (folder / "training-log.jsonl").read_text().splitlines()]
    assert [entry["effective_batch"] for entry in log] == [6, 6]


def test_a_run_resumes_with_the_same_effective_batch_split_otherwise(tiny_base, popalign_export):
    export = popalign_export()

    def request(name: str, *, resume: bool = False, **split: int) -> TrainRequest:
        config = TrainingConfig(steps=4, seed=3, lr=1e-3, **split)  # type: ignore[arg-type]
        return TrainRequest(export=export, base="tiny-base", name=name, config=config, resume=resume)

    # Given a run of batch 4 stopped after two steps,
    stops = iter([False, False, True])
    stopped = train_generator(
        prepared=prepare_training(request=request("split", batch=4)), progress=False, should_stop=lambda: next(stops)
    )
    assert stopped.outcome.steps_done == 2
    # a resume on another effective batch is refused, naming both and what to change,
    from core.errors import ApplicationError

    with pytest.raises(ApplicationError, match="effective batch of 4 .* on 2 .--batch 2 x --accumulate 1"):
        prepare_training(request=request("split", resume=True, batch=2))
    # while one of batch 2 accumulated twice finishes it as the unbroken run of batch 4 would.
    split = train_generator(
        prepared=prepare_training(request=request("split", resume=True, batch=2, accumulate=2)), progress=False
    )
    whole = train_generator(prepared=prepare_training(request=request("whole", batch=4)), progress=False)
    assert split.outcome.steps_done == 4
    assert split.generator is not None
    assert whole.generator is not None
    weights = {}
    for result in (split, whole):
        folder = result.folder / "unet" / "diffusion_pytorch_model.safetensors"
        from safetensors.torch import load_file

        weights[result.generator.name] = load_file(str(folder))
    base = {k: v.detach().clone() for k, v in tiny_pipe().unet.state_dict().items()}
    assert_same_training(weights["whole"], weights["split"], base)


def test_training_neither_reads_nor_moves_the_global_generators(popalign_export, tmp_path):
    # A LoRA's adapters are drawn at random at the start: from the run's seed, not from torch's global state.
    data = read_export(popalign_export(pairs=2, n=2))
    recipe = dict(steps=2, batch=2, lr=1e-3, seed=5, lora_rank=2)
    runs = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        random.seed(global_seed)
        before = torch.get_rng_state(), random.getstate()
        weights, _ = trained(data, tmp_path / f"run-{global_seed}", **recipe)
        assert torch.equal(torch.get_rng_state(), before[0])
        assert random.getstate() == before[1]
        runs.append(weights)
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    other_seed, _ = trained(data, tmp_path / "other", **{**recipe, "seed": 6})
    assert any(not torch.equal(runs[0][k], other_seed[k]) for k in runs[0])
