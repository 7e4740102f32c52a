"""Pure image degradation for gold checks: a copy of an image that is plainly worse. PIL and numpy only.

A gold comparison shows a real population beside a degraded copy of it, so the right answer is
known without anyone labelling it. The copy keeps the size and, like every stored image, is the
canonical PNG of its pixels (generation.image_files), so nothing on the page tells the sides apart
but the pictures. It is broken in every way a criterion could ask about: the shapes are smeared
into coarse blocks, the colours washed out, and strong noise laid on top.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

from generation.image_files import encode_canonical

BLOCKS = 4
NOISE_SIGMA = 70.0


def degrade_image(data: bytes, *, seed: int) -> tuple[bytes, str]:
    """The degraded copy of an encoded image in the canonical PNG form every stored image has: (bytes, extension)."""
    with Image.open(io.BytesIO(data)) as source:
        image = source.convert("RGB")
    width, height = image.size
    coarse = image.resize((max(1, width // max(1, width // BLOCKS)), max(1, height // max(1, height // BLOCKS))))
    smeared = coarse.resize((width, height), Image.Resampling.NEAREST).filter(ImageFilter.GaussianBlur(width / 16))
    pixels = np.asarray(smeared, dtype=np.float32)
    grey = pixels.mean(axis=2, keepdims=True)
    washed = 0.25 * pixels + 0.75 * grey
    noisy = washed + np.random.default_rng(seed).normal(0.0, NOISE_SIGMA, size=pixels.shape)
    result = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    return encode_canonical(result), "png"
