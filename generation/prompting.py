"""Pure prompt rewriting: a generator's template and attribute augmentation, per image.

Attribute augmentation is PopAlign's identity-augmentation baseline: for an attribute the
caption leaves open (`names_attribute`), a value drawn uniformly is inserted after the
leading article ("a circle" -> "a blue circle"); a caption that already names a value keeps
it. A single-valued list pins the attribute instead (a deliberately narrow generator). The
draw is seeded by the image's seed, so the recorded prompt can always be made again.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence

ARTICLES = ("a", "an", "the")
VOWEL_SOUND = re.compile(r"^[aeiou]", re.IGNORECASE)


PREPOSITIONS = frozenset({"on", "in", "at", "with", "by", "near", "under", "over", "behind", "beside", "of"})


def names_attribute(caption: str, attribute: str, values: Sequence[str]) -> bool:
    """Whether the caption names a value of the attribute, so the attribute is not left open.

    A value names it in the leading noun phrase ("a red circle" names the colour; "a shape on a green
    background" names no shape colour) or right before the attribute's own name ("on a green
    background" names the background).
    """
    words = re.findall(r"[\w-]+", caption.lower())
    wanted = {value.lower() for value in values}
    phrase = []
    for word in words[1:] if words and words[0] in ARTICLES else words:
        if word in PREPOSITIONS:
            break
        phrase.append(word)
    if wanted.intersection(phrase):
        return True
    name = attribute.lower()
    return any(word in wanted and following == name for word, following in zip(words, words[1:], strict=False))


def augment_caption(caption: str, augment: Mapping[str, Sequence[str]], seed: int) -> str:
    """Insert a drawn value for every attribute the caption leaves open."""
    rng = random.Random(seed)
    inserted = [rng.choice(list(values)) for attribute, values in sorted(augment.items()) if values]
    open_values = [
        value
        for (attribute, values), value in zip(sorted(augment.items()), inserted, strict=False)
        if not names_attribute(caption, attribute, values)
    ]
    if not open_values:
        return caption
    words = caption.split(" ", 1)
    if words[0].lower() in ARTICLES and len(words) == 2:
        article, rest = words
        phrase = " ".join([*open_values, rest])
        if article.lower() in ("a", "an"):
            article = ("an" if VOWEL_SOUND.match(phrase) else "a") if article.islower() else article
        return f"{article} {phrase}"
    return " ".join([*open_values, caption])


def generation_prompt(caption: str, *, template: str, augment: Mapping[str, Sequence[str]] | None, seed: int) -> str:
    """The exact text given to the pipeline for one image."""
    if augment:
        caption = augment_caption(caption, augment, seed)
    return template.replace("{prompt}", caption)


def population_prompts(
    caption: str, *, template: str, settings: Mapping[str, object] | None, seeds: Sequence[int]
) -> list[str]:
    """The generation prompt of every image of a population, in image order (its generator's `augment` applied)."""
    augment = settings.get("augment") if isinstance(settings, Mapping) else None
    if not isinstance(augment, Mapping):
        augment = None
    return [generation_prompt(caption, template=template, augment=augment, seed=seed) for seed in seeds]
