"""Pure checks of an uploaded image file: a PNG, JPEG or WebP that decodes whole, within a pixel budget."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image as PILImage

# Pillow's format name -> the extension the stored file gets.
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
MAX_SIDE = 4096


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
                image.load()
    except BadImage:
        raise
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as error:
        raise BadImage(f"too many pixels: {error}") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise BadImage(f"not a readable image ({error})") from None
    return ImageFacts(extension=EXTENSIONS[kind], width=width, height=height)
