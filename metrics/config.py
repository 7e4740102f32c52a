"""A campaign's attribute configuration: parsed, checked and fingerprinted. Pure (no Django).

A campaign states what to measure as JSON, one entry per attribute:

    {"colour": {"backend": "shapes", "classes": ["red", "orange", ...]},
     "gender": {"backend": "clip", "model": "openai/clip-vit-large-patch14",
                "classes": ["a man", "a woman"], "template": "a photo of {}",
                "none_below": 18.0, "target": {"a man": 0.5, "a woman": 0.5}}}

`parse_attributes` refuses anything wrong with a `ConfigError` naming the field
(`gender.classes`, `colour.target`), so a bad configuration is stopped when the campaign is saved
or the command runs, before anything is computed. Whether a hub id is in the local cache is only
known when the backend loads it.

A CLIP `model` is a hub id (`owner/name`) or a folder inside the server's models folder (the
setting METRICS_MODELS_DIR), named relative to it (`clip-vit-b32`) or by its full path. Given that
folder (`models_dir`, as campaigns always are), anything else is refused with one message that
says nothing of the server's folders: the same whether or not the path exists, so a researcher
cannot probe the disk through the form. Without it (trusted callers: benchmarks, tests), any
existing folder is taken, as before.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generation import shapes
from generation.pipelines import looks_like_path

BACKENDS = ("shapes", "clip")
# What the shapes backend can read: generation.shapes.Attributes' fields and their classes.
SHAPES_FIELDS = ("shape", "colour", "background")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_KEYS = {"backend", "classes", "target", "model", "template", "none_below", "field"}
TARGET_TOLERANCE = 1e-6


class ConfigError(ValueError):
    """A refused attribute configuration; `field` is the dotted name of what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class AttributeSpec:
    """One attribute to measure: which backend reads it, over which fixed classes, against which target."""

    name: str
    backend: str
    classes: tuple[str, ...]
    target: dict[str, float] = field(default_factory=dict)
    model: str = ""
    template: str = "{}"
    none_below: float | None = None
    field: str = ""
    # Where the model loads from (`model` as written, or its folder inside the models folder); not part of
    # `key`, so results stay shared however the folder is named.
    source: str = ""

    @property
    def key(self) -> str:
        """A fingerprint of everything that decides the stored results; equal specs share them across campaigns."""
        blob = json.dumps(self.as_dict(), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "backend": self.backend,
            "classes": list(self.classes),
            "target": self.target,
            "model": self.model,
            "template": self.template,
            "none_below": self.none_below,
            "field": self.field,
        }


def _shapes_classes(field_name: str) -> tuple[str, ...]:
    return {"shape": shapes.SHAPES, "colour": tuple(shapes.COLOURS), "background": tuple(shapes.BACKGROUNDS)}[
        field_name
    ]


def parse_attributes(raw: object, *, models_dir: Path | None = None) -> list[AttributeSpec]:
    """The attribute specs of a configuration, in its order; ConfigError naming the field on anything wrong.

    `models_dir`: the only folder local models may come from (see the module's docstring).
    """
    if raw in (None, {}, ""):
        return []
    if not isinstance(raw, Mapping):
        raise ConfigError("attributes", "must be an object mapping attribute names to their settings")
    return [_parse_one(str(name), entry, models_dir) for name, entry in raw.items()]


# A Hugging Face hub id: owner/name, each part starting with a letter or digit (so no "..", no absolute path).
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
MODEL_REFUSED = (
    "not a model this server offers: give a hub id (owner/name) or the name of a folder in the server's "
    "models folder (METRICS_MODELS_DIR)"
)


def model_source(model: str, models_dir: Path) -> str | None:
    """Where `model` loads from when only `models_dir` may hold local models; None when it is refused.

    A folder of that name inside `models_dir` comes first (a hub id can be mirrored there); a path that
    leaves it (`..`, a link out, another absolute path) is refused like a missing one.
    """
    root = models_dir.expanduser().resolve()
    try:
        folder = (root / Path(model).expanduser()).resolve()
    except (OSError, RuntimeError, ValueError):
        folder = None
    if folder is not None and folder != root and folder.is_relative_to(root) and folder.is_dir():
        return str(folder)
    return model if HUB_ID.fullmatch(model) and ".." not in model else None


def _parse_one(name: str, entry: object, models_dir: Path | None = None) -> AttributeSpec:
    if not _NAME.match(name):
        raise ConfigError(
            name, "an attribute name is 1-40 lowercase letters, digits, '-' or '_', starting with a letter"
        )
    if not isinstance(entry, Mapping):
        raise ConfigError(name, "must be an object with at least backend and classes")
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise ConfigError(f"{name}.{unknown[0]}", f"unknown setting; the settings are {', '.join(sorted(_KEYS))}")
    backend = entry.get("backend")
    if backend not in BACKENDS:
        raise ConfigError(f"{name}.backend", f"unknown backend {backend!r}; the backends are {', '.join(BACKENDS)}")
    classes = _classes(name, entry.get("classes"))
    target = _target(name, entry.get("target"), classes)
    if backend == "shapes":
        field_name = entry.get("field", name)
        if field_name not in SHAPES_FIELDS:
            raise ConfigError(
                f"{name}.field", f"the shapes backend reads {', '.join(SHAPES_FIELDS)}, not {field_name!r}"
            )
        known = _shapes_classes(field_name)
        for value in classes:
            if value not in known:
                raise ConfigError(f"{name}.classes", f"{value!r} is not a {field_name} the shapes backend reads")
        for setting in ("model", "template", "none_below"):
            if setting in entry:
                raise ConfigError(f"{name}.{setting}", "the shapes backend takes no such setting")
        return AttributeSpec(name, "shapes", classes, target, field=field_name)
    if "field" in entry:
        raise ConfigError(f"{name}.field", "only the shapes backend takes a field")
    model = entry.get("model")
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"{name}.model", "the clip backend needs a model: a hub id or a local folder")
    model = model.strip()
    if models_dir is not None:
        source = model_source(model, models_dir)
        if source is None:
            raise ConfigError(f"{name}.model", MODEL_REFUSED)
    elif looks_like_path(model) and not Path(model).expanduser().is_dir():
        raise ConfigError(f"{name}.model", f"no such folder: {model}")
    else:
        source = model
    template = entry.get("template", "{}")
    if not isinstance(template, str) or template.count("{}") != 1:
        raise ConfigError(f"{name}.template", 'must contain {} exactly once, e.g. "a photo of {}"')
    none_below = entry.get("none_below")
    if none_below is not None and (isinstance(none_below, bool) or not isinstance(none_below, int | float)):
        raise ConfigError(f"{name}.none_below", "must be a number (a CLIP score, 100 x cosine) or absent")
    if none_below is not None and not 0 <= none_below <= 100:
        raise ConfigError(f"{name}.none_below", "must be between 0 and 100 (a CLIP score)")
    return AttributeSpec(
        name,
        "clip",
        classes,
        target,
        model=model,
        template=template,
        none_below=float(none_below) if none_below is not None else None,
        source=source,
    )


def _classes(name: str, raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{name}.classes", "must be a non-empty list of class names")
    if not all(isinstance(c, str) and c.strip() for c in raw):
        raise ConfigError(f"{name}.classes", "every class must be a non-empty string")
    classes = tuple(c.strip() for c in raw)
    seen: set[str] = set()
    for c in classes:
        if c in seen:
            raise ConfigError(f"{name}.classes", f"{c!r} is listed twice")
        seen.add(c)
    if len(classes) < 2:
        raise ConfigError(f"{name}.classes", "needs at least two classes: one class has no distribution to measure")
    return classes


def _target(name: str, raw: object, classes: tuple[str, ...]) -> dict[str, float]:
    if raw is None:
        return {c: 1.0 / len(classes) for c in classes}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{name}.target", "must be an object mapping each class to its share")
    if set(raw) != set(classes):
        missing, extra = sorted(set(classes) - set(raw)), sorted(set(raw) - set(classes))
        what = f"missing {missing}" if missing else f"not a class: {extra}"
        raise ConfigError(f"{name}.target", f"must give a share for exactly the classes ({what})")
    target: dict[str, float] = {}
    for c in classes:
        share = raw[c]
        if isinstance(share, bool) or not isinstance(share, int | float) or not math.isfinite(share):
            raise ConfigError(f"{name}.target", f"the share of {c!r} must be a number")
        # KL to the target is infinite wherever the target is 0 and a class is seen.
        if share <= 0:
            raise ConfigError(f"{name}.target", f"the share of {c!r} must be above 0")
        target[c] = float(share)
    if abs(sum(target.values()) - 1.0) > TARGET_TOLERANCE:
        raise ConfigError(f"{name}.target", f"the shares must sum to 1, not {sum(target.values()):g}")
    return target
