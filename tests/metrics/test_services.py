"""Computing and storing metrics: labels and measures per population, idempotent, the hook and the command."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from annotation.measuring import measure_population_for_campaigns
from generation import signals
from metrics.config import MODEL_REFUSED, parse_attributes
from metrics.models import AttributeMeasure, ImageLabel, SetMeasure
from metrics.selectors import population_measures
from metrics.services import measure_populations
from tests.factories import CampaignFactory, GeneratorFactory, PromptFactory
from tests.metrics.conftest import drawn, store_pictures

pytestmark = pytest.mark.django_db

COLOURS = ["red", "orange", "yellow", "green", "blue", "purple", "white", "black"]
CONFIG = {
    "colour": {"backend": "shapes", "classes": COLOURS},
    "background": {"backend": "shapes", "classes": ["grey", "white", "black", "blue", "green", "yellow"]},
}


def four_red_two_blue():  # type: ignore[no-untyped-def]
    generator, prompt = GeneratorFactory(name="skewed"), PromptFactory(caption="a circle")
    pictures = [drawn("red")] * 4 + [drawn("blue", "white"), drawn("blue", "white", "square")]
    return store_pictures(generator, prompt, pictures)


def test_a_population_gets_labels_per_image_and_measures_with_what_produced_them() -> None:
    population = four_red_two_blue()
    specs = parse_attributes(CONFIG)

    report = measure_populations(population_ids=[population.pk], attributes=specs)

    assert report.measured == 1
    assert report.images == 6
    colour = AttributeMeasure.objects.get(population=population, attribute="colour")
    assert colour.backend == "shapes"
    assert colour.model_id == "generation.shapes.classify"
    assert colour.classes == COLOURS
    assert colour.shares["red"] == pytest.approx(4 / 6)
    assert colour.shares["blue"] == pytest.approx(2 / 6)
    assert colour.distinct == 2
    assert sorted(ImageLabel.objects.filter(attribute="colour").values_list("label", flat=True)) == [
        "blue",
        "blue",
        "red",
        "red",
        "red",
        "red",
    ]
    measured = population_measures(population.pk)
    assert measured["attributes"]["background"]["shares"]["grey"] == pytest.approx(4 / 6)
    assert measured["faithfulness"] == pytest.approx(5 / 6), "five of six are circles"
    assert 1.0 < measured["vendi"] < 6.0
    assert measured["clip_score"] is None


def test_measuring_twice_changes_nothing_and_recompute_replaces_rather_than_adds() -> None:
    population = four_red_two_blue()
    specs = parse_attributes(CONFIG)
    measure_populations(population_ids=[population.pk], attributes=specs)
    first = list(AttributeMeasure.objects.values_list("pk", "shares"))

    again = measure_populations(population_ids=[population.pk], attributes=specs)
    assert again.measured == 0
    assert again.skipped == 1
    assert list(AttributeMeasure.objects.values_list("pk", "shares")) == first

    redone = measure_populations(population_ids=[population.pk], attributes=specs, recompute=True)
    assert redone.measured == 1
    assert AttributeMeasure.objects.count() == 2
    assert ImageLabel.objects.count() == 12
    assert SetMeasure.objects.count() == 1
    assert sorted(map(str, AttributeMeasure.objects.values_list("shares", flat=True))) == sorted(
        str(s) for _, s in first
    )


def test_a_new_class_list_is_a_new_result_and_the_old_one_is_kept() -> None:
    population = four_red_two_blue()
    measure_populations(population_ids=[population.pk], attributes=parse_attributes(CONFIG))
    narrow = parse_attributes({"colour": {"backend": "shapes", "classes": ["red", "green"]}})

    measure_populations(population_ids=[population.pk], attributes=narrow)

    assert AttributeMeasure.objects.filter(attribute="colour").count() == 2
    only_narrow = population_measures(population.pk, attributes=narrow)["attributes"]["colour"]
    assert only_narrow["classes"] == ["red", "green"]
    assert only_narrow["counted"] == 4, "the blue images are none of red and green"
    assert only_narrow["shares"] == {"red": 1.0, "green": 0.0}


def test_a_failure_while_storing_leaves_no_half_written_results(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    population = four_red_two_blue()
    from metrics.models import SetMeasure as Model

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("disk full")

    monkeypatch.setattr(Model.objects, "create", broken)
    with pytest.raises(RuntimeError):
        measure_populations(population_ids=[population.pk], attributes=parse_attributes(CONFIG))

    assert not AttributeMeasure.objects.exists()
    assert not ImageLabel.objects.exists()


def test_a_ready_population_is_measured_for_the_campaigns_that_configure_metrics(
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    population = four_red_two_blue()
    campaign = CampaignFactory(population_size=6, metrics_attributes=CONFIG)
    campaign.generators.add(population.generator)
    campaign.prompts.add(population.prompt)
    CampaignFactory(population_size=6)  # no metrics configured: measures nothing

    signals.send_population_ready(population.pk)

    assert AttributeMeasure.objects.filter(population=population).count() == 2
    assert measure_population_for_campaigns(population_id=population.pk) is not None


def test_the_hook_skips_only_a_campaign_whose_clip_folder_moved_and_says_so(
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
    caplog,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    # Given two campaigns over the same population, one of whose CLIP folder has since moved (and is
    # first by pk, so a failure would stop the loop before the other),
    population = four_red_two_blue()
    moved = CampaignFactory(slug="moved", population_size=6, metrics_attributes=CONFIG)
    healthy = CampaignFactory(slug="healthy", population_size=6, metrics_attributes=CONFIG)
    for campaign in (moved, healthy):
        campaign.generators.add(population.generator)
        campaign.prompts.add(population.prompt)
    folder = tmp_path / "clip"
    folder.mkdir()
    moved.metrics_attributes = {**CONFIG, "gender": {"backend": "clip", "model": str(folder), "classes": ["a", "b"]}}
    moved.save()
    folder.rmdir()

    with caplog.at_level("WARNING", logger="poparena.metrics"):
        signals.send_population_ready(population.pk)

    assert AttributeMeasure.objects.filter(population=population).count() == 2, "measured for the healthy one"
    (skipped,) = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert "'moved'" in skipped
    assert f"gender.model: {MODEL_REFUSED}" in skipped


def test_the_hook_can_be_turned_off(settings) -> None:  # type: ignore[no-untyped-def]
    settings.METRICS_AFTER_GENERATION = False
    population = four_red_two_blue()
    campaign = CampaignFactory(population_size=6, metrics_attributes=CONFIG)
    campaign.generators.add(population.generator)
    campaign.prompts.add(population.prompt)

    signals.send_population_ready(population.pk)

    assert not AttributeMeasure.objects.exists()


def test_a_failing_metric_never_fails_the_store(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import annotation.measuring

    def broken(**kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("model exploded")

    monkeypatch.setattr(annotation.measuring, "measure_population_for_campaigns", broken)

    signals.send_population_ready(four_red_two_blue().pk)  # logs, does not raise


def test_compute_metrics_backfills_with_a_summary_and_a_second_run_measures_nothing() -> None:
    population = four_red_two_blue()
    campaign = CampaignFactory(slug="study", population_size=6, metrics_attributes=CONFIG)
    campaign.generators.add(population.generator)
    campaign.prompts.add(population.prompt)
    out = io.StringIO()

    call_command("compute_metrics", "--campaign", "study", "--no-progress", stdout=out)
    assert "1 populations measured (6 images), 0 already measured" in out.getvalue()

    out = io.StringIO()
    call_command("compute_metrics", "--campaign", "study", "--no-progress", stdout=out)
    assert "0 populations measured (0 images), 1 already measured" in out.getvalue()

    out = io.StringIO()
    call_command("compute_metrics", "--campaign", "study", "--recompute", "--no-progress", stdout=out)
    assert "1 populations measured" in out.getvalue()
    assert AttributeMeasure.objects.count() == 2


def test_compute_metrics_refuses_bad_input_and_computes_nothing(tmp_path: Path) -> None:
    population = four_red_two_blue()
    campaign = CampaignFactory(slug="study", population_size=6)
    campaign.generators.add(population.generator)
    campaign.prompts.add(population.prompt)

    with pytest.raises(CommandError, match="no campaign with slug 'nope'"):
        call_command("compute_metrics", "--campaign", "nope")
    with pytest.raises(CommandError, match="measures nothing"):
        call_command("compute_metrics", "--campaign", "study")
    # A CLIP folder that existed when the campaign was saved but holds no model.
    folder = tmp_path / "clip"
    folder.mkdir()
    campaign.metrics_attributes = {
        **CONFIG,
        "gender": {"backend": "clip", "model": str(folder), "classes": ["a man", "a woman"]},
    }
    campaign.save()
    with pytest.raises(CommandError, match="unknown device"):
        call_command("compute_metrics", "--campaign", "study", "--device", "tpu")
    with pytest.raises(CommandError, match="could not be loaded"):
        call_command("compute_metrics", "--campaign", "study", "--no-progress")
    folder.rmdir()
    with pytest.raises(CommandError, match="gender.model: not a model this server offers"):
        call_command("compute_metrics", "--campaign", "study", "--no-progress")

    assert not AttributeMeasure.objects.exists()
    assert not ImageLabel.objects.exists()


def test_the_tiny_clip_path_end_to_end(tiny_clip: Path) -> None:
    population = four_red_two_blue()
    campaign = CampaignFactory(
        slug="people",
        population_size=6,
        metrics_attributes={
            "gender": {
                "backend": "clip",
                "model": str(tiny_clip),
                "classes": ["a man", "a woman"],
                "template": "a photo of {}",
            }
        },
    )
    campaign.generators.add(population.generator)
    campaign.prompts.add(population.prompt)

    call_command("compute_metrics", "--campaign", "people", "--no-progress", stdout=io.StringIO())

    measured = population_measures(population.pk, attributes=campaign.attribute_specs())
    gender = measured["attributes"]["gender"]
    assert gender["backend"] == "clip"
    assert gender["model_id"] == str(tiny_clip)
    assert gender["counted"] == 6
    assert sum(gender["shares"].values()) == pytest.approx(1.0)
    assert measured["clip_score"] is not None
    assert 0 <= measured["clip_score"] <= 100
    assert 1.0 <= measured["vendi"] <= 6.0
    assert measured["faithfulness"] is None, "CLIP gives a CLIP score, not the toy domain's faithfulness"
    assert SetMeasure.objects.get(population=population).feature == "CLIP image embedding"


def test_a_backfill_embeds_each_picture_once_per_pass(tiny_clip: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from metrics.classifiers import forget_backends, load_backend

    # Five populations of four in one chunk. Labels and Vendi read the whole chunk, the CLIP score one
    # population at a time: every read must come from the one embedding of each picture. A small
    # batch makes a chunk outgrow what the cache once kept (4 x batch + one population) as 16 x 12
    # outgrew 4 x 32 + 12, where 192 pictures took 372 embeddings.
    forget_backends()
    backend = load_backend("clip", str(tiny_clip))
    monkeypatch.setattr(backend, "batch_size", 2)
    embedded: list[int] = []
    original = backend.model.get_image_features  # type: ignore[attr-defined]

    def counting(**inputs):  # type: ignore[no-untyped-def]
        embedded.append(int(inputs["pixel_values"].shape[0]))
        return original(**inputs)

    monkeypatch.setattr(backend.model, "get_image_features", counting)  # type: ignore[attr-defined]
    generator = GeneratorFactory(name="clip-chunk")
    colours = ["red", "green", "blue", "yellow", "purple"]
    populations = [
        store_pictures(
            generator,
            PromptFactory(caption=f"a {c} circle"),
            [drawn(c, bg) for bg in ("grey", "white", "black", "blue")],
        )
        for c in colours
    ]
    specs = parse_attributes({"gender": {"backend": "clip", "model": str(tiny_clip), "classes": ["a man", "a woman"]}})

    report = measure_populations(population_ids=[p.pk for p in populations], attributes=specs)

    assert report.measured == 5
    assert sum(embedded) == 20, f"{sum(embedded)} embeddings for 20 pictures"
    assert SetMeasure.objects.filter(clip_score__isnull=False).count() == 5
    forget_backends()


def test_a_remote_worker_s_upload_is_measured_on_the_server_after_it_is_stored(
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    import io as bytes_io
    from datetime import timedelta

    from django.utils import timezone

    from generation.image_files import inspect_image
    from generation.models import Population
    from generation.services import UploadedImage, store_uploaded_population

    # Given a population a remote worker holds, in a campaign that measures colour,
    generator = GeneratorFactory(name="remote", settings={"steps": 2, "width": 32, "height": 32})  # as drawn below
    prompt = PromptFactory(caption="a circle")
    population = Population.objects.create(
        generator=generator,
        prompt=prompt,
        size=4,
        seeds=[1, 2, 3, 4],
        status="generating",
        claimed_by="remote-1",
        lease_until=timezone.now() + timedelta(minutes=2),
    )
    campaign = CampaignFactory(population_size=4, metrics_attributes=CONFIG)
    campaign.generators.add(generator)
    campaign.prompts.add(prompt)
    uploads = []
    for colour in ("red", "red", "red", "green"):
        buffer = bytes_io.BytesIO()
        drawn(colour).save(buffer, format="PNG")
        uploads.append(UploadedImage(data=buffer.getvalue(), facts=inspect_image(buffer.getvalue())))

    # when its upload is stored (as the upload endpoint does),
    with django_capture_on_commit_callbacks(execute=True):
        assert store_uploaded_population(
            worker="remote-1", population_id=population.pk, uploads=uploads, generation_ms=5
        )

    # then the server has measured it.
    colour = AttributeMeasure.objects.get(population=population, attribute="colour")
    assert colour.shares["red"] == pytest.approx(0.75)
