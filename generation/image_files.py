"""Image files the platform stores: checks that bytes are one whole still image, and their one canonical PNG form.

Every stored image, generated or uploaded, is re-encoded by `canonical_png` (generation.services does it
where files are written) so its bytes depend only on its pixels: a text chunk, EXIF, XMP, an ICC profile,
gamma, a timestamp, bytes after the end, another format or another encoder's compression could otherwise
tell a participant which generator made a set. Pure: Pillow only.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Any

from PIL import Image as PILImage

# Pillow's format name -> the extension the stored file gets.
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
MAX_SIDE = 4096
# The canonical encoding's one setting per image size. Up to this many pixels zlib's fastest level: 3.5x
# faster than the default on the demo's 32x32 images for 1-2% more bytes; larger images keep the default
# level, whose files are 5-7% smaller. A function of the pixels' dimensions only, so still canonical.
FAST_PNG_MAX_PIXELS = 128 * 128


class BadImage(ValueError):
    """The bytes are not an image the platform stores; the message says what is wrong."""


@dataclass(frozen=True)
class ImageFacts:
    extension: str
    width: int
    height: int


@dataclass(frozen=True)
class CanonicalImage:
    """An image in the canonical PNG form: `data` is what is stored and what its sha256 is of."""

    data: bytes
    width: int
    height: int
    extension = "png"


def _decode(data: bytes, max_side: int) -> tuple[str, PILImage.Image]:
    """Decode `data` fully (a truncated or corrupt file is refused): its format and its pixels as RGB."""
    if not data:
        raise BadImage("the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(data)) as image:
                kind = image.format or "unknown"
                if kind not in EXTENSIONS:
                    raise BadImage(f"a {kind} file; upload PNG, JPEG or WebP")
                width, height = image.size
                if width > max_side or height > max_side:
                    raise BadImage(f"{width}x{height} pixels is larger than {max_side}x{max_side}")
                frames = int(getattr(image, "n_frames", 1))
                if frames > 1:
                    raise BadImage(f"an animation of {frames} frames; upload one still image")
                image.load()
                rgb = image.convert("RGB")
    except BadImage:
        raise
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as error:
        raise BadImage(f"too many pixels: {error}") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise BadImage(f"not a readable image ({error})") from None
    return kind, rgb


def inspect_image(data: bytes, *, max_side: int = MAX_SIDE) -> ImageFacts:
    """Check that `data` is one whole still PNG, JPEG or WebP within the pixel budget; its format and size.

    Metadata is not refused: storing re-encodes every image (`canonical_png`), which drops it.
    """
    kind, image = _decode(data, max_side)
    return ImageFacts(extension=EXTENSIONS[kind], width=image.width, height=image.height)


def encode_canonical(image: PILImage.Image) -> bytes:
    """The canonical PNG of a decoded image: 8-bit RGB, IHDR, IDAT and IEND only, one compression setting.

    The pixels are copied into a fresh image, so nothing Pillow kept from a decoded file (an ICC profile,
    transparency, dpi, EXIF, text) reaches the encoder.
    """
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    bare = PILImage.frombytes("RGB", rgb.size, rgb.tobytes())
    level = 1 if bare.width * bare.height <= FAST_PNG_MAX_PIXELS else 6
    buffer = io.BytesIO()
    bare.save(buffer, format="PNG", optimize=False, compress_level=level)
    return buffer.getvalue()


def canonical_png(data: bytes, *, max_side: int = MAX_SIDE) -> CanonicalImage:
    """`data` (PNG, JPEG or WebP, checked as `inspect_image` does) in the one form the platform stores.

    The same pixels give the same bytes whatever file, format, metadata or encoder they came in.
    """
    _, image = _decode(data, max_side)
    return CanonicalImage(data=encode_canonical(image), width=image.width, height=image.height)


# --- blank images -------------------------------------------------------------------------------------------------

# An image whose every channel spans fewer levels than this (of 255) is blank: a safety checker's black square, a
# provider's grey placeholder, a flat fill after JPEG's small ripples. A real picture, even of a clear sky, spans more.
BLANK_SPREAD = 8


def is_blank(pixels: PILImage.Image, *, spread: int = BLANK_SPREAD) -> bool:
    """Whether every pixel is (nearly) one colour: each channel's max - min under `spread` levels."""
    extrema: Any = pixels.getextrema()
    # One band (L, P): Pillow gives (low, high) itself; several: one (low, high) per band.
    bands = [extrema] if isinstance(extrema[0], (int, float)) else list(extrema)
    return all(high - low < spread for low, high in bands)


def is_blank_file(data: bytes, *, max_side: int = MAX_SIDE) -> bool:
    """is_blank of an encoded image (decoded as canonical_png decodes it); BadImage if it is not one."""
    _, image = _decode(data, max_side)
    return is_blank(image)


# The start of a set's error when one of its images came back blank on every draw (generation.worker): the prompt
# is then shown to the researcher (generation.selectors.get_blank_counts).
BLANK_FAILURE = "blank images"
