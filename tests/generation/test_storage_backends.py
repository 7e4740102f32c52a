"""The same image paths on local media and on S3-compatible object storage (moto's server): store, serve, degrade,
measure, export.

Every reader and writer of image files goes through Django's storage API (open, save, exists, url, delete), never a
local path, so a deployment of several hosts can keep its media in one bucket. Each test runs once per backend
(tests/object_storage.py) and asserts what a user notices: the bytes that come back, the copies made, the measures,
the exported files; on S3 nothing may land on the local disk.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import re
import socket
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from PIL import Image as PILImage

from arena.models import Comparison
from core import media_storage as media_storage_module
from core.errors import StorageUnavailable
from exports.services import ExportError
from generation.media_io import read_stored_many, save_many
from generation.models import Image, Population
from generation.services import ImageInput, ImportedSet, get_or_create_decoy, store_imported_sets
from metrics.config import parse_attributes
from metrics.models import AttributeMeasure
from metrics.services import measure_populations
from tests.arena.conftest import arena_campaign, png  # noqa: F401 (a fixture, shared)
from tests.exports.conftest import voted_campaign  # noqa: F401 (a fixture, shared)
from tests.exports.helpers import export
from tests.factories import GeneratorFactory, PromptFactory
from tests.metrics.conftest import drawn, store_pictures
from tests.object_storage import (  # noqa: F401 (fixtures)
    S3,
    URL_LIFETIME_S,
    make_bucket,
    media_storage,
    s3_endpoint,
    s3_settings,
    use_s3,
)
from tests.test_settings import manage

pytestmark = pytest.mark.django_db


def test_a_bucket_name_switches_media_to_s3_with_the_settings_the_tests_use(tmp_path):
    # Given the variables a deployment sets for an S3-compatible server (the keys stay in the environment)
    wanted = s3_settings("http://objects.internal:9000", "poparena-media")
    code = (
        "import json; from django.conf import settings as s;"
        f"print(json.dumps({{n: getattr(s, n) for n in {sorted(wanted)!r}}}));"
        "print(s.STORAGES['default']['BACKEND'])"
    )
    result = manage(
        tmp_path,
        "shell",
        "--no-imports",
        "-c",
        code,
        AWS_STORAGE_BUCKET_NAME="poparena-media",
        AWS_S3_ENDPOINT_URL="http://objects.internal:9000",
        AWS_S3_REGION_NAME="us-east-1",
        AWS_QUERYSTRING_EXPIRE=str(URL_LIFETIME_S),
    )
    assert result.returncode == 0, result.stderr
    values, backend = result.stdout.strip().splitlines()
    # Then media goes to django-storages' S3 backend with exactly these settings: presigned URLs expire.
    assert backend == "core.media_storage.S3MediaStorage"
    assert json.loads(values) == wanted


@pytest.mark.parametrize("raw", ["soon", "-1", "604801"])
def test_a_presigned_url_lifetime_that_is_not_seconds_up_to_a_week_stops_the_start(tmp_path, raw):
    result = manage(tmp_path, "check", AWS_STORAGE_BUCKET_NAME="poparena-media", AWS_QUERYSTRING_EXPIRE=raw)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("PopArena configuration error: AWS_QUERYSTRING_EXPIRE: ")
    assert "Traceback" not in result.stderr


MINTED = re.compile(r"^/i/[A-Za-z0-9_-]+/[lr](0|[1-9][0-9]*)/[0-9a-f]{32}\.png$")


def colours(picture: PILImage.Image) -> int:
    return len(picture.convert("RGB").getcolors(maxcolors=1 << 24) or [])


def stored_bytes(image: Image) -> bytes:
    with image.file.open("rb") as handle:
        return handle.read()


def test_images_stored_by_the_generation_service_read_back_byte_for_byte(media_storage):  # noqa: F811
    # Given three pictures stored as an imported set (the path every stored image takes: canonical PNG, random name)
    pictures = [png((200, 10 * i, 30), size=64) for i in range(3)]
    inputs = [
        ImageInput(
            index=i, data=data, extension="png", seed=i, prompt="a red circle", truncated=False, width=64, height=64
        )
        for i, data in enumerate(pictures)
    ]
    generator, prompt = GeneratorFactory(name="imported"), PromptFactory(caption="a red circle")
    [population] = store_imported_sets(sets=[ImportedSet(generator=generator, prompt=prompt, images=inputs)])

    # Then each reads back as what was recorded, under its own name in the storage
    images = list(population.images.order_by("index"))
    assert len(images) == 3
    names = {image.file.name for image in images}
    assert len(names) == 3
    for image, original in zip(images, pictures, strict=True):
        assert default_storage.exists(image.file.name)
        data = stored_bytes(image)
        assert hashlib.sha256(data).hexdigest() == image.sha256
        with PILImage.open(io.BytesIO(data)) as decoded, PILImage.open(io.BytesIO(original)) as source:
            assert decoded.size == (64, 64)
            assert decoded.convert("RGB").tobytes() == source.convert("RGB").tobytes()
    # And a staff page's direct link is the storage's: a local media URL, or a presigned URL that expires.
    url = images[0].file.url
    if media_storage == S3:
        query = parse_qs(urlsplit(url).query)
        assert query["X-Amz-Expires"] == [str(URL_LIFETIME_S)]
        assert "X-Amz-Signature" in query
    else:
        assert url.startswith(settings.MEDIA_URL)


def test_a_comparison_s_images_come_through_its_minted_urls_never_from_the_bucket(
    media_storage,  # noqa: F811
    arena_campaign,  # noqa: F811
):
    arena_campaign()
    client = Client()
    response = client.post("/api/v1/campaigns/study/comparisons/next", {}, content_type="application/json")
    assert response.status_code == 200, response.content
    payload = response.json()
    comparison = Comparison.objects.get(token=payload["token"])
    for side, population_id in (("left", comparison.left_population_id), ("right", comparison.right_population_id)):
        stored = list(Image.objects.filter(population_id=population_id).order_by("index"))
        urls = payload[side]["images"]
        assert len(urls) == len(stored)
        for url, image in zip(urls, stored, strict=True):
            # The payload names no bucket, endpoint or stored file: only the comparison's own addresses.
            assert MINTED.match(url), url
            served = client.get(url)
            assert served.status_code == 200
            assert served["Content-Type"] == "image/png"
            # The stored picture's pixels (padded to the comparison's one length: arena.image_urls).
            with (
                PILImage.open(io.BytesIO(served.content)) as shown,
                PILImage.open(io.BytesIO(stored_bytes(image))) as kept,
            ):
                assert shown.convert("RGB").tobytes() == kept.convert("RGB").tobytes()
    assert "X-Amz" not in response.content.decode()


def test_a_gold_decoy_is_made_from_the_stored_images_and_stored_beside_them(
    media_storage,  # noqa: F811
    arena_campaign,  # noqa: F811
):
    campaign = arena_campaign(generators=2, per_queue=1, size=3)
    real = Population.objects.filter(generator__in=campaign.generators.all()).first()
    assert real is not None

    decoy = get_or_create_decoy(population=real)

    assert get_or_create_decoy(population=real) == decoy, "made once"
    originals = list(real.images.order_by("index"))
    copies = list(decoy.images.order_by("index"))
    assert len(copies) == len(originals) == 3
    first = stored_bytes(originals[0])
    with PILImage.open(io.BytesIO(first)) as source:
        source_colours = colours(source)
    for original, copy in zip(originals, copies, strict=True):
        data = stored_bytes(copy)
        assert hashlib.sha256(data).hexdigest() == copy.sha256 != original.sha256
        with PILImage.open(io.BytesIO(data)) as picture:
            assert picture.size == (original.width, original.height)
            # A uniform square turns into noise: many colours where there was one.
            assert colours(picture) > 50 * source_colours


def test_metrics_read_the_stored_images(media_storage):  # noqa: F811
    # Given a set of four red and two blue circles
    generator, prompt = GeneratorFactory(name="skewed"), PromptFactory(caption="a circle")
    population = store_pictures(generator, prompt, [drawn("red")] * 4 + [drawn("blue", "white")] * 2)
    specs = parse_attributes({"colour": {"backend": "shapes", "classes": ["red", "green", "blue"]}})

    report = measure_populations(population_ids=[population.pk], attributes=specs)

    assert report.failed == []
    assert report.measured == 1
    assert report.images == 6
    shares = AttributeMeasure.objects.get(population=population, attribute="colour").shares
    assert shares["red"] == pytest.approx(4 / 6)
    assert shares["blue"] == pytest.approx(2 / 6)


def exported_images(folder: Path) -> dict[str, bytes]:
    return {p.name.split(".")[0]: p.read_bytes() for p in (folder / "images").rglob("*.png")}


def test_an_export_copies_the_stored_images_and_names_a_missing_one(
    media_storage,  # noqa: F811
    voted_campaign,  # noqa: F811
    tmp_path,
):
    campaign = voted_campaign(participants=4, per_participant=3, generators=2, prompts=1, per_queue=1, size=2)
    out = tmp_path / "exports" / "first"

    result = export(campaign, "popalign-csv", out, criterion="diversity")

    # Every image the export holds is a stored one, byte for byte, named by its hash.
    copied = exported_images(out)
    assert copied, "the export copied no image"
    stored = {image.sha256: image for image in Image.objects.filter(sha256__in=copied)}
    assert set(stored) == set(copied)
    for sha, data in copied.items():
        assert hashlib.sha256(data).hexdigest() == sha
        assert stored_bytes(stored[sha]) == data
    assert result.manifest["file_totals"]["files"] >= len(copied)

    # Given one exported image deleted from the storage, a new export names it as missing (the same words on both).
    gone = next(iter(stored.values()))
    names = list(Image.objects.filter(sha256=gone.sha256).values_list("file", flat=True))
    for name in names:
        default_storage.delete(name)
        assert not default_storage.exists(name)
    pattern = f"image file ({'|'.join(map(re.escape, names))}) is missing from media storage; pass skip_missing "
    with pytest.raises(ExportError, match=pattern):
        export(campaign, "popalign-csv", tmp_path / "exports" / "second", criterion="diversity")
    assert not (tmp_path / "exports" / "second").exists()


def make_storage_unreachable(backend: str, settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The media storage as a web host sees it while its storage is down: S3 at a port nothing listens on (one
    try, as a client whose retries have run out), or a disk that answers EIO."""
    if backend == S3:
        from botocore.config import Config

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            dead = probe.getsockname()[1]
        settings.AWS_S3_ENDPOINT_URL = f"http://127.0.0.1:{dead}"
        settings.AWS_S3_CLIENT_CONFIG = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=2)
        settings.STORAGES = {**settings.STORAGES}  # built again from the settings above
    else:
        from django.core.files.storage import FileSystemStorage

        def broken(self, name, mode="rb"):  # type: ignore[no-untyped-def]
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(FileSystemStorage, "_open", broken)


def test_a_comparison_s_image_answers_503_with_retry_after_while_the_storage_is_unreachable(
    media_storage,  # noqa: F811
    arena_campaign,  # noqa: F811
    settings,
    monkeypatch,
    caplog,
):
    # Given a comparison whose pictures were served while the storage was up,
    arena_campaign()
    client = Client()
    payload = client.post("/api/v1/campaigns/study/comparisons/next", {}, content_type="application/json").json()
    url = payload["left"]["images"][0]
    assert client.get(url).status_code == 200
    endpoint = settings.AWS_S3_ENDPOINT_URL if media_storage == S3 else None
    with monkeypatch.context() as down:
        make_storage_unreachable(media_storage, settings, down)
        caplog.clear()
        # when the storage cannot be reached, the same URL answers 503 in the API's error shape with Retry-After,
        served = client.get(url)
        assert served.status_code == 503
        assert served["Retry-After"] == "5"
        assert served["Cache-Control"] == "no-store"
        error = served.json()["error"]
        assert error["code"] == "storage_unavailable"
        assert "try again in 5 s" in error["message"]
        # naming neither the storage's address nor the stored file, and logged once, by the error's type.
        for secret in ("127.0.0.1", "X-Amz", Image.objects.first().file.name.split("/")[-1]):
            assert secret not in served.content.decode()
        warnings = [r for r in caplog.records if "media storage unreachable" in r.getMessage()]
        assert len(warnings) == 1
        assert "127.0.0.1" not in warnings[0].getMessage()
    if media_storage == S3:
        settings.AWS_S3_ENDPOINT_URL = endpoint
        settings.AWS_S3_CLIENT_CONFIG = None
        settings.STORAGES = {**settings.STORAGES}
    # Once it is back, the URL shows the picture again.
    again = client.get(url)
    assert again.status_code == 200
    assert again["Content-Type"] == "image/png"


def test_an_export_stops_with_503_while_the_storage_is_unreachable_and_leaves_nothing_even_when_skipping_missing(
    media_storage,  # noqa: F811
    voted_campaign,  # noqa: F811
    settings,
    monkeypatch,
    tmp_path,
):
    campaign = voted_campaign(participants=4, per_participant=3, generators=2, prompts=1, per_queue=1, size=2)
    make_storage_unreachable(media_storage, settings, monkeypatch)
    out = tmp_path / "exports" / "during"
    # Leaving out every pair whose images "could not be read" would make a whole-looking, empty export.
    with pytest.raises(StorageUnavailable, match="media storage cannot be reached"):
        export(campaign, "popalign-csv", out, criterion="diversity", skip_missing=True)
    assert not out.exists()
    assert not (out.parent.exists() and list(out.parent.iterdir())), "a staging folder was left"


def test_the_io_threads_of_a_bucket_storage_share_one_boto3_session(settings, monkeypatch, s3_endpoint):  # noqa: F811
    # Given media in a bucket, a storage built afresh, and sixteen stored files,
    use_s3(settings, monkeypatch, s3_endpoint, make_bucket(s3_endpoint))
    made = []
    real_session = boto3.Session

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        made.append(threading.current_thread().name)
        return real_session(*args, **kwargs)

    monkeypatch.setattr(boto3, "Session", counted)
    monkeypatch.setattr(media_storage_module, "_sessions", {})  # as in a process that has not made one yet
    files = [(f"shared/{i}.bin", bytes([i]) * (100 + i)) for i in range(16)]
    names = save_many(default_storage, files)
    # when the I/O threads read them all back together (each thread starting with no connection of its own),
    back = read_stored_many(default_storage, names)
    # then every file comes back whole, in order, and the whole process parsed botocore's models once: one session
    # (about 100 ms of CPU each, paid by every thread before its first request when each made its own), which a
    # storage built again (new settings, or Django's lazy default storage built by two threads at once) reuses.
    assert back == [data for _, data in files]
    assert len(made) == 1, made
    settings.STORAGES = {**settings.STORAGES}
    assert read_stored_many(default_storage, names[:4]) == [data for _, data in files[:4]]
    assert len(made) == 1, made


def test_a_local_media_file_answers_503_with_retry_after_while_the_disk_fails(monkeypatch, caplog):
    # Given a picture in local media that a staff page links to directly,
    name = default_storage.save("direct/seen.png", ContentFile(png((10, 20, 30), size=16)))
    client = Client()
    url = settings.MEDIA_URL + name
    assert client.get(url).status_code == 200
    real_open = Path.open

    def failing(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(settings.MEDIA_ROOT) in self.parents:
            raise OSError(errno.EIO, "Input/output error")
        return real_open(self, *args, **kwargs)

    with monkeypatch.context() as down:
        down.setattr(Path, "open", failing)
        caplog.clear()
        # when the disk answers EIO, the link answers 503 in the API's error shape with Retry-After, not a 500,
        served = client.get(url)
        assert served.status_code == 503
        assert served["Retry-After"] == "5"
        assert served["Cache-Control"] == "no-store"
        assert served.json()["error"]["code"] == "storage_unavailable"
        assert "seen" not in served.content.decode()
        assert [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()] == [
            "media storage unreachable while serving a media file: OSError"
        ]
        # while a file that is not there is still a 404.
        assert client.get(settings.MEDIA_URL + "direct/never.png").status_code == 404
    # Once the disk is back, the same link serves the picture.
    assert client.get(url).status_code == 200


def test_small_and_multipart_files_reach_the_bucket_whole_with_their_content_type(settings, monkeypatch, s3_endpoint):  # noqa: F811
    # Given media in a bucket whose transfer manager splits files from 5 MiB on (S3's smallest part),
    from boto3.s3.transfer import TransferConfig

    use_s3(settings, monkeypatch, s3_endpoint, make_bucket(s3_endpoint))
    settings.AWS_S3_TRANSFER_CONFIG = TransferConfig(
        multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024
    )
    settings.STORAGES = {**settings.STORAGES}
    small = png((1, 2, 3), size=32)
    large = bytes(range(256)) * (6 * 1024 * 4)  # 6 MiB: two parts
    # when a picture (one PutObject) and a large file (a multipart upload) are saved,
    names = [
        default_storage.save("kinds/small.png", ContentFile(small)),
        default_storage.save("kinds/big.bin", ContentFile(large)),
    ]
    client = default_storage.client
    # then each reads back byte for byte with the content type its name gives, neither overwrote the other's
    # name, and the large one went up in parts (its ETag says how many).
    for name, data, kind in zip(names, [small, large], ["image/png", "application/octet-stream"], strict=True):
        head = client.head_object(Bucket=settings.AWS_STORAGE_BUCKET_NAME, Key=name)
        assert head["ContentType"] == kind
        assert head["ContentLength"] == len(data)
        assert read_stored_many(default_storage, [name]) == [data]
    assert client.head_object(Bucket=settings.AWS_STORAGE_BUCKET_NAME, Key=names[1])["ETag"].endswith('-2"')
    assert "-" not in client.head_object(Bucket=settings.AWS_STORAGE_BUCKET_NAME, Key=names[0])["ETag"]
    # And saving under a taken name picks another name, as on the local disk (AWS_S3_FILE_OVERWRITE is off).
    again = default_storage.save("kinds/small.png", ContentFile(b"other"))
    assert again != names[0]
    assert read_stored_many(default_storage, [names[0], again]) == [small, b"other"]
