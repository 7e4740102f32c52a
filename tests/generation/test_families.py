"""SD3, FLUX, PixArt-Sigma and Sana pipelines as generators: tiny random-weight ones built from config, saved as
hub folders and loaded through the worker's one from_pretrained path (generation.pipelines, generation.families)."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.management import call_command

from generation.models import Demand, Image, Population
from generation.pipelines import PipelineError, PipelineSpec, generate, load_pipeline
from generation.worker import GenerationWorker
from tests.factories import GeneratorFactory, PromptFactory
from tests.generation.tiny_families import FAMILY_NAMES, save_tiny_pipeline

# diffusers' schedulers call np.array on a torch tensor, which numpy 2 flags; nothing this project can change.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

CLASSES = {
    "sd3": "StableDiffusion3Pipeline",
    "flux": "FluxPipeline",
    "pixart-sigma": "PixArtSigmaPipeline",
    "sana": "SanaPipeline",
}
# The tiny Sana's transformer has a sample size its pipeline has no aspect-ratio bins for; binning is its default.
SETTINGS = {
    "sd3": {},
    "flux": {},
    "pixart-sigma": {"resolution_binning": False},
    "sana": {"resolution_binning": False},
}
TINY = {"steps": 2, "width": 32, "height": 32, "guidance_scale": 3.0}


@pytest.fixture(scope="session")
def folders(tmp_path_factory: pytest.TempPathFactory, hf_offline: None) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {name: save_tiny_pipeline(name, root / name, seed=index) for index, name in enumerate(FAMILY_NAMES)}


def spec_for(folders: dict[str, Path], family: str, **settings: Any) -> PipelineSpec:
    return PipelineSpec.from_settings(str(folders[family]), {**TINY, **SETTINGS[family], **settings})


@pytest.fixture(scope="session")
def pipes(folders: dict[str, Path], pipeline_cache_dir: Path) -> dict[str, Any]:
    return {
        family: load_pipeline(spec_for(folders, family), device="cpu", cache_dir=pipeline_cache_dir)
        for family in FAMILY_NAMES
    }


def pixels(generated: Any) -> np.ndarray:
    return np.asarray(generated.image.convert("RGB"), dtype=np.int16)


def stored_pixels(image: Image) -> np.ndarray:
    from PIL import Image as PILImage

    with image.file.open("rb") as handle:
        return np.asarray(PILImage.open(io.BytesIO(handle.read())).convert("RGB"), dtype=np.int16)


@pytest.mark.parametrize("family", FAMILY_NAMES)
@pytest.mark.django_db(transaction=True)
def test_each_family_fills_a_queue_through_run_generation_worker_once(
    family: str, folders: dict[str, Path], settings: Any
) -> None:
    # The storing thread runs population_ready's receivers (metrics) outside the worker's queue lock, so they read
    # the database while the generating thread claims. On the tests' in-memory SQLite (one shared cache) a read
    # under way there makes the claim fail at once with "table is locked" (a database file waits for it instead):
    # it happened under load in CI. This test is about the families; metrics after generation are tested apart.
    settings.METRICS_AFTER_GENERATION = False
    # Given a generator whose source is the family's saved pipeline folder, wanted for two sets of three,
    generator = GeneratorFactory(
        name=f"tiny-{family}", source=str(folders[family]), settings={**TINY, **SETTINGS[family]}
    )
    prompt = PromptFactory(caption="a lighthouse at dusk")
    Demand.objects.create(
        owner="campaign:test", generator=generator, prompt=prompt, size=3, low_watermark=1, high_watermark=2
    )
    out = io.StringIO()
    # when `run_generation_worker --once` runs (the production command, storing behind the next call),
    call_command("run_generation_worker", "--once", "--max-batch", "4", stdout=out)
    # then both sets are ready: three distinct 32x32 images each, made from the recorded seeds and prompt.
    populations = list(Population.objects.filter(generator=generator))
    assert [p.status for p in populations] == ["ready", "ready"], [p.error for p in populations]
    hashes = set()
    for population in populations:
        images = list(population.images.order_by("index"))
        assert [i.seed for i in images] == population.seeds
        assert {(i.width, i.height) for i in images} == {(32, 32)}
        assert {i.generation_prompt for i in images} == {"a lighthouse at dusk"}
        assert not any(i.prompt_truncated for i in images)
        for image in images:
            assert stored_pixels(image).shape == (32, 32, 3)
            hashes.add(image.sha256)
    assert len(hashes) == 6, "every seed gives its own image"
    assert "6 images, 2 populations ready, 0 failed attempts" in out.getvalue()


@pytest.mark.django_db
def test_a_family_pipeline_stays_resident_between_claims(folders: dict[str, Path], tmp_path: Path) -> None:
    # Given a FLUX generator wanted for two sets, and a worker whose batch holds one set, so it claims twice,
    generator = GeneratorFactory(source=str(folders["flux"]), settings=TINY)
    Demand.objects.create(
        owner="campaign:test", generator=generator, prompt=PromptFactory(), size=2, low_watermark=1, high_watermark=2
    )
    worker = GenerationWorker(device="cpu", cache_dir=tmp_path, idle_sleep_s=0, max_batch=2)
    # when it fills the queue,
    stats = worker.run(once=True)
    # then the pipeline was loaded once and served the second claim from memory.
    assert stats.populations == 2
    assert worker.cache.loads == 1
    assert worker.cache.hits >= 1


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_the_family_pipeline_loads_through_from_pretrained_and_batches_by_seed(
    family: str, folders: dict[str, Path], pipes: dict[str, Any]
) -> None:
    pipe = pipes[family]
    spec = spec_for(folders, family)
    assert type(pipe).__name__ == CLASSES[family]
    # A batch of two is the same as each image made alone: image i depends on seed i only (to a level of
    # rounding, since a batch runs other kernels), and one seed always gives the same image.
    batch = generate(pipe, spec, ["a red circle", "a blue square"], [7, 8])
    alone = generate(pipe, spec, ["a blue square"], [8])
    again = generate(pipe, spec, ["a blue square"], [8])
    assert [image.seed for image in batch] == [7, 8]
    assert [image.image.size for image in batch] == [(32, 32), (32, 32)]
    assert np.abs(pixels(batch[1]) - pixels(alone[0])).max() <= 2
    assert np.array_equal(pixels(alone[0]), pixels(again[0]))
    other_seed = generate(pipe, spec, ["a blue square"], [9])
    assert np.abs(pixels(other_seed[0]) - pixels(alone[0])).mean() > 1


# The T5 tokenizer of these pipelines reads "a" * 100 + "b" as "▁a", 99 x "a", "b" and "</s>": 102 tokens, so a
# max_sequence_length of 101 drops the last letter and 102 reads it. Sana's pipeline prepends its instruction and
# keeps max_sequence_length - 2 of the prompt's own tokens (101 bytes here, one token each): 103 reads it all.
# SD3's and FLUX's CLIP encoders stop at 77 tokens either way: what they cut still reaches T5.
BOUNDARIES = [("sd3", 102), ("flux", 102), ("pixart-sigma", 102), ("sana", 103)]


@pytest.mark.parametrize(("family", "reads_all"), BOUNDARIES)
def test_truncated_says_exactly_when_the_long_text_encoder_drops_the_end_of_the_prompt(
    family: str, reads_all: int, folders: dict[str, Path], pipes: dict[str, Any]
) -> None:
    # Given two prompts that differ only in their last letter,
    pipe = pipes[family]
    ends_b, ends_c = "a" * 100 + "b", "a" * 100 + "c"
    for length, cut in ((reads_all - 1, True), (reads_all, False)):
        spec = spec_for(folders, family, steps=1, max_sequence_length=length)
        # when each is generated from one seed at a max_sequence_length one short of the whole prompt, then at it,
        (b,) = generate(pipe, spec, [ends_b], [5])
        (c,) = generate(pipe, spec, [ends_c], [5])
        # then the images are identical exactly when the image says its prompt was truncated.
        assert (b.truncated, c.truncated) == (cut, cut), length
        assert np.array_equal(pixels(b), pixels(c)) == cut, length


@pytest.mark.parametrize(
    ("family", "overrides", "message"),
    [
        ("flux", {"width": 40}, "FLUX.1 pipeline (FluxPipeline) makes images in steps of 16 pixels: width 40"),
        ("sd3", {"height": 24}, "Stable Diffusion 3 pipeline (StableDiffusion3Pipeline) makes images in steps of 16"),
        ("pixart-sigma", {"width": 40}, "PixArt-Sigma pipeline (PixArtSigmaPipeline) makes images in steps of 16"),
        ("flux", {"resolution_binning": True}, "'resolution_binning' does not apply to a FLUX.1 pipeline"),
    ],
)
def test_a_size_the_family_cannot_make_or_a_setting_it_does_not_take_is_refused_naming_the_family(
    family: str, overrides: dict[str, Any], message: str, folders: dict[str, Path], pipes: dict[str, Any]
) -> None:
    # The VAEs downsample by 8 and SD3, PixArt patch 2x2 latents (FLUX packs 2x2): sides step by 16.
    spec = spec_for(folders, family, **overrides)
    with pytest.raises(PipelineError, match=message.replace("(", r"\(").replace(")", r"\)")):
        generate(pipes[family], spec, ["a cat"], [1])


def test_resolution_binning_makes_a_trained_size_and_returns_the_size_asked_for(
    folders: dict[str, Path], pipes: dict[str, Any]
) -> None:
    # PixArt's default: a size off its 16 px grid is made at the nearest trained aspect ratio and resized back.
    spec = dataclasses.replace(spec_for(folders, "pixart-sigma", width=40, height=24), resolution_binning=None)
    (image,) = generate(pipes["pixart-sigma"], spec, ["a cat"], [1])
    assert image.image.size == (40, 24)


def test_a_family_setting_on_a_unet_pipeline_is_refused_when_it_loads(
    tiny_spec: PipelineSpec, pipeline_cache_dir: Path
) -> None:
    spec = dataclasses.replace(tiny_spec, max_sequence_length=77)
    with pytest.raises(PipelineError) as refused:
        load_pipeline(spec, device="cpu", cache_dir=pipeline_cache_dir)
    assert str(refused.value) == (
        "setting 'max_sequence_length' does not apply to a Stable Diffusion 1.x/2.x pipeline "
        "(StableDiffusionPipeline): only Stable Diffusion 3, FLUX.1, PixArt-Sigma, Sana pipelines take it"
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"max_sequence_length": 0}, "setting 'max_sequence_length' must be an integer from 1 to 512"),
        ({"max_sequence_length": 513}, "setting 'max_sequence_length' must be an integer from 1 to 512"),
        ({"max_sequence_length": True}, "setting 'max_sequence_length' must be an integer from 1 to 512"),
        ({"resolution_binning": "yes"}, "setting 'resolution_binning' must be true or false"),
        ({"offload": "disk"}, "setting 'offload' must be one of model, sequential"),
        ({"vae_tiling": 1}, "setting 'vae_tiling' must be true or false"),
    ],
)
def test_family_settings_are_checked_before_anything_loads(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(PipelineError, match=message):
        PipelineSpec.from_settings("some/model", overrides)
    assert PipelineSpec.from_settings("some/model", {"max_sequence_length": 512}).max_sequence_length == 512


def test_offload_needs_a_gpu_and_says_so(folders: dict[str, Path], pipeline_cache_dir: Path) -> None:
    spec = spec_for(folders, "flux", offload="model")
    with pytest.raises(PipelineError, match="setting 'offload' .* needs a cuda device, not 'cpu'"):
        load_pipeline(spec, device="cpu", cache_dir=pipeline_cache_dir)


def test_vae_tiling_decodes_in_tiles_and_makes_the_same_size(
    folders: dict[str, Path], pipeline_cache_dir: Path
) -> None:
    spec = spec_for(folders, "sd3", vae_tiling=True)
    pipe = load_pipeline(spec, device="cpu", cache_dir=pipeline_cache_dir)
    assert pipe.vae.use_tiling
    (image,) = generate(pipe, spec, ["a cat"], [3])
    assert image.image.size == (32, 32)


def test_auto_precision_on_a_gpu_is_bfloat16_for_flux_and_float16_for_the_others(folders: dict[str, Path]) -> None:
    import torch

    from generation.pipelines import _pipeline_class, _torch_dtype

    # Read from the folder's model_index.json before loading, so the weights load in the right precision.
    chosen = {family: _torch_dtype("auto", "cuda:0", _pipeline_class(str(folders[family]))) for family in FAMILY_NAMES}
    assert chosen == {
        "sd3": torch.float16,
        "flux": torch.bfloat16,
        "pixart-sigma": torch.float16,
        "sana": torch.float16,
    }
    assert _torch_dtype("auto", "cpu", "FluxPipeline") == torch.float32


@pytest.mark.django_db
def test_a_worker_fails_the_sets_of_a_generator_whose_size_its_family_cannot_make(
    folders: dict[str, Path], tmp_path: Path
) -> None:
    generator = GeneratorFactory(source=str(folders["flux"]), settings={**TINY, "width": 40})
    Demand.objects.create(
        owner="campaign:test", generator=generator, prompt=PromptFactory(), size=2, low_watermark=1, high_watermark=1
    )
    GenerationWorker(device="cpu", cache_dir=tmp_path, idle_sleep_s=0).run(once=True)
    population = Population.objects.get()
    assert population.status != "ready"
    assert "makes images in steps of 16 pixels: width 40 and height 32" in population.error
    assert not Image.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"max_sequence_length": 0}, "setting 'max_sequence_length' must be an integer from 1 to 512 (tokens), got 0"),
        ({"width": 1001}, "setting 'width' must be a positive multiple of 8 up to 4096, got 1001"),
        ({"max_seq_len": 77}, "unknown setting 'max_seq_len'"),
    ],
)
def test_a_pipeline_generator_with_unusable_settings_is_refused_when_saved(
    overrides: dict[str, Any], message: str
) -> None:
    from generation.models import Generator
    from generation.services import GeneratorRefused, GeneratorSpec, sync_generator

    spec = GeneratorSpec(
        name="flux-schnell",
        display_name="",
        description="",
        source="black-forest-labs/FLUX.1-schnell",
        settings={**TINY, **overrides},
    )
    with pytest.raises(GeneratorRefused) as refused:
        sync_generator(spec=spec)
    assert refused.value.message.startswith(message)
    assert not Generator.objects.filter(name="flux-schnell").exists()
    # The same generator with usable settings is saved.
    sync_generator(spec=dataclasses.replace(spec, settings={**TINY, "max_sequence_length": 256}))
    assert Generator.objects.filter(name="flux-schnell").exists()
