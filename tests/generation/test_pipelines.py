"""Loading and running pipelines offline: the same from_pretrained path as real models, on tiny random weights."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from generation import pipelines
from generation.pipelines import (
    PipelineError,
    PipelineSpec,
    ResidentPipelineCache,
    build_tiny_pipeline,
    generate,
    load_pipeline,
    pipeline_bytes,
    resolve_source,
)

# diffusers' schedulers call np.array on a torch tensor, which numpy 2 flags; nothing this project can change.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

PROMPTS = ["a red circle", "a blue square", "a cat on a mat", "a lighthouse at dusk"]
SEEDS = [11, 12, 13, 14]
WARM = (0.6, 0.1, -0.5)
COOL = (-0.5, 0.1, 0.6)


def pixels(image: Any) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module")
def batch(tiny_pipe: Any, tiny_spec: PipelineSpec) -> list[pipelines.GeneratedImage]:
    return generate(tiny_pipe, tiny_spec, PROMPTS, SEEDS)


# --- built-in tiny model and loading ---


def test_tiny_pipeline_has_the_hub_layout_and_loads_through_from_pretrained(
    tiny_spec: PipelineSpec, pipeline_cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from diffusers import DiffusionPipeline, StableDiffusionPipeline

    folder = Path(resolve_source(tiny_spec, pipeline_cache_dir))
    for part in ("model_index.json", "unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (folder / part).exists(), part
    assert list(folder.glob("*/*.safetensors"))
    # Built beside the target and renamed: no half-written temporary folder is left behind.
    assert not [p.name for p in pipeline_cache_dir.iterdir() if p.name.startswith(".")]

    calls: list[tuple[Any, ...]] = []
    original = DiffusionPipeline.from_pretrained

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append((*args, kwargs.get("dtype")))
        return original(*args, **kwargs)

    monkeypatch.setattr(DiffusionPipeline, "from_pretrained", staticmethod(spy))
    pipe = load_pipeline(tiny_spec, device="cpu", cache_dir=pipeline_cache_dir)

    assert calls == [(str(folder), torch.float32)]
    assert isinstance(pipe, StableDiffusionPipeline)
    assert pipe.tokenizer.model_max_length == 77


def test_an_existing_tiny_model_is_reused_and_a_failed_build_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pipeline_cache_dir: Path, tiny_spec: PipelineSpec
) -> None:
    folder = Path(resolve_source(tiny_spec, pipeline_cache_dir))
    stamp = (folder / "model_index.json").stat().st_mtime_ns
    assert build_tiny_pipeline(folder) == folder
    assert (folder / "model_index.json").stat().st_mtime_ns == stamp

    def crash(*args: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(pipelines, "_save_tiny_pipeline", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        build_tiny_pipeline(tmp_path / "tiny")
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_built_in_model_is_refused_by_name(pipeline_cache_dir: Path) -> None:
    with pytest.raises(PipelineError, match=r"unknown built-in model 'builtin:nope'.*builtin:tiny-random"):
        load_pipeline(PipelineSpec("builtin:nope"), device="cpu", cache_dir=pipeline_cache_dir)


def test_an_unknown_hub_id_fails_fast_offline_naming_the_source(pipeline_cache_dir: Path) -> None:
    started = time.monotonic()
    with pytest.raises(PipelineError, match="no-such-owner/no-such-model"):
        load_pipeline(PipelineSpec("no-such-owner/no-such-model"), device="cpu", cache_dir=pipeline_cache_dir)
    # Generous: the point is that it does not hang on a network timeout.
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("model_index", "reason"),
    [(None, "not a diffusers pipeline"), ("{}", "_class_name")],
    ids=["no-model-index", "empty-model-index"],
)
def test_a_folder_that_is_not_a_pipeline_fails_naming_it(
    tmp_path: Path, pipeline_cache_dir: Path, model_index: str | None, reason: str
) -> None:
    folder = tmp_path / "not-a-pipeline"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    if model_index is not None:
        (folder / "model_index.json").write_text(model_index)
    with pytest.raises(PipelineError, match=reason) as excinfo:
        load_pipeline(PipelineSpec(str(folder)), device="cpu", cache_dir=pipeline_cache_dir)
    assert str(folder) in str(excinfo.value)


def test_a_missing_folder_fails_naming_it(tmp_path: Path, pipeline_cache_dir: Path) -> None:
    missing = tmp_path / "gone"
    with pytest.raises(PipelineError, match="does not exist") as excinfo:
        load_pipeline(PipelineSpec(str(missing)), device="cpu", cache_dir=pipeline_cache_dir)
    assert str(missing) in str(excinfo.value)


def test_a_scheduler_is_swapped_in_by_class_name_and_an_unknown_one_is_refused(
    tiny_spec: PipelineSpec, pipeline_cache_dir: Path
) -> None:
    spec = dataclasses.replace(tiny_spec, scheduler="EulerAncestralDiscreteScheduler")
    pipe = load_pipeline(spec, device="cpu", cache_dir=pipeline_cache_dir)
    assert type(pipe.scheduler).__name__ == "EulerAncestralDiscreteScheduler"
    # from_config keeps the model's sampling settings.
    assert pipe.scheduler.config.timestep_spacing == "trailing"

    with pytest.raises(PipelineError, match="NoSuchScheduler"):
        load_pipeline(
            dataclasses.replace(tiny_spec, scheduler="NoSuchScheduler"), device="cpu", cache_dir=pipeline_cache_dir
        )


@pytest.mark.parametrize("device", ["cuda", "cuda:3", "tpu", "gpu0"])
def test_a_device_this_machine_lacks_is_refused_by_name(
    device: str, tiny_spec: PipelineSpec, pipeline_cache_dir: Path
) -> None:
    import torch

    present = {"cuda"} if torch.cuda.is_available() else set()
    present |= {f"cuda:{i}" for i in range(torch.cuda.device_count())}
    if device in present:
        pytest.skip("this machine has that GPU")
    with pytest.raises(PipelineError, match=f"device '{device}'"):
        load_pipeline(tiny_spec, device=device, cache_dir=pipeline_cache_dir)


# --- settings ---


def test_settings_from_json_are_normalised_and_the_workers_own_keys_pass_through() -> None:
    spec = PipelineSpec.from_settings(
        "builtin:tiny-random",
        {"steps": 2, "guidance_scale": 1, "palette": [1, 0, 0], "augment": {"colour": ["red"]}},
    )
    assert spec.palette == (1.0, 0.0, 0.0)
    assert spec.guidance_scale == 1.0
    same = PipelineSpec("builtin:tiny-random", steps=8, width=128, palette=(1.0, 0.0, 0.0))
    # Per-call settings do not change which pipeline is loaded, so they share a cache entry.
    assert spec.key == same.key
    assert hash(spec.key) == hash(same.key)
    assert spec.key != dataclasses.replace(spec, init_seed=1).key


@pytest.mark.parametrize(
    # Not named `settings`: that is pytest-django's fixture, which the root conftest uses.
    ("raw", "named"),
    [
        ({"width": 30}, "width"),
        ({"height": 0}, "height"),
        ({"stepz": 4}, "stepz"),
        ({"steps": 0}, "steps"),
        ({"steps": 201}, "steps"),
        ({"steps": True}, "steps"),
        ({"guidance_scale": -1}, "guidance_scale"),
        ({"dtype": "float64"}, "dtype"),
        ({"compile": "yes"}, "compile"),
        ({"palette": [1, 2]}, "palette"),
        ({"scheduler": "Euler Discrete"}, "scheduler"),
        ({"init_seed": -1}, "init_seed"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(raw: dict[str, Any], named: str) -> None:
    with pytest.raises(PipelineError, match=f"'{named}'"):
        PipelineSpec.from_settings("builtin:tiny-random", raw)


# --- generation ---


def test_a_batch_is_one_call_giving_distinct_images_of_the_configured_size(
    tiny_pipe: Any, tiny_spec: PipelineSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = type(tiny_pipe)
    original = cls.__call__
    calls: list[dict[str, Any]] = []

    def counting_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, "__call__", counting_call)
    spec = dataclasses.replace(tiny_spec, width=96, height=64)
    images = generate(tiny_pipe, spec, PROMPTS, SEEDS)

    assert len(calls) == 1
    assert len(calls[0]["generator"]) == len(SEEDS)
    assert [(g.prompt, g.seed) for g in images] == list(zip(PROMPTS, SEEDS, strict=True))
    for generated in images:
        assert generated.image.size == (96, 64)
        assert (generated.width, generated.height) == (96, 64)
    arrays = [pixels(g.image) for g in images]
    for i in range(len(arrays)):
        for j in range(i + 1, len(arrays)):
            assert np.abs(arrays[i] - arrays[j]).mean() > 10, (i, j)


def test_one_image_regenerated_alone_from_its_seed_matches_the_batch(
    tiny_pipe: Any, tiny_spec: PipelineSpec, batch: list[pipelines.GeneratedImage]
) -> None:
    recorded = batch[2]
    [alone] = generate(tiny_pipe, tiny_spec, [recorded.prompt], [recorded.seed])
    # Batched and single calls differ by float rounding only: at most one uint8 step per channel.
    assert np.abs(pixels(alone.image) - pixels(recorded.image)).max() <= 1


def test_the_same_batch_twice_is_identical(
    tiny_pipe: Any, tiny_spec: PipelineSpec, batch: list[pipelines.GeneratedImage]
) -> None:
    again = generate(tiny_pipe, tiny_spec, PROMPTS, SEEDS)
    for first, second in zip(batch, again, strict=True):
        assert np.array_equal(pixels(first.image), pixels(second.image))


def test_stand_ins_with_different_palettes_have_visibly_different_colours(
    tiny_spec: PipelineSpec, pipeline_cache_dir: Path
) -> None:
    means = {}
    for name, init_seed, palette in (("warm", 1, WARM), ("cool", 2, COOL)):
        spec = dataclasses.replace(tiny_spec, init_seed=init_seed, palette=palette)
        pipe = load_pipeline(spec, device="cpu", cache_dir=pipeline_cache_dir)
        images = generate(pipe, spec, PROMPTS[:3], SEEDS[:3])
        means[name] = np.mean([pixels(g.image).reshape(-1, 3).mean(axis=0) for g in images], axis=0)
    # Measured margins were 117-166 (red) and 120-150 (blue) over several init seeds; 60 is a clear cast.
    assert means["warm"][0] - means["cool"][0] > 60
    assert means["cool"][2] - means["warm"][2] > 60


def test_a_prompt_past_the_token_limit_still_generates_and_is_reported_truncated(
    tiny_pipe: Any, tiny_spec: PipelineSpec
) -> None:
    long_prompt = "a very detailed portrait of a person " * 12
    images = generate(tiny_pipe, tiny_spec, [long_prompt, "a short prompt"], [1, 2])
    assert [g.truncated for g in images] == [True, False]
    assert images[0].prompt == long_prompt
    assert images[0].image.size == (64, 64)


def test_prompts_and_seeds_must_pair_up(tiny_pipe: Any, tiny_spec: PipelineSpec) -> None:
    with pytest.raises(PipelineError, match="2 prompts but 1 seeds"):
        generate(tiny_pipe, tiny_spec, ["a", "b"], [1])


def test_a_runtime_failure_in_the_pipeline_becomes_a_readable_pipeline_error(
    tiny_pipe: Any, tiny_spec: PipelineSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("CUDA error: device-side assert triggered")

    monkeypatch.setattr(type(tiny_pipe), "__call__", broken)
    with pytest.raises(PipelineError, match="builtin:tiny-random.*device-side assert"):
        generate(tiny_pipe, tiny_spec, ["a"], [1])


# --- resident cache ---


def test_the_cache_loads_once_and_serves_hits_for_the_same_pipeline(
    tiny_spec: PipelineSpec, pipeline_cache_dir: Path
) -> None:
    cache = ResidentPipelineCache(cache_dir=pipeline_cache_dir, budget_bytes=10**9)
    first = cache.get(tiny_spec, "cpu")
    # A different image size or step count is a per-call setting: still the same resident pipeline.
    second = cache.get(dataclasses.replace(tiny_spec, steps=4, width=128), "cpu")
    assert second is first
    assert (cache.loads, cache.hits, len(cache)) == (1, 1, 1)


def test_the_cache_evicts_the_least_recently_used_pipeline_over_budget(
    tiny_spec: PipelineSpec, tiny_pipe: Any, pipeline_cache_dir: Path
) -> None:
    one = pipeline_bytes(tiny_pipe)
    cache = ResidentPipelineCache(cache_dir=pipeline_cache_dir, budget_bytes=one * 3 // 2)
    other = dataclasses.replace(tiny_spec, scheduler="EulerAncestralDiscreteScheduler")

    cache.get(tiny_spec, "cpu")
    cache.get(other, "cpu")
    assert (cache.evictions, len(cache)) == (1, 1)
    assert (other, "cpu") in cache
    assert (tiny_spec, "cpu") not in cache

    # The evicted one is loaded again on next use.
    cache.get(tiny_spec, "cpu")
    assert (cache.loads, cache.evictions, len(cache)) == (3, 2, 1)
    assert (tiny_spec, "cpu") in cache


def test_the_cache_keeps_a_pipeline_larger_than_its_budget_while_it_is_in_use(
    tiny_spec: PipelineSpec, pipeline_cache_dir: Path
) -> None:
    cache = ResidentPipelineCache(cache_dir=pipeline_cache_dir, budget_bytes=1)
    first = cache.get(tiny_spec, "cpu")
    assert cache.get(tiny_spec, "cpu") is first
    assert (cache.loads, cache.hits, cache.evictions, len(cache)) == (1, 1, 0, 1)
