"""Pure checks of an uploaded image file: a PNG, JPEG or WebP that decodes whole, within a pixel budget,
one frame, and no metadata (a text chunk, EXIF or XMP could name the generator to a participant)."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image as PILImage

# Pillow's format name -> the extension the stored file gets.
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
MAX_SIDE = 4096
# What Pillow reports about how pixels are encoded or displayed; anything else it reads is metadata.
ENCODING_INFO = frozenset(
    {
        "dpi", "gamma", "srgb", "chromaticity", "transparency", "icc_profile", "aspect",
        "jfif", "jfif_version", "jfif_unit", "jfif_density", "adobe", "adobe_transform",
        "progressive", "progression", "loop", "duration", "background", "timestamp",
    }
)  # fmt: skip


class BadImage(ValueError):
    """The bytes are not an image the platform stores; the message says what is wrong."""


@dataclass(frozen=True)
class ImageFacts:
    extension: str
    width: int
    height: int


def inspect_image(data: bytes, *, max_side: int = MAX_SIDE) -> ImageFacts:
    """Decode `data` fully (a truncated or corrupt file is refused) and report its format and size."""
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
                metadata = sorted(str(key) for key in set(image.info) - ENCODING_INFO)
                if metadata:
                    raise BadImage(
                        f"carries metadata ({', '.join(metadata)}) that could tell participants which generator "
                        "made it; save it without"
                    )
    except BadImage:
        raise
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as error:
        raise BadImage(f"too many pixels: {error}") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise BadImage(f"not a readable image ({error})") from None
    return ImageFacts(extension=EXTENSIONS[kind], width=width, height=height)
