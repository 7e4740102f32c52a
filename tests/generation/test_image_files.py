"""What an uploaded image must be: PNG, JPEG or WebP, whole, one frame, no metadata that could name a generator."""

from __future__ import annotations

import io

import pytest
from PIL import Image, PngImagePlugin

from generation.image_files import BadImage, inspect_image


def encode(fmt: str, size: tuple[int, int] = (6, 4), **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "purple").save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize(("fmt", "extension"), [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp")])
def test_plain_images_are_accepted_with_their_format_and_size(fmt, extension):
    facts = inspect_image(encode(fmt))
    assert (facts.extension, facts.width, facts.height) == (extension, 6, 4)


def test_a_png_text_chunk_naming_the_model_is_refused_by_key():
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "Steps: 20, Model: sdxl-base")
    with pytest.raises(BadImage, match=r"carries metadata \(parameters\)"):
        inspect_image(encode("PNG", pnginfo=info))


def test_exif_is_refused():
    exif = Image.new("RGB", (1, 1)).getexif()
    exif[0x0131] = "generator-b 1.0"  # Software
    with pytest.raises(BadImage, match=r"carries metadata \(exif\)"):
        inspect_image(encode("JPEG", exif=exif))


def test_an_animation_is_refused():
    frames = [Image.new("RGB", (4, 4), colour) for colour in ("red", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="PNG", save_all=True, append_images=frames[1:])
    with pytest.raises(BadImage, match="an animation of 2 frames"):
        inspect_image(buffer.getvalue())


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
