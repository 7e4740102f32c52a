"""Image files: what an upload must be (PNG, JPEG or WebP, whole, one frame) and the one canonical PNG every
stored image becomes, so that format, metadata and encoder tell no generator apart."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone
from PIL import Image, PngImagePlugin

from generation.image_files import PAD_MIN, BadImage, canonical_png, inspect_image, pad_png, padded_length
from generation.models import Population
from generation.services import (
    ImageInput,
    UploadedImage,
    get_or_create_decoy,
    store_population,
    store_uploaded_population,
)
from tests.factories import GeneratorFactory, PromptFactory

# Pixels with detail (a gradient and noise), so encoders and their settings produce different files.
PIXELS = np.random.default_rng(7).integers(0, 256, size=(24, 40, 3), dtype=np.uint8)


def encode(fmt: str, size: tuple[int, int] = (6, 4), **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "purple").save(buffer, format=fmt, **options)
    return buffer.getvalue()


def saved(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def picture() -> Image.Image:
    return Image.fromarray(PIXELS, "RGB")


def chunks(data: bytes) -> list[bytes]:
    """The chunk types of a PNG, in order; asserts the file ends right after IEND."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, types = 8, []
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        types.append(data[position + 4 : position + 8])
        position += 12 + length
        if types[-1] == b"IEND":
            break
    assert position == len(data), "bytes after IEND"
    return types


def with_text() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "Steps: 20, Model: sdxl-base")
    info.add_itxt("Software", "generator-b 1.0", zip=True)
    return saved(picture(), pnginfo=info)


def with_icc() -> bytes:
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return saved(picture(), icc_profile=profile)


def with_exif() -> bytes:
    exif = Image.new("RGB", (1, 1)).getexif()
    exif[0x0131] = "generator-b 1.0"  # Software
    return saved(picture(), exif=exif, dpi=(300, 300))


XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF>'
    b'<rdf:Description CreatorTool="generator-b 1.0"/></rdf:RDF></x:xmpmeta>'
)


def with_xmp() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    return saved(picture(), pnginfo=info)


def webp_with_exif_and_xmp() -> bytes:
    exif = Image.new("RGB", (1, 1)).getexif()
    exif[0x0131] = "generator-b 1.0"  # Software
    return saved(picture(), "WEBP", lossless=True, exif=exif, xmp=XMP)


def with_trailing_bytes() -> bytes:
    return saved(picture()) + b"generator-b was here"


DIRTY = {
    "text chunks": with_text,
    "an ICC profile": with_icc,
    "EXIF and pHYs": with_exif,
    "bytes after IEND": with_trailing_bytes,
    "another compression level": lambda: saved(picture(), compress_level=9),
    "no compression": lambda: saved(picture(), compress_level=0),
    "an opaque alpha channel": lambda: saved(picture().convert("RGBA")),
    "WebP, lossless": lambda: saved(picture(), "WEBP", lossless=True),
    "XMP": with_xmp,
    "WebP with EXIF and XMP": webp_with_exif_and_xmp,
}


# --- the checks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "extension"), [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp")])
def test_plain_images_are_accepted_with_their_format_and_size(fmt, extension):
    facts = inspect_image(encode(fmt))
    assert (facts.extension, facts.width, facts.height) == (extension, 6, 4)


def test_an_animation_is_refused():
    frames = [Image.new("RGB", (4, 4), colour) for colour in ("red", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="PNG", save_all=True, append_images=frames[1:])
    with pytest.raises(BadImage, match="an animation of 2 frames"):
        inspect_image(buffer.getvalue())
    with pytest.raises(BadImage, match="an animation of 2 frames"):
        canonical_png(buffer.getvalue())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b"GIF89a" + b"\x00" * 20, "not a readable image"),
        (encode("PNG")[:30], "not a readable image"),
        (encode("PNG", size=(5000, 2)), "5000x2 pixels is larger than 4096x4096"),
        (encode("BMP"), "a BMP file; upload PNG, JPEG or WebP"),
    ],
)
def test_other_bytes_are_refused_with_the_reason(data, message):
    with pytest.raises(BadImage, match=message):
        inspect_image(data)
    with pytest.raises(BadImage, match=message):
        canonical_png(data)


# --- the canonical form -------------------------------------------------------------------------------


def test_the_canonical_png_holds_the_pixels_and_nothing_else():
    canonical = canonical_png(with_text())
    assert chunks(canonical.data) == [b"IHDR", b"IDAT", b"IEND"]
    assert (canonical.width, canonical.height, canonical.extension) == (40, 24, "png")
    with Image.open(io.BytesIO(canonical.data)) as decoded:
        assert decoded.mode == "RGB"
        assert decoded.info == {}
        assert np.array_equal(np.asarray(decoded), PIXELS)


@pytest.mark.parametrize("dirty", [with_xmp, webp_with_exif_and_xmp])
def test_xmp_and_webp_exif_are_carried_by_the_upload_and_gone_from_its_canonical_png(dirty):
    data = dirty()
    with Image.open(io.BytesIO(data)) as uploaded:
        assert "generator-b 1.0" in str(uploaded.info.get("xmp") or uploaded.info.get("XML:com.adobe.xmp"))
        assert uploaded.format != "WEBP" or uploaded.getexif()[0x0131] == "generator-b 1.0"
    canonical = canonical_png(data).data
    assert b"generator-b" not in canonical
    assert chunks(canonical) == [b"IHDR", b"IDAT", b"IEND"]
    with Image.open(io.BytesIO(canonical)) as stored:
        assert stored.info == {}
        assert not stored.getexif()


@pytest.mark.parametrize("variant", sorted(DIRTY))
def test_the_same_pixels_in_any_file_become_the_same_bytes(variant):
    clean = canonical_png(saved(picture())).data
    dirty = DIRTY[variant]()
    assert dirty != saved(picture())  # the variant really is another file
    assert canonical_png(dirty).data == clean


def test_a_jpeg_becomes_the_canonical_png_of_its_decoded_pixels():
    jpeg = saved(picture(), "JPEG", quality=85)
    with Image.open(io.BytesIO(jpeg)) as decoded:
        pixels_as_png = saved(decoded.convert("RGB"))
    assert canonical_png(jpeg).data == canonical_png(pixels_as_png).data
    assert chunks(canonical_png(jpeg).data) == [b"IHDR", b"IDAT", b"IEND"]


def test_re_encoding_a_canonical_png_changes_nothing():
    once = canonical_png(with_exif()).data
    assert canonical_png(once).data == once


def test_other_pixels_give_other_bytes():
    other = PIXELS.copy()
    other[0, 0, 0] ^= 1
    assert canonical_png(saved(Image.fromarray(other, "RGB"))).data != canonical_png(saved(picture())).data


def test_a_large_image_is_compressed_with_the_default_level_whatever_it_came_with():
    large = Image.fromarray(np.tile(PIXELS, (10, 10, 1)), "RGB")  # 400x240 pixels
    fast, small = saved(large, compress_level=1), saved(large, compress_level=9)
    assert canonical_png(fast).data == canonical_png(small).data
    # The stream's zlib header says which level made it: level 6 is zlib's default (FLEVEL 2).
    data = canonical_png(fast).data
    idat = data.index(b"IDAT") + 4
    assert (data[idat + 1] >> 6) == 2


# --- every path that stores an image ------------------------------------------------------------------


def held_population(worker: str, *, size: int, generator=None, prompt=None) -> Population:
    return Population.objects.create(
        generator=generator or GeneratorFactory(settings={"steps": 2, "width": 40, "height": 24}),
        prompt=prompt or PromptFactory(),
        size=size,
        seeds=list(range(size)),
        status=Population.Status.GENERATING,
        claimed_by=worker,
        lease_until=timezone.now() + timedelta(minutes=2),
    )


def stored_bytes(population: Population) -> list[bytes]:
    out = []
    for image in population.images.order_by("index"):
        with image.file.open("rb") as handle:
            data = handle.read()
        assert image.file.name.endswith(".png")
        assert image.sha256 == hashlib.sha256(data).hexdigest()
        out.append(data)
    return out


@pytest.mark.django_db
def test_an_upload_with_metadata_trailing_bytes_or_as_jpeg_is_stored_as_the_clean_pixels_canonical_png():
    # Given a remote worker's upload of one picture in every dirty form,
    jpeg = saved(picture(), "JPEG", quality=90)
    files = [DIRTY[name]() for name in sorted(DIRTY)] + [jpeg]
    population = held_population("remote-1", size=len(files))
    uploads = [UploadedImage(data=data, facts=inspect_image(data)) for data in files]
    # when it is stored,
    assert store_uploaded_population(worker="remote-1", population_id=population.pk, uploads=uploads, generation_ms=5)
    # then every file is the canonical PNG of the clean pixels (the JPEG: of its own decoded pixels).
    stored = stored_bytes(population)
    clean = canonical_png(saved(picture())).data
    assert stored[:-1] == [clean] * len(DIRTY)
    with Image.open(io.BytesIO(jpeg)) as decoded:
        assert stored[-1] == canonical_png(saved(decoded.convert("RGB"))).data


@pytest.mark.django_db
def test_two_generators_images_of_the_same_pixels_are_stored_byte_identical():
    # Given two generators whose pipelines encode the same picture differently (level, metadata),
    prompt = PromptFactory()
    first = held_population("worker-a", size=1, prompt=prompt)
    second = held_population("worker-b", size=1, prompt=prompt)
    encodings = {
        "worker-a": saved(picture(), compress_level=1),
        "worker-b": with_text(),
    }
    # when each worker stores its set,
    for population, worker in ((first, "worker-a"), (second, "worker-b")):
        image = ImageInput(
            index=0, data=encodings[worker], extension="png", seed=0, prompt="p", truncated=False, width=40, height=24
        )
        assert store_population(worker=worker, population_id=population.pk, images=[image], generation_ms=1)
    # then the files (and their recorded hashes) are identical.
    assert stored_bytes(first) == stored_bytes(second)
    assert first.images.get().sha256 == second.images.get().sha256


@pytest.mark.django_db
def test_a_gold_decoy_is_stored_as_canonical_png_even_of_a_jpeg_set():
    population = held_population("worker-a", size=2)
    jpeg = saved(picture(), "JPEG", quality=90)
    images = [
        ImageInput(index=i, data=jpeg, extension="jpg", seed=i, prompt="p", truncated=False, width=40, height=24)
        for i in range(2)
    ]
    assert store_population(worker="worker-a", population_id=population.pk, images=images, generation_ms=1)
    population.refresh_from_db()
    decoy = get_or_create_decoy(population=population)
    for data in stored_bytes(decoy):
        assert chunks(data) == [b"IHDR", b"IDAT", b"IEND"]
        assert canonical_png(data).data == data


# --- padding: every picture of a comparison at one length --------------------------------------------------------


def pixels_of(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return np.asarray(image.convert("RGB"))


def crcs_hold(data: bytes) -> bool:
    position = 8
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        body = data[position + 4 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        if zlib.crc32(body) != crc:
            return False
        position += 12 + length
    return True


def test_a_noise_picture_and_a_flat_one_padded_to_one_length_keep_their_pixels():
    # Given a picture of noise (compresses badly) and a flat one (compresses to almost nothing),
    noise = canonical_png(saved(picture())).data
    flat = canonical_png(encode("PNG", size=(40, 24))).data
    assert len(noise) > len(flat) + 1000
    # padded to the length padded_length gives them,
    length = padded_length([len(noise), len(flat)])
    assert length == len(noise) + PAD_MIN
    for data in (noise, flat):
        padded = pad_png(data, length)
        # both are exactly that long, still only IHDR, IDAT(s) and IEND with valid CRCs, and show the same pixels.
        assert len(padded) == length
        assert set(chunks(padded)) == {b"IHDR", b"IDAT", b"IEND"}
        assert crcs_hold(padded)
        assert np.array_equal(pixels_of(padded), pixels_of(data))


@pytest.mark.parametrize("pad", [0, *range(PAD_MIN, PAD_MIN + 13), 1000, 65_537])
def test_every_pad_from_the_minimum_on_is_made_exactly(pad):
    flat = canonical_png(encode("PNG", size=(40, 24))).data
    padded = pad_png(flat, len(flat) + pad)
    assert len(padded) == len(flat) + pad
    assert np.array_equal(pixels_of(padded), pixels_of(flat))


@pytest.mark.parametrize("pad", [1, 4, 43])  # not sums of 5s and 12s: the padding cannot be made exactly
def test_a_pad_that_cannot_be_made_is_refused_rather_than_missed(pad):
    flat = canonical_png(encode("PNG", size=(40, 24))).data
    with pytest.raises(ValueError, match=f"{pad} bytes of padding"):
        pad_png(flat, len(flat) + pad)


def test_a_picture_stored_over_several_idat_chunks_is_padded_whole():
    # Given a picture large enough that its canonical PNG spreads over several IDAT chunks,
    big = Image.fromarray(np.random.default_rng(3).integers(0, 256, size=(300, 300, 3), dtype=np.uint8), "RGB")
    data = canonical_png(saved(big)).data
    assert chunks(data).count(b"IDAT") > 1
    # then padding it keeps its pixels and makes the length asked for.
    padded = pad_png(data, len(data) + 45)
    assert len(padded) == len(data) + 45
    assert crcs_hold(padded)
    assert np.array_equal(pixels_of(padded), np.asarray(big))
