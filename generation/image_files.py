"""Image files the platform stores: checks that bytes are one whole still image, and their one canonical PNG form.

Every stored image, generated or uploaded, is re-encoded by `canonical_png` (generation.services does it
where files are written) so its bytes depend only on its pixels: a text chunk, EXIF, XMP, an ICC profile,
gamma, a timestamp, bytes after the end, another format or another encoder's compression could otherwise
tell a participant which generator made a set. Pure: Pillow only.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PIL import Image as PILImage

if TYPE_CHECKING:
    import torch

# Pillow's format name -> the extension the stored file gets.
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
MAX_SIDE = 4096
# The canonical encoding's one setting per image size. Up to this many pixels zlib's fastest level, which
# encodes small images several times faster for a few percent more bytes; larger images keep the default
# level, whose files are clearly smaller (figures: BENCHMARKS.md, "Generation and workers"). A function of the
# pixels' dimensions only, so still canonical.
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


# --- padding: one byte length for every picture of a comparison ------------------------------------------------

# A picture's compressed size follows its content: a noise generator's sets compress badly, so a participant who
# reads the sizes of a comparison's pictures (the browser's network panel) could tell that side apart before voting.
# Every picture of a comparison is therefore served padded to one length (arena.image_urls). Padding stays inside
# the PNG's critical chunks: empty stored deflate blocks after the zlib header (5 bytes each: a non-final stored
# block of length 0 holds no data, so the pixels and the Adler-32 are unchanged) and the image data split over more
# IDAT chunks (12 bytes each: length, type and CRC). Any pad of PAD_MIN bytes or more is a sum of 5s and 12s.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EMPTY_STORED_BLOCK = b"\x00\x00\x00\xff\xff"
_CHUNK_OVERHEAD = 12
PAD_MIN = 44  # the largest sum of 5s and 12s that cannot be made is 43


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """A PNG's chunks as (type, payload), their CRCs checked; BadImage for anything else."""
    if not data.startswith(PNG_SIGNATURE):
        raise BadImage("not a PNG file")
    chunks, at = [], len(PNG_SIGNATURE)
    while at < len(data):
        if at + 12 > len(data):
            raise BadImage("a PNG chunk runs past the end of the file")
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, payload = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        if len(payload) != length or zlib.crc32(kind + payload) != crc:
            raise BadImage(f"the PNG chunk {kind!r} is truncated or its CRC does not match")
        chunks.append((kind, payload))
        at += 12 + length
    return chunks


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _pad_parts(pad: int) -> tuple[int, int]:
    """(empty stored blocks, extra IDAT chunks) whose bytes add up to exactly `pad`."""
    for chunks in range(5):
        blocks, rest = divmod(pad - _CHUNK_OVERHEAD * chunks, len(_EMPTY_STORED_BLOCK))
        if blocks >= 0 and rest == 0:
            return blocks, chunks
    raise ValueError(f"{pad} bytes of padding cannot be made of 5s and 12s (any {PAD_MIN} or more can)")


def padded_length(lengths: list[int]) -> int:
    """The one length every PNG of these lengths can be padded to: the longest plus PAD_MIN."""
    return max(lengths) + PAD_MIN


def pad_png(data: bytes, length: int) -> bytes:
    """The same PNG (same chunks, same pixels) grown to exactly `length` bytes; ValueError if that cannot be made.

    Only the image data changes: empty stored blocks go between the zlib header and the first compressed block, and
    the data is split over as many more IDAT chunks than it had as the remainder needs. Everything else keeps its bytes.
    """
    if length == len(data):
        return data
    blocks, extra_chunks = _pad_parts(length - len(data))
    chunks = _chunks(data)
    kinds = [kind for kind, _ in chunks]
    if b"IDAT" not in kinds:
        raise BadImage("a PNG without image data")
    first = kinds.index(b"IDAT")
    last = len(kinds) - 1 - kinds[::-1].index(b"IDAT")
    stream = b"".join(payload for _, payload in chunks[first : last + 1])
    stream = stream[:2] + _EMPTY_STORED_BLOCK * blocks + stream[2:]
    pieces = last - first + 1 + extra_chunks
    step = -(-len(stream) // pieces)
    idat = b"".join(_chunk(b"IDAT", stream[i * step : (i + 1) * step]) for i in range(pieces))
    head = b"".join(_chunk(kind, payload) for kind, payload in chunks[:first])
    tail = b"".join(_chunk(kind, payload) for kind, payload in chunks[last + 1 :])
    padded = PNG_SIGNATURE + head + idat + tail
    if len(padded) != length:  # a split left an empty piece: cannot happen for streams longer than 5 bytes
        raise ValueError(f"padding made {len(padded)} bytes, not {length}")
    return padded


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


def pixels_to_tensor(images: Sequence[PILImage.Image]) -> torch.Tensor:
    """RGB pictures as a diffusers VAE takes them: NCHW float32 in [-1, 1] (numpy and torch imported here)."""
    import numpy as np
    import torch

    array = np.stack([np.asarray(image, dtype=np.float32) for image in images]) / 127.5 - 1.0
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()
