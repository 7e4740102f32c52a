"""Imported image sets: each layout read whole, every bad row named and nothing stored, a re-import adds nothing."""

from __future__ import annotations

import hashlib
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image as PILImage

from annotation.importing import ImportRefused, import_populations
from generation.image_files import canonical_png
from generation.importing import ImportFileError, read_import, read_import_zip
from generation.models import Generator, Image, Population
from tests.factories import CampaignFactory, GeneratorFactory, PromptFactory
from tests.generation.importing_fixtures import (
    SIZE,
    image_folder,
    parquet_file,
    picture,
    rows_for,
    saved_dataset,
    zipped,
)

pytestmark = pytest.mark.django_db

N = 3


@pytest.fixture
def campaign():
    campaign = CampaignFactory(population_size=N)
    campaign.prompts.add(PromptFactory(caption="a doctor"), PromptFactory(caption="a nurse"))
    return campaign


def _import(campaign, path):
    return import_populations(campaign=campaign, read=read_import(path))


def _refusal(campaign, path) -> str:
    with pytest.raises(ImportRefused) as refused:
        _import(campaign, path)
    assert not Population.objects.exists()
    assert not Image.objects.exists()
    assert not Generator.objects.filter(backend=Generator.Backend.IMPORTED).exists()
    return refused.value.message


def _stored_files(settings) -> list:
    media = settings.MEDIA_ROOT
    return [p for p in media.rglob("*") if p.is_file()] if media.exists() else []


# --- an ImageFolder -----------------------------------------------------------------------------------------------


def test_an_image_folder_becomes_ready_sets_of_n_with_provenance(campaign, tmp_path):
    rows = rows_for("dalle-3", "a doctor", 2 * N) + rows_for("dalle-3", "a nurse", N, start=10)
    folder = image_folder(tmp_path / "import", rows)

    result = _import(campaign, folder)

    assert (result.populations, result.images, result.new_generators) == (3, 3 * N, ("dalle-3",))
    generator = Generator.objects.get(name="dalle-3")
    assert generator.backend == Generator.Backend.IMPORTED
    assert generator.settings == {"width": SIZE, "height": SIZE}
    assert campaign.generators.filter(pk=generator.pk).exists()
    populations = Population.objects.filter(generator=generator).order_by("pk")
    assert [(p.prompt.caption, p.status, p.uses, p.size) for p in populations] == [
        ("a doctor", "ready", 0, N),
        ("a doctor", "ready", 0, N),
        ("a nurse", "ready", 0, N),
    ]
    # The first set holds the first N rows in file order, their seeds, and what the import said of each.
    first = list(populations[0].images.order_by("index"))
    assert populations[0].seeds == [0, 1, 2]
    assert [image.seed for image in first] == [0, 1, 2]
    assert first[1].provenance == {
        "kind": "import",
        "source": "metadata.jsonl",
        "row": 2,
        "file_name": "dalle-3-1.png",
        "generator": "dalle-3",
        "prompt": "a doctor",
        "seed": 1,
        "set": None,
    }
    # Stored in the canonical PNG form: the same bytes canonical_png makes of the file, and their hash.
    original = (folder / "dalle-3-1.png").read_bytes()
    with first[1].file.open("rb") as handle:
        stored = handle.read()
    assert stored == canonical_png(original).data
    assert first[1].sha256 == hashlib.sha256(stored).hexdigest()


def test_importing_the_same_folder_again_adds_nothing(campaign, tmp_path, settings):
    folder = image_folder(tmp_path / "import", rows_for("dalle-3", "a doctor", N))
    _import(campaign, folder)
    files = _stored_files(settings)

    again = _import(campaign, folder)

    assert (again.populations, again.images, again.already_imported) == (0, 0, 1)
    assert Population.objects.count() == 1
    assert Image.objects.count() == N
    assert _stored_files(settings) == files


def test_sets_by_label_and_a_csv_metadata_file(campaign, tmp_path):
    rows = rows_for("sdxl", "a doctor", N, set="b") + rows_for("sdxl", "a doctor", N, start=5, set="a")
    folder = image_folder(tmp_path / "import", rows, csv=True)

    result = _import(campaign, folder)

    assert result.populations == 2
    seeds = sorted(p.seeds for p in Population.objects.all())
    assert seeds == [[0, 1, 2], [5, 6, 7]]
    assert Image.objects.filter(provenance__source="metadata.csv", provenance__set="a").count() == N


def test_every_bad_row_of_a_folder_is_named_and_nothing_is_stored(campaign, tmp_path, settings):
    GeneratorFactory(name="tiny-local")  # a pipeline the workers run
    rows = [
        *rows_for("dalle-3", "a doctor", N),  # good
        {"file_name": "lost.png", "prompt": "a doctor", "generator": "dalle-3", "_missing": True},
        {"file_name": "x1.png", "prompt": "a plumber", "generator": "dalle-3"},
        {"file_name": "x2.png", "prompt": "a nurse", "generator": "tiny-local"},
        {"file_name": "x3.png", "prompt": "a nurse", "generator": "Not A Slug!"},
        {"file_name": "x4.png", "prompt": "a nurse", "generator": "dalle-3", "seed": "soon"},
        {"file_name": "broken.png", "prompt": "a nurse", "generator": "mj"},
        {"file_name": "black.png", "prompt": "a nurse", "generator": "mj"},
        {"file_name": "big.png", "prompt": "a nurse", "generator": "mj"},
        {"prompt": "a nurse", "generator": "mj"},
    ]
    images = {
        "broken.png": picture(1)[:40],
        "black.png": picture(2, blank=True),
        "big.png": picture(3, size=(SIZE * 2, SIZE)),
    }
    folder = image_folder(tmp_path / "import", rows, images=images)
    (folder / "metadata.jsonl").write_text((folder / "metadata.jsonl").read_text() + "{not json\n")

    message = _refusal(campaign, folder)

    expected = [
        "metadata.jsonl line 4: no image file 'lost.png'",
        "metadata.jsonl line 5: prompt 'a plumber' is not one of campaign",
        "metadata.jsonl line 6: generator 'tiny-local' is already a diffusers pipeline the workers run",
        "metadata.jsonl line 7: generator 'Not A Slug!' is not a name the arena takes",
        "metadata.jsonl line 8: seed 'soon' is not a whole number",
        "metadata.jsonl line 9: broken.png is not an image the arena stores",
        "metadata.jsonl line 10: black.png is blank",
        f"metadata.jsonl line 11: big.png is {2 * SIZE}x{SIZE}; campaign",
        "metadata.jsonl line 12: no file_name",
        "metadata.jsonl line 13: not valid JSON",
    ]
    for fragment in expected:
        assert fragment in message, fragment
    assert "line 1:" not in message
    assert "line 2:" not in message
    assert "line 3:" not in message
    assert _stored_files(settings) == []


def test_a_set_short_of_n_names_its_rows(campaign, tmp_path):
    rows = rows_for("dalle-3", "a doctor", N + 1) + rows_for("mj", "a nurse", N - 1, set="s1")
    message = _refusal(campaign, image_folder(tmp_path / "import", rows))

    assert "metadata.jsonl line 4: generator 'dalle-3' has 4 image(s) without a set" in message
    assert "line 1:" not in message
    assert "metadata.jsonl line 5: set s1 of generator 'mj' for prompt 'a nurse' has 2 image(s)" in message
    assert "metadata.jsonl line 6: set s1" in message


def test_images_must_have_the_size_the_campaign_already_shows(campaign, tmp_path):
    campaign.generators.add(GeneratorFactory(settings={"width": 64, "height": 64}))
    message = _refusal(campaign, image_folder(tmp_path / "import", rows_for("dalle-3", "a doctor", N)))
    assert f"metadata.jsonl line 1: dalle-3-0.png is {SIZE}x{SIZE}; campaign {campaign.slug!r} shows 64x64" in message


def test_an_image_imported_under_another_set_is_refused(campaign, tmp_path):
    _import(campaign, image_folder(tmp_path / "one", rows_for("dalle-3", "a doctor", N)))
    # The same three files and three new ones, regrouped: the old images would be shown twice.
    rows = rows_for("dalle-3", "a doctor", N, start=1) + rows_for("dalle-3", "a doctor", N - 1, start=20)
    folder = image_folder(tmp_path / "two", rows)
    (folder / "dalle-3-1.png").write_bytes((tmp_path / "one" / "dalle-3-1.png").read_bytes())
    (folder / "dalle-3-2.png").write_bytes((tmp_path / "one" / "dalle-3-2.png").read_bytes())
    with pytest.raises(ImportRefused, match="line 1: this image is already in set"):
        _import(campaign, folder)
    assert Population.objects.count() == 1


def test_an_imported_generator_is_never_claimed_or_planned(campaign, tmp_path):
    from annotation.services import sync_campaign_demand
    from generation import services

    _import(campaign, image_folder(tmp_path / "import", rows_for("dalle-3", "a doctor", N)))
    sync_campaign_demand(campaign=campaign)
    imported = Generator.objects.get(name="dalle-3")
    # Even a pending row written by hand is never handed to a worker.
    Population.objects.create(generator=imported, prompt=campaign.prompts.first(), size=N, seeds=[1, 2, 3])

    assert services.plan_populations() == 0
    assert services.claim_generation_batch(worker="w", max_images=64, lease=services.FAILURE_BACKOFF) == []
    assert not imported.demands.exists()


# --- Parquet ------------------------------------------------------------------------------------------------------


def test_a_parquet_file_as_datasets_writes_it(campaign, tmp_path):
    path = parquet_file(tmp_path / "sets.parquet", rows_for("imagen", "a nurse", 2 * N))

    result = _import(campaign, path)

    assert (result.populations, result.images) == (2, 2 * N)
    image = Image.objects.get(provenance__row=4)
    assert image.provenance["source"] == "sets.parquet"
    assert image.provenance["file_name"] == "imagen-4.png"
    assert image.seed == 4
    assert _import(campaign, path).populations == 0


def test_bad_parquet_rows_are_named(campaign, tmp_path):
    rows = rows_for("imagen", "a nurse", N) + [
        {"file_name": "j.png", "prompt": "an astronaut", "generator": "imagen", "seed": 9},
        {"file_name": "k.png", "prompt": "a nurse", "generator": None, "seed": 9},
    ]
    path = parquet_file(tmp_path / "sets.parquet", rows, images={"j.png": picture(5, fmt="JPEG")})

    message = _refusal(campaign, path)

    assert "sets.parquet row 3: prompt 'an astronaut' is not one of" in message
    assert "sets.parquet row 4: no generator" in message
    assert "row 0" not in message


def test_a_plain_parquet_table_with_image_bytes_and_a_missing_image(campaign, tmp_path):
    table = pa.table(
        {
            "image": [picture(i) for i in range(N)] + [None],
            "prompt": ["a doctor"] * (N + 1),
            "generator": ["flux-pro"] * (N + 1),
        }
    )
    pq.write_table(table, tmp_path / "plain.parquet")
    message = _refusal(campaign, tmp_path / "plain.parquet")
    assert f"plain.parquet row {N}: no image bytes in the 'image' column" in message

    pq.write_table(table.slice(0, N), tmp_path / "plain.parquet")
    assert _import(campaign, tmp_path / "plain.parquet").populations == 1
    assert Image.objects.filter(provenance__seed=None).count() == N


def test_a_table_without_the_fields_is_refused_whole(campaign, tmp_path):
    pq.write_table(pa.table({"picture_url": ["x"], "caption": ["a doctor"]}), tmp_path / "t.parquet")
    with pytest.raises(ImportFileError, match="t.parquet has no an 'image' column of image bytes, prompt, generator"):
        read_import(tmp_path / "t.parquet")


# --- a datasets save_to_disk folder -----------------------------------------------------------------------------


def test_a_save_to_disk_folder(campaign, tmp_path):
    folder = saved_dataset(tmp_path / "saved", rows_for("gpt-image", "a doctor", N))
    assert (folder / "state.json").exists()

    result = _import(campaign, folder)

    assert (result.populations, result.new_generators) == (1, ("gpt-image",))
    source = Image.objects.first().provenance["source"]
    assert source.endswith(".arrow")
    assert json.loads((folder / "state.json").read_text())["_data_files"]
    assert _import(campaign, folder).already_imported == 1


def test_bad_rows_of_a_save_to_disk_folder_are_named(campaign, tmp_path):
    rows = rows_for("gpt-image", "a doctor", N) + rows_for("gpt-image", "a doctor", 1, start=7)
    folder = saved_dataset(tmp_path / "saved", rows, images={"gpt-image-7.png": b"GIF89a not an image"})

    message = _refusal(campaign, folder)

    assert "row 3: gpt-image-7.png is not an image the arena stores" in message
    assert "row 3: generator 'gpt-image' has 4 image(s)" not in message  # a bad image is not also counted


# --- a zip ------------------------------------------------------------------------------------------------------


def test_a_zip_of_a_folder_reads_as_the_folder(campaign, tmp_path):
    folder = image_folder(tmp_path / "import", rows_for("dalle-3", "a doctor", N))
    result = import_populations(campaign=campaign, read=read_import_zip(zipped(folder, under="my-sets")))
    assert result.populations == 1
    assert Image.objects.first().provenance["source"] == "my-sets/metadata.jsonl"


def test_a_zip_that_escapes_its_folder_is_refused(tmp_path):
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../evil/metadata.jsonl", "{}")
    with pytest.raises(ImportFileError, match="would land outside the import folder"):
        read_import_zip(buffer.getvalue())
    with pytest.raises(ImportFileError, match="not a readable zip"):
        read_import_zip(b"PK not a zip")


def test_a_folder_with_nothing_to_import_says_what_it_wants(tmp_path):
    PILImage.new("RGB", (4, 4)).save(tmp_path / "lonely.png")
    with pytest.raises(ImportFileError, match="metadata.jsonl or metadata.csv"):
        read_import(tmp_path)
