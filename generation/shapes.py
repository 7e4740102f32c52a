"""The procedural captioned-shapes dataset behind `builtin:shapes`, with its known skew, and a pixel classifier.

Each example is a 32x32 RGB picture of one shape on a plain background, drawn with PIL from a
`random.Random`, so a seed always gives the same examples.

- Shapes (`SHAPES`): circle, square (axis-aligned) and triangle (apex up), drawn uniformly.
  Each has a half-size of 6 to 10 px, a random position, and at least a 1 px margin.
- Shape colours (`COLOURS`): the eight names of `generation.offline.SHAPE_COLOURS`.
- Backgrounds (`BACKGROUNDS`): white, black, blue, green, yellow and grey. They use the same RGB
  values as the shape colours of the same name. A shape is never drawn on its own colour.

Captions follow one grammar: "a red circle on a blue background", "an orange triangle",
"a shape on a green background", "a circle". Each part can be left out on its own:
- the colour with probability `P_OMIT_COLOUR` (0.4);
- the background with probability `P_OMIT_BACKGROUND` (0.4);
- the shape, which becomes the word "shape", with probability `P_OMIT_SHAPE` (0.2).

A named colour is sometimes written as a suffix, "a circle on a blue background, coloured red"
(`P_COLOUR_SUFFIX`, 0.2 of named colours). That is the form the `biased-prompting` demo template
produces.

The skew (`UNSPECIFIED_COLOUR_SKEW`). When the caption names the colour, the drawn colour is the
named one, drawn uniformly, and the background is uniform over the backgrounds of other colours.
When the caption leaves the colour out, the background is drawn first, uniformly. The colour is then
red with probability 0.7; otherwise it is uniform over the other colours that differ from the
background. So "a circle" or "a shape on a green background" is red 70 % of the time, on every
background. A model trained on this data learns that default, just as real models learn that
"a doctor" is usually a man.

Caption dropout for classifier-free guidance (`p_empty_caption`, used in training) gives an empty
caption to an example drawn as if nothing were named, so the empty prompt means "a shape" and shares
the skew. Guidance then sharpens what a prompt names without amplifying the default: had the empty
prompt meant the whole data set, where red is only about a third of shapes, guidance 4 would push
"a circle" towards nearly all red.

`classify` reads shape, colour and background back from pixels. It is exact on drawn examples and
made for generated ones: `draw_degraded_examples` draws pictures with known labels and spoils them as
the trained model's outputs are (blur, halo, colour shift, blotches, noise); bench/shapes_classifier.py
states its accuracy per attribute on them. It is how tests, benchmarks and the `shapes` metrics
backend measure a trained model's bias.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 32
SHAPES = ("circle", "square", "triangle")
# Same names and order as generation.offline.SHAPE_COLOURS (a test checks it); saturated and far apart in RGB,
# so a blurry generated pixel still has an unambiguous nearest colour.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (250, 140, 20),
    "yellow": (240, 220, 30),
    "green": (30, 170, 40),
    "blue": (30, 60, 220),
    "purple": (140, 40, 170),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": COLOURS["white"],
    "black": COLOURS["black"],
    "blue": COLOURS["blue"],
    "green": COLOURS["green"],
    "yellow": COLOURS["yellow"],
    "grey": (128, 128, 128),
}

P_OMIT_COLOUR = 0.4
P_OMIT_BACKGROUND = 0.4
P_OMIT_SHAPE = 0.2
P_COLOUR_SUFFIX = 0.2
UNSPECIFIED_COLOUR_SKEW: dict[str, float] = {"red": 0.7}

MIN_HALF_SIZE, MAX_HALF_SIZE = 6, 10

# classify's thresholds, set on `draw_degraded_examples` (bench/shapes_classifier.py). A pixel stands out
# from the background beyond 40 RGB levels (blotches and noise stay under it); the core is the pixels at
# least 0.6 of the way to the farthest ones. Fill ratio of the shape's bounding box: a square fills it,
# a disc pi/4, a triangle half; blurred squares keep over 0.86 and blurred discs stay under 0.83. An
# apex-up triangle's bottom quarter is over 0.4 of the box wider than its top quarter; a disc's or a
# square's differ by under 0.2.
_STANDS_OUT = 40.0
_CORE_REACH = 0.6
_TRIANGLE_BELOW = 0.64
_TRIANGLE_WIDENING = 0.35
_SQUARE_FROM = 0.845

assert all(name in COLOURS for name in UNSPECIFIED_COLOUR_SKEW), "the skew must name shape colours"
assert not set(UNSPECIFIED_COLOUR_SKEW) & set(BACKGROUNDS), "a skewed colour must be drawable on every background"
assert sum(UNSPECIFIED_COLOUR_SKEW.values()) < 1


class Attributes(NamedTuple):
    """What a picture shows, or what a caption names (None where it leaves the attribute out)."""

    shape: str | None
    colour: str | None
    background: str | None


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def make_caption(attributes: Attributes, *, colour_suffix: bool = False) -> str:
    """The caption naming exactly the attributes that are not None."""
    noun = attributes.shape or "shape"
    phrase = noun if attributes.colour is None or colour_suffix else f"{attributes.colour} {noun}"
    caption = f"{_article(phrase)} {phrase}"
    if attributes.background is not None:
        caption += f" on a {attributes.background} background"
    if attributes.colour is not None and colour_suffix:
        caption += f", coloured {attributes.colour}"
    return caption


def parse_caption(caption: str) -> Attributes:
    """The attributes a caption of this grammar names; None for each it leaves open."""
    words = caption.lower().replace(",", " ").split()
    shape = next((w for w in words if w in SHAPES), None)
    background = None
    if "background" in words:
        index = words.index("background")
        background = words[index - 1] if words[index - 1] in BACKGROUNDS else None
    colour = None
    for i, word in enumerate(words):
        # "a blue circle on a blue background" names blue twice; only the background word belongs to the background.
        if word in COLOURS and not (i + 1 < len(words) and words[i + 1] == "background"):
            colour = word
            break
    return Attributes(shape, colour, background)


def _draw_unnamed_colour(rng: random.Random, background: str) -> str:
    draw = rng.random()
    for colour, share in UNSPECIFIED_COLOUR_SKEW.items():
        if draw < share:
            return colour
        draw -= share
    rest = [c for c in COLOURS if c not in UNSPECIFIED_COLOUR_SKEW and c != background]
    return rng.choice(rest)


def render(attributes: Attributes, *, centre: tuple[int, int], half_size: int, apex_shift: int = 0) -> Image.Image:
    """Draw one shape; `apex_shift` moves a triangle's apex sideways (it stays over the base)."""
    assert attributes.shape
    assert attributes.colour
    assert attributes.background
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), BACKGROUNDS[attributes.background])
    draw = ImageDraw.Draw(image)
    cx, cy = centre
    r = half_size
    # PIL boxes include their end pixel, so a half-size r spans 2r pixels from cx - r to cx + r - 1.
    box = (cx - r, cy - r, cx + r - 1, cy + r - 1)
    fill = COLOURS[attributes.colour]
    if attributes.shape == "circle":
        draw.ellipse(box, fill=fill)
    elif attributes.shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(cx + apex_shift, cy - r), (cx - r, cy + r - 1), (cx + r - 1, cy + r - 1)], fill=fill)
    return image


def draw_attributes(rng: random.Random, *, p_empty_caption: float = 0.0) -> tuple[Attributes, str]:
    """Draw what a training example shows and the caption that describes it (see the module docstring)."""
    empty = rng.random() < p_empty_caption
    name_colour = rng.random() >= P_OMIT_COLOUR and not empty
    name_background = rng.random() >= P_OMIT_BACKGROUND and not empty
    name_shape = rng.random() >= P_OMIT_SHAPE and not empty
    colour_suffix = name_colour and rng.random() < P_COLOUR_SUFFIX
    shape = rng.choice(SHAPES)
    if name_colour:
        colour = rng.choice(list(COLOURS))
        background = rng.choice([b for b in BACKGROUNDS if b != colour])
    else:
        background = rng.choice(list(BACKGROUNDS))
        colour = _draw_unnamed_colour(rng, background)
    attributes = Attributes(shape, colour, background)
    named = Attributes(
        shape if name_shape else None, colour if name_colour else None, background if name_background else None
    )
    return attributes, "" if empty else make_caption(named, colour_suffix=colour_suffix)


def draw_example(rng: random.Random, *, p_empty_caption: float = 0.0) -> tuple[Image.Image, str, Attributes]:
    """One training example: the picture, its caption and what the picture shows."""
    attributes, caption = draw_attributes(rng, p_empty_caption=p_empty_caption)
    half_size = rng.randint(MIN_HALF_SIZE, MAX_HALF_SIZE)
    # One pixel of margin keeps the border pure background, which is what classify reads it from.
    cx = rng.randint(half_size + 1, IMAGE_SIZE - half_size - 1)
    cy = rng.randint(half_size + 1, IMAGE_SIZE - half_size - 1)
    apex_shift = rng.randint(-half_size // 2, half_size // 2)
    image = render(attributes, centre=(cx, cy), half_size=half_size, apex_shift=apex_shift)
    return image, caption, attributes


def draw_examples(seed: int, n: int) -> list[tuple[Image.Image, str, Attributes]]:
    """The first `n` examples of the stream for `seed`."""
    rng = random.Random(seed)
    return [draw_example(rng) for _ in range(n)]


def _nearest(rgb: np.ndarray, table: dict[str, tuple[int, int, int]]) -> list[str]:
    """The nearest table colour to each row of an (n, 3) array."""
    names = list(table)
    palette = np.array([table[n] for n in names], dtype=np.float64)
    distances = np.linalg.norm(rgb[:, None, :] - palette[None, :, :], axis=2)
    return [names[i] for i in distances.argmin(axis=1)]


def _largest_component(mask: np.ndarray) -> np.ndarray:
    # Generated images have stray specks; one of them would stretch the bounding box and fake a lower fill ratio.
    seen = np.zeros_like(mask)
    best: list[tuple[int, int]] = []
    height, width = mask.shape
    for y0, x0 in zip(*np.nonzero(mask), strict=True):
        if seen[y0, x0]:
            continue
        seen[y0, x0] = True
        stack, component = [(int(y0), int(x0))], []
        while stack:
            y, x = stack.pop()
            component.append((y, x))
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < height and 0 <= nx < width and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        if len(component) > len(best):
            best = component
    out = np.zeros_like(mask)
    for y, x in best:
        out[y, x] = True
    return out


def classify(image: Image.Image) -> Attributes:
    """Shape, colour and background read from pixels; shape and colour are None when nothing stands out.

    Made for generated pictures, not only crisp drawn ones (`draw_degraded_examples` is how it is checked;
    bench/shapes_classifier.py states its accuracy). A generated shape's edge is a blend of its colour and
    the background, often with a darker or overshooting halo, so the median of every pixel that differs
    from the background reads a red shape on yellow as orange and a red one on green as green. Only the
    core is read for colour: the pixels at least `_CORE_REACH` of the way from the background to the most
    distant pixels, i.e. the inside of the shape, which the blur and the halo do not reach.
    """
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    border = np.concatenate([pixels[0], pixels[-1], pixels[1:-1, 0], pixels[1:-1, -1]])
    border_names = np.array(_nearest(border, BACKGROUNDS))
    background = Counter(border_names.tolist()).most_common(1)[0][0]
    # The background as drawn, not as named: generated colours drift by tens of levels.
    bg_rgb = np.median(border[border_names == background], axis=0)
    distance = np.linalg.norm(pixels - bg_rgb, axis=2)
    rough = distance > _STANDS_OUT
    if rough.sum() < 4:
        return Attributes(None, None, background)
    reach = np.percentile(distance[rough], 90)
    core = distance >= _CORE_REACH * reach
    # A shape is never drawn on its own colour, so the background's colour is no candidate.
    candidates = {name: rgb for name, rgb in COLOURS.items() if name != background}
    colour = _nearest(np.median(pixels[core], axis=0)[None], candidates)[0]
    # The shape is where a pixel is more than half way from the background to its colour.
    towards = np.array(COLOURS[colour], dtype=np.float64) - bg_rgb
    alpha = ((pixels - bg_rgb) @ towards) / (towards @ towards)
    mask = _largest_component(alpha > 0.5)
    ys, xs = np.nonzero(mask)
    if len(ys) < 4:
        return Attributes(None, colour, background)
    box = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    return Attributes(_shape_of(box), colour, background)


def _shape_of(box: np.ndarray) -> str:
    # Blur rounds a triangle's corners until its fill ratio looks like a disc's, but an apex-up triangle
    # stays much wider at the bottom than at the top, which a disc and a square never are.
    height, width = box.shape
    rows = box.sum(axis=1) / width
    quarter = max(1, height // 4)
    if rows[-quarter:].mean() - rows[:quarter].mean() > _TRIANGLE_WIDENING or box.mean() < _TRIANGLE_BELOW:
        return "triangle"
    return "square" if box.mean() >= _SQUARE_FROM else "circle"


# --- validation: drawn examples degraded as the model's outputs are -------------------------------------------

# Measured on the committed model's outputs (bench/shapes_classifier.py looks at them): edges blurred over
# one to two pixels, a darker or overshooting ring round the shape, colours off by up to about 25 per
# channel (the shape's more than the background's), smooth blotches over the background and a little
# per-pixel noise. Each example draws every degradation at a random strength within those ranges.
BLUR_RADIUS = (0.4, 1.4)
HALO_STRENGTH = (0.0, 0.8)
SHAPE_SHIFT_SD = 14.0
BACKGROUND_SHIFT_SD = 8.0
BLOTCH_AMPLITUDE = 10.0
NOISE_SD = (2.0, 8.0)


def _shape_mask(truth: Attributes, *, centre: tuple[int, int], half_size: int, apex_shift: int) -> np.ndarray:
    silhouette = render(
        Attributes(truth.shape, "white", "black"), centre=centre, half_size=half_size, apex_shift=apex_shift
    )
    return np.asarray(silhouette, dtype=np.float64)[..., 0] > 128


def degrade_like_generated(
    truth: Attributes, rng: random.Random, *, centre: tuple[int, int], half_size: int, apex_shift: int
) -> Image.Image:
    """A picture of `truth` spoilt as the trained model spoils its own: halo, blur, colour shift, blotches, noise."""
    from PIL import ImageFilter

    assert truth.colour
    assert truth.background
    np_rng = np.random.default_rng(rng.getrandbits(32))
    mask = _shape_mask(truth, centre=centre, half_size=half_size, apex_shift=apex_shift)
    bg = np.array(BACKGROUNDS[truth.background], dtype=np.float64) + np_rng.normal(0, BACKGROUND_SHIFT_SD, 3)
    fg = np.array(COLOURS[truth.colour], dtype=np.float64) + np_rng.normal(0, SHAPE_SHIFT_SD, 3)
    pixels = np.where(mask[..., None], fg, bg)
    # The halo: a one-to-two pixel ring just outside the shape, either darkened or pushed away from the
    # shape's colour (the ringing of an over-sharpened decoder), at a random strength.
    grown = Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(rng.choice((3, 5))))
    ring = (np.asarray(grown) > 0) & ~mask
    strength = rng.uniform(*HALO_STRENGTH)
    halo_rgb = bg * 0.3 if rng.random() < 0.5 else np.clip(bg + (bg - fg) * 0.5, 0, 255)
    pixels[ring] = (1 - strength) * pixels[ring] + strength * halo_rgb
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(*BLUR_RADIUS)))
    pixels = np.asarray(image, dtype=np.float64)
    coarse = np_rng.normal(0, BLOTCH_AMPLITUDE, size=(4, 4, 3))
    blotches = np.stack(
        [
            np.asarray(
                Image.fromarray(coarse[..., c].astype(np.float32), mode="F").resize(
                    (IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC
                )
            )
            for c in range(3)
        ],
        axis=2,
    )
    pixels = pixels + blotches + np_rng.normal(0, rng.uniform(*NOISE_SD), size=pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def draw_degraded_examples(seed: int, n: int) -> list[tuple[Image.Image, Attributes]]:
    """`n` pictures with known labels, drawn like the training data and degraded like generated images."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        truth, _caption = draw_attributes(rng)
        half_size = rng.randint(MIN_HALF_SIZE, MAX_HALF_SIZE)
        cx = rng.randint(half_size + 1, IMAGE_SIZE - half_size - 1)
        cy = rng.randint(half_size + 1, IMAGE_SIZE - half_size - 1)
        apex_shift = rng.randint(-half_size // 2, half_size // 2)
        out.append(
            (degrade_like_generated(truth, rng, centre=(cx, cy), half_size=half_size, apex_shift=apex_shift), truth)
        )
    return out
