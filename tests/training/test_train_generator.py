"""train_generator: a tiny random pipeline tuned on an export, saved, registered, loaded back and generating."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from django.conf import settings
from django.core.management import CommandError, call_command

from annotation.models import Campaign
from generation.image_files import pixels_to_tensor
from generation.models import Demand, Generator
from generation.pipelines import PipelineSpec, generate, load_pipeline
from tests.generation.tiny_families import save_tiny_pipeline
from tests.training.conftest import TINY_SETTINGS
from training import objectives
from training.loop import LOG_FILE, STATE_FILE, TrainingConfig, TrainingError, fine_tune
from training.models import TrainingRun
from training.readers import read_export
from training.services import TrainRequest, prepare_training, train_generator

pytestmark = pytest.mark.django_db


def train(export: Path, *extra: str, name: str = "tuned", objective: str = "popalign") -> None:
    call_command(
        "train_generator",
        "--export", str(export), "--objective", objective, "--base", "tiny-base", "--name", name,
        "--steps", "3", "--batch", "4", "--lr", "1e-3", "--no-progress", *extra,
    )  # fmt: skip


def load(generator: Generator):  # type: ignore[no-untyped-def]
    spec = PipelineSpec.from_settings(generator.source, generator.settings)
    return spec, load_pipeline(spec, device="cpu", cache_dir=Path(settings.POPARENA_MODEL_CACHE))


def test_the_tuned_model_is_registered_saved_with_its_record_and_generates(tiny_base, popalign_export):
    export = popalign_export()
    train(export)

    tuned = Generator.objects.get(name="tuned")
    folder = Path(tuned.source)
    assert folder == Path(settings.TRAINED_MODELS_DIR) / "tuned"
    # The same sampling settings; init_seed only shapes a built-in stand-in's random weights, now saved in the folder.
    assert tuned.settings == {k: v for k, v in tiny_base.settings.items() if k != "init_seed"}
    assert tuned.prompt_template == tiny_base.prompt_template
    run = TrainingRun.objects.get(generator=tuned)
    assert (run.base, run.objective, run.steps, run.export_format) == (tiny_base, "popalign", 3, "popalign-csv")
    assert len(run.export_manifest_sha256) == 64
    assert run.hyperparameters["lr"] == 1e-3
    record = json.loads((folder / "training.json").read_text())
    assert record["status"] == "done"
    assert record["export_manifest_sha256"] == run.export_manifest_sha256
    log = [json.loads(line) for line in (folder / "training-log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2, 3]
    assert (folder / "loss.svg").read_text().startswith("<svg")
    assert not list(Path(settings.TRAINED_MODELS_DIR).glob(".*"))  # no working folder left behind

    spec, pipe = load(tuned)
    (image,) = generate(pipe, spec, ["a shape"], [1])
    assert image.image.size == (32, 32)


@pytest.mark.parametrize("objective", objectives.OBJECTIVES)
def test_each_objective_raises_the_winners_likelihood_and_lowers_the_losers(popalign_export, objective):
    # The demo's trained shapes model on pictures like its training data (blue circles win, red ones lose).
    # A random-weight UNet would not do: any step shrinks its wild predictions and every likelihood rises.
    # Small steps: Adam moves every weight by about lr, which costs a trained model likelihood everywhere
    # (second order in lr); at 1e-4 that swamps the preference (first order) and both sides fall, the winners less.
    data = read_export(popalign_export(pairs=2, n=4))
    spec = PipelineSpec.from_settings("builtin:shapes", {"steps": 2, "width": 32, "height": 32})
    cache = Path(settings.POPARENA_MODEL_CACHE)
    tuned = load_pipeline(spec, device="cpu", cache_dir=cache)
    reference = load_pipeline(spec, device="cpu", cache_dir=cache)
    config = TrainingConfig(objective=objective, steps=8, lr=1e-5, beta=500.0, batch=8, seed=1)
    fine_tune(tuned, data, config, Path(settings.TRAINED_MODELS_DIR) / "log", progress=False)

    rewards = implicit_rewards(tuned, reference, data)
    # g = reference error - tuned error on the same noised latents: above 0, the tuned model finds the image likelier.
    assert rewards["winners"] > 0 > rewards["losers"], rewards


def implicit_rewards(tuned, reference, data) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Mean g over each side's images, on 16 fixed noise draws and timesteps spread over the schedule."""
    import io

    from diffusers import DDPMScheduler
    from PIL import Image

    scheduler = DDPMScheduler.from_config(reference.scheduler.config)
    out = {}
    for side in ("winners", "losers"):
        blobs = sorted({getattr(p, side[:-1]) for p in data.pairs})
        images = pixels_to_tensor([Image.open(io.BytesIO(b)).convert("RGB") for b in blobs])
        with torch.no_grad():
            latents = reference.vae.encode(images).latent_dist.mean * reference.vae.config.scaling_factor
            text = reference.encode_prompt([data.pairs[0].caption], "cpu", 1, False)[0].repeat(len(blobs), 1, 1)
            generator = torch.Generator().manual_seed(0)
            total = 0.0
            for t in range(50, 1000, 60):
                noise = torch.randn(latents.shape, generator=generator)
                steps = torch.full((len(blobs),), t)
                noisy = scheduler.add_noise(latents, noise, steps)
                errors = [
                    (pipe.unet(noisy, steps, encoder_hidden_states=text).sample - noise).pow(2).mean()
                    for pipe in (reference, tuned)
                ]
                total += float(errors[0] - errors[1])
        out[side] = total
    return out


def test_a_lora_trains_only_the_attention_and_is_folded_into_a_plain_pipeline(tiny_base, popalign_export):
    train(popalign_export(), "--lora-rank", "4")

    tuned = Generator.objects.get(name="tuned")
    _, base_pipe = load(tiny_base)
    spec, tuned_pipe = load(tuned)
    base_weights = dict(base_pipe.unet.named_parameters())
    tuned_weights = dict(tuned_pipe.unet.named_parameters())
    assert not any("lora" in name for name in tuned_weights)  # folded in, no adapter left to load
    attention = [n for n in base_weights if n.endswith(("to_q.weight", "to_v.weight"))]
    others = [n for n in base_weights if "conv" in n and n.endswith(".weight")]
    assert attention
    assert others
    assert any(not torch.equal(base_weights[n], tuned_weights[n]) for n in attention)
    assert all(torch.equal(base_weights[n], tuned_weights[n]) for n in others)
    assert TrainingRun.objects.get(generator=tuned).hyperparameters["lora_rank"] == 4
    assert generate(tuned_pipe, spec, ["a shape"], [2])[0].image.size == (32, 32)


def _gap_to_base(base_pipe, tuned_pipe, caption: str, timesteps=(100, 400, 700, 999)) -> float:  # type: ignore[no-untyped-def]
    """Mean squared gap between two UNets' noise predictions for `caption` on fixed noisy latents."""
    torch.manual_seed(0)
    latents = torch.randn(4, base_pipe.unet.config.in_channels, 8, 8)
    timesteps = torch.tensor(timesteps)
    with torch.no_grad():
        text = base_pipe.encode_prompt([caption] * 4, "cpu", 1, False)[0]
        base = base_pipe.unet(latents, timesteps, encoder_hidden_states=text).sample
        tuned = tuned_pipe.unet(latents, timesteps, encoder_hidden_states=text).sample
    return float((base - tuned).pow(2).mean())


def half_precision_base():  # type: ignore[no-untyped-def]
    """The tiny base as a GPU generator loads it: in half precision (bfloat16, which the CPU runs)."""
    spec = PipelineSpec.from_settings("builtin:tiny-random", {**TINY_SETTINGS, "dtype": "bfloat16"})
    return spec, load_pipeline(spec, device="cpu", cache_dir=Path(settings.POPARENA_MODEL_CACHE))


def test_a_lora_on_a_half_precision_base_trains_float32_adapters(popalign_export, tmp_path):
    # Mixed precision computes in half precision but keeps float32 weights (its gradient scaler refuses fp16
    # gradients), so the adapters are float32 whatever the base's dtype; the frozen base stays as loaded.
    data = read_export(popalign_export(pairs=1, n=2))
    _, pipe = half_precision_base()
    stops = iter([False, True])
    config = TrainingConfig(steps=3, batch=2, lora_rank=2, mixed_precision="bf16")

    outcome = fine_tune(pipe, data, config, tmp_path, progress=False, should_stop=lambda: next(stops))

    assert outcome.steps_done == 1
    state = torch.load(tmp_path / STATE_FILE, weights_only=True)
    assert state["trainable"]
    assert {tensor.dtype for tensor in state["trainable"].values()} == {torch.float32}
    assert pipe.unet.conv_in.weight.dtype == torch.bfloat16


def test_a_half_precision_base_tuned_with_mixed_precision_still_generates(popalign_export, tmp_path):
    # Mixed precision wraps the UNet so that it returns float32; the tuned pipeline comes back without that wrapper,
    # or its bfloat16 VAE would be handed float32 latents. A second training in one process may change precision.
    data = read_export(popalign_export(pairs=1, n=2))
    float32_spec = PipelineSpec.from_settings("builtin:tiny-random", TINY_SETTINGS)
    float32 = load_pipeline(float32_spec, device="cpu", cache_dir=Path(settings.POPARENA_MODEL_CACHE))
    fine_tune(float32, data, TrainingConfig(steps=1, batch=2), tmp_path / "first", progress=False)
    spec, pipe = half_precision_base()

    fine_tune(
        pipe, data, TrainingConfig(steps=1, batch=2, lora_rank=2, mixed_precision="bf16"), tmp_path, progress=False
    )

    (image,) = generate(pipe, spec, ["a circle"], [1])
    assert image.image.size == (32, 32)


def test_a_half_precision_base_without_mixed_precision_is_refused(popalign_export, tmp_path):
    data = read_export(popalign_export(pairs=1, n=2))
    _, pipe = half_precision_base()
    with pytest.raises(TrainingError, match="loaded in bfloat16: train it with --mixed-precision fp16 or bf16"):
        fine_tune(pipe, data, TrainingConfig(steps=1, batch=2, lora_rank=2), tmp_path, progress=False)
    assert not (tmp_path / LOG_FILE).exists()


def test_preserved_captions_keep_the_bases_predictions_while_the_rest_moves(tiny_base, popalign_export):
    held = "a red circle on a blue background"  # a caption the export does not hold
    export = popalign_export()
    # Every timestep, so the free run moves where the held caption is asked (the defaults hold timesteps below 700).
    train(export, "--steps", "8", "--min-timestep", "0", "--preserve-weight", "0", name="free")
    train(export, "--steps", "8", "--min-timestep", "0", "--preserve", held, "--preserve-weight", "1000", name="held")

    _, base_pipe = load(tiny_base)
    _, free = load(Generator.objects.get(name="free"))
    _, kept = load(Generator.objects.get(name="held"))
    assert _gap_to_base(base_pipe, kept, held) < 0.5 * _gap_to_base(base_pipe, free, held)
    run = TrainingRun.objects.get(generator__name="held")
    assert run.hyperparameters["preserve"] == [held]
    log = (Path(settings.TRAINED_MODELS_DIR) / "held" / "training-log.jsonl").read_text().splitlines()
    assert all("preservation" in json.loads(line) for line in log)


def test_preserve_unconditional_holds_the_prediction_guidance_subtracts(tiny_base, popalign_export):
    export = popalign_export()
    train(export, "--steps", "8", "--min-timestep", "0", "--preserve-weight", "0", name="free")
    train(
        export, "--steps", "8", "--min-timestep", "0", "--preserve-unconditional", "--preserve-weight", "1000",
        name="held",
    )  # fmt: skip

    _, base_pipe = load(tiny_base)
    _, free = load(Generator.objects.get(name="free"))
    _, kept = load(Generator.objects.get(name="held"))
    # The empty caption is what classifier-free guidance runs the UNet on for its unconditional half.
    assert _gap_to_base(base_pipe, kept, "") < 0.5 * _gap_to_base(base_pipe, free, "")
    assert TrainingRun.objects.get(generator__name="held").hyperparameters["preserve_unconditional"] is True


def test_training_only_the_noisier_timesteps_holds_the_quieter_ones_to_the_base(tiny_base, popalign_export):
    export = popalign_export()  # captioned "a circle"
    train(export, "--steps", "8", "--min-timestep", "500", "--preserve-weight", "0", name="free")
    train(export, "--steps", "8", "--min-timestep", "500", "--preserve-weight", "1000", name="held")

    _, base_pipe = load(tiny_base)
    _, free = load(Generator.objects.get(name="free"))
    _, kept = load(Generator.objects.get(name="held"))
    quiet = (20, 150, 300, 450)
    assert _gap_to_base(base_pipe, kept, "a circle", quiet) < 0.7 * _gap_to_base(base_pipe, free, "a circle", quiet)


def test_add_to_campaign_puts_the_tuned_model_in_the_arena_and_queues_its_sets(
    tiny_base, voted_campaign, exports_root, tmp_path
):
    # Given a campaign with real votes, exported as PopAlign's trainer reads it
    campaign = voted_campaign()
    export = tmp_path / "popalign"
    call_command(
        "export_preferences", "--campaign", campaign.slug, "--format", "popalign-csv", "--out", str(export),
        "--criterion", "diversity",
    )  # fmt: skip
    Generator.objects.filter(campaigns=campaign).update(settings=tiny_base.settings)
    campaign.status = Campaign.Status.OPEN
    campaign.save()

    # When the tiny base is tuned on it and added to the campaign
    train(export, "--add-to-campaign", campaign.slug)

    # Then it is one of the campaign's generators with a queue per prompt
    tuned = Generator.objects.get(name="tuned")
    assert campaign.generators.filter(pk=tuned.pk).exists()
    assert Demand.objects.filter(generator=tuned).count() == campaign.prompts.count()


def test_an_interrupted_run_registers_nothing_and_resumes_where_it_stopped(tiny_base, popalign_export):
    export = popalign_export()
    request = TrainRequest(export=export, base="tiny-base", name="tuned", config=TrainingConfig(steps=6, batch=4))
    calls = {"n": 0}

    def stop_after_two() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    result = train_generator(prepared=prepare_training(request=request), progress=False, should_stop=stop_after_two)
    assert result.generator is None
    assert result.outcome.interrupted
    assert result.outcome.steps_done == 2
    assert not Generator.objects.filter(name="tuned").exists()
    assert json.loads((result.folder / "training.json").read_text())["status"] == "interrupted"

    # A plain rerun is told about the interrupted run; --resume continues it.
    with pytest.raises(CommandError, match="--resume"):
        train(export, "--steps", "6")
    resumed = TrainRequest(
        export=export, base="tiny-base", name="tuned", config=TrainingConfig(steps=6, batch=4), resume=True
    )
    result = train_generator(prepared=prepare_training(request=resumed), progress=False)
    assert result.generator is not None
    assert result.outcome.steps_done == 6
    log = (result.folder / "training-log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in log] == [1, 2, 3, 4, 5, 6]


def nothing_registered() -> bool:
    trained = Path(settings.TRAINED_MODELS_DIR)
    return not Generator.objects.exclude(name="tiny-base").exists() and not (
        trained.exists() and any(trained.iterdir())
    )


def test_bad_exports_are_refused_before_training_naming_the_problem(tiny_base, popalign_export, tmp_path):
    good = popalign_export()
    cases = []

    missing_column = tmp_path / "no-label"
    shutil.copytree(good, missing_column)
    text = (missing_column / "train.csv").read_text().replace("label,", "verdict,", 1)
    (missing_column / "train.csv").write_text(text)
    cases.append((missing_column, "lacks the column\\(s\\) label"))

    missing_image = tmp_path / "no-image"
    shutil.copytree(good, missing_image)
    next((missing_image / "images").iterdir()).unlink()
    cases.append((missing_image, "image 'images/.*' is missing"))

    empty = tmp_path / "empty"
    shutil.copytree(good, empty)
    (empty / "train.csv").write_text("jpg_0,jpg_1,caption,label\n")
    cases.append((empty, "no rows to train on"))

    cases.append((popalign_export(n=3, loser_n=4), "the winning side has 3 images and the losing side 4"))
    cases.append((popalign_export(size=16), "images are 16x16 but --base 'tiny-base' makes 32x32"))
    cases.append((tmp_path / "nowhere", "does not exist"))

    for export, message in cases:
        with pytest.raises(CommandError, match=message):
            train(export)
        assert nothing_registered(), export


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_a_base_of_a_family_training_cannot_tune_is_refused_naming_the_family(
    tiny_base, popalign_export, tmp_path, family
):
    # Given an export and a base whose pipeline is a transformer family (tiny, random weights, saved as a hub folder),
    export = popalign_export()
    folder = save_tiny_pipeline(family, tmp_path / family)
    Generator.objects.create(name="transformer-base", source=str(folder), settings=TINY_SETTINGS)
    label = {
        "flux": r"FLUX.1 pipeline \(FluxPipeline\)",
        "sd3": r"Stable Diffusion 3 pipeline \(StableDiffusion3Pipeline\)",
    }
    # then training it is refused before the first step, naming the family, and nothing is registered.
    with pytest.raises(CommandError, match=rf"--base 'transformer-base' is a {label[family]}; training needs .* UNet"):
        call_command(
            "train_generator", "--export", str(export), "--objective", "popalign", "--base", "transformer-base",
            "--name", "x", "--no-progress",
        )  # fmt: skip
    assert not Generator.objects.filter(name="x").exists()


def test_other_bad_input_is_refused_before_training(tiny_base, popalign_export, tmp_path):
    export = popalign_export()
    Generator.objects.create(name="taken", source="builtin:tiny-random", settings=tiny_base.settings)
    not_a_pipeline = tmp_path / "not-a-pipeline"
    not_a_pipeline.mkdir()
    Generator.objects.create(name="folder-base", source=str(not_a_pipeline), settings=tiny_base.settings)

    with pytest.raises(CommandError, match="--name 'taken' is taken"):
        train(export, name="taken")
    with pytest.raises(CommandError, match="--base 'nobody': no generator"):
        call_command(
            "train_generator", "--export", str(export), "--objective", "dpo", "--base", "nobody", "--name", "x"
        )
    with pytest.raises(CommandError, match="not a diffusers pipeline"):
        call_command(
            "train_generator", "--export", str(export), "--objective", "dpo", "--base", "folder-base", "--name", "x",
            "--no-progress",
        )  # fmt: skip
    with pytest.raises(CommandError, match="--steps must be at least 1"):
        train(export, "--steps", "0")
    with pytest.raises(CommandError, match="--add-to-campaign 'nope'"):
        train(export, "--add-to-campaign", "nope")
    with pytest.raises(CommandError, match="--min-timestep must be 0 .every timestep. or more, got -1"):
        train(export, "--min-timestep", "-1")
    with pytest.raises(CommandError, match="--min-timestep must be below the scheduler's 1000 training timesteps"):
        train(export, "--min-timestep", "1000")
    with pytest.raises(CommandError, match="--preserve-weight must be 0 or more, got -1.0"):
        train(export, "--preserve-weight", "-1")
    with pytest.raises(CommandError, match="--preserve needs a caption"):
        train(export, "--preserve", " ")
    Generator.objects.create(
        name="half-base", source="builtin:tiny-random", settings={**TINY_SETTINGS, "dtype": "bfloat16"}
    )
    with pytest.raises(CommandError, match="the base is loaded in bfloat16: train it with --mixed-precision"):
        call_command(
            "train_generator", "--export", str(export), "--objective", "popalign", "--base", "half-base", "--name", "x",
            "--no-progress",
        )  # fmt: skip
    assert not Generator.objects.filter(name="x").exists()
    assert not Path(settings.TRAINED_MODELS_DIR).exists() or not any(Path(settings.TRAINED_MODELS_DIR).iterdir())


def test_without_preserve_the_captions_of_the_exports_campaign_it_leaves_out_are_held(tiny_base, popalign_export):
    from tests.factories import CampaignFactory, PromptFactory

    # Given an export (captioned "a circle") of a campaign that also asks for "a red circle",
    campaign = CampaignFactory(slug="shapes")
    campaign.prompts.set([PromptFactory(caption="a circle"), PromptFactory(caption="a red circle")])
    export = popalign_export()
    (export / "manifest.json").write_text(json.dumps({"format": "popalign-csv", "campaign": {"slug": "shapes"}}))

    train(export, "--steps", "1", name="held")
    train(export, "--steps", "1", "--preserve", "a square", name="named")

    record = json.loads((Path(settings.TRAINED_MODELS_DIR) / "held" / "training.json").read_text())
    assert record["preserved_from_campaign"] == ["a red circle"]
    assert record["preserve"] == ["a red circle"]
    assert (record["beta"], record["min_timestep"], record["preserve_weight"]) == (100.0, 700, 60.0)
    named = json.loads((Path(settings.TRAINED_MODELS_DIR) / "named" / "training.json").read_text())
    assert (named["preserve"], named["preserved_from_campaign"]) == (["a square"], [])
