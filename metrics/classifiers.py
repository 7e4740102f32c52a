"""Attribute backends: what reads a class, a diversity feature and a faithfulness figure from images.

A backend is small on purpose, so another (a face-attribute classifier, say) can be added by
writing one class and naming it in `BACKENDS`:

- `labels(images, spec)`: one class of `spec.classes` per image, or None for "none of these";
- `embed(images)`: an (n, d) array of features for the Vendi score (rows need not be normalised);
- `faithfulness(images, caption)`: the share of images that show what the caption names, or None
  where the backend cannot tell;
- `clip_score(images, caption)`: the mean CLIP score, or None where there is no CLIP;
- `model_id`: what produced the results, stored beside them.

Backends shipped:
- `shapes`: the toy domain's pixel reader (generation.shapes.classify); its diversity feature is a
  stated one, the picture shrunk to 8x8 and centred on its mean, so two pictures are alike when
  their layout and colours are; its faithfulness is the share of images whose read shape, colour
  and background match what the caption names.
- `clip`: zero-shot CLIP through transformers (CLIPModel / CLIPProcessor) from a hub id or a local
  folder. Each class is written into the spec's template ("a photo of {}"), an image gets the class
  whose text it is most similar to, and with `none_below` set, an image whose best CLIP score
  (100 x cosine) is under it gets no class (no person in the picture is not "a man").

Loaded backends stay resident per (backend, model, device) within a memory budget (`load_backend`),
so a worker pays the load once.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from generation import shapes
from generation.pipelines import looks_like_path
from generation.tiny_models import text_config, write_byte_tokenizer
from metrics.config import AttributeSpec

if TYPE_CHECKING:
    from PIL import Image

EMBED_SIDE = 8


class BackendError(ValueError):
    """A backend that cannot be loaded or run; the message says which model and why."""


class Backend(Protocol):
    name: str
    model_id: str

    def labels(self, images: Sequence[Image.Image], spec: AttributeSpec) -> list[str | None]: ...

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray: ...

    def faithfulness(self, images: Sequence[Image.Image], caption: str) -> float | None: ...

    def clip_score(self, images: Sequence[Image.Image], caption: str) -> float | None: ...


class ShapesBackend:
    """The toy domain's pixel reader; needs no model."""

    name = "shapes"
    model_id = "generation.shapes.classify"

    def labels(self, images: Sequence[Image.Image], spec: AttributeSpec) -> list[str | None]:
        read = [getattr(shapes.classify(image), spec.field) for image in images]
        return [value if value in spec.classes else None for value in read]

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        from PIL import Image as PILImage

        rows = []
        for image in images:
            small = image.convert("RGB").resize((EMBED_SIDE, EMBED_SIDE), PILImage.Resampling.BOX)
            pixels = np.asarray(small, dtype=np.float64).reshape(-1) / 255.0
            centred = pixels - pixels.mean()
            # A flat picture has no layout at all; a tiny constant keeps its row non-zero and alike to other flat ones.
            rows.append(centred if np.any(centred) else np.full_like(centred, 1e-6))
        return np.stack(rows)

    def faithfulness(self, images: Sequence[Image.Image], caption: str) -> float | None:
        named = shapes.parse_caption(caption)
        fields = [f for f in shapes.Attributes._fields if getattr(named, f) is not None]
        if not fields or not images:
            return None
        read = [shapes.classify(image) for image in images]
        return sum(all(getattr(r, f) == getattr(named, f) for f in fields) for r in read) / len(read)

    def clip_score(self, images: Sequence[Image.Image], caption: str) -> float | None:
        return None


class ClipBackend:
    """Zero-shot CLIP; one model resident on one device."""

    name = "clip"

    def __init__(self, model_id: str, *, device: str = "cpu", batch_size: int = 32) -> None:
        import torch
        from transformers import CLIPModel, CLIPProcessor

        self.model_id = model_id
        self.device = device
        self.batch_size = batch_size
        source = str(Path(model_id).expanduser()) if looks_like_path(model_id) else model_id
        if looks_like_path(model_id) and not Path(source).is_dir():
            raise BackendError(f"clip model {model_id!r}: no such folder")
        try:
            self.model = CLIPModel.from_pretrained(source).to(device).eval()  # type: ignore[arg-type]
            self.processor = CLIPProcessor.from_pretrained(source)
        except (OSError, ValueError) as exc:
            raise BackendError(f"clip model {model_id!r} could not be loaded: {exc}") from exc
        self._torch = torch
        self._text_cache: dict[tuple[str, ...], np.ndarray] = {}
        # id(picture) -> (a weak reference to it, its embedding): an id is only trusted while the picture lives.
        self._images: dict[int, tuple[weakref.ref[Image.Image], np.ndarray]] = {}

    def _features(self, output: Any) -> Any:
        # transformers 5 returns a model output with the projected embeddings in pooler_output; 4.x a tensor.
        return output if isinstance(output, self._torch.Tensor) else output.pooler_output

    def image_embeddings(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Unit-norm image embeddings; each picture is embedded once, however many measures read it."""
        missing = [im for im in images if not self._cached(im)]
        with self._torch.inference_mode():
            for start in range(0, len(missing), self.batch_size):
                batch = missing[start : start + self.batch_size]
                inputs = self.processor(images=[im.convert("RGB") for im in batch], return_tensors="pt").to(self.device)
                features = self._features(self.model.get_image_features(**inputs))
                rows = self._torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()
                for image, row in zip(batch, rows, strict=True):
                    self._images[id(image)] = (weakref.ref(image), row)
        if len(self._images) > len(images):
            # Only entries whose picture is gone are dead weight. Labels, Vendi and CLIP score read one
            # chunk's pictures in one pass, Vendi over the whole chunk and CLIP score one population at
            # a time, so dropping whatever this call did not ask for would embed the rest of the chunk
            # again (16 populations of 12 images gave 372 embeddings for 192 pictures). A live
            # picture's embedding (d floats, 3 KB for ViT-L/14) is small beside the picture itself.
            self._images = {k: v for k, v in self._images.items() if v[0]() is not None}
        if not images:
            return np.zeros((0, 0))
        return np.stack([self._images[id(im)][1] for im in images])

    def _cached(self, image: Image.Image) -> bool:
        entry = self._images.get(id(image))
        return entry is not None and entry[0]() is image

    def text_embeddings(self, texts: Sequence[str]) -> np.ndarray:
        key = tuple(texts)
        if key not in self._text_cache:
            with self._torch.inference_mode():
                inputs = self.processor(text=list(texts), return_tensors="pt", padding=True, truncation=True)
                features = self._features(self.model.get_text_features(**inputs.to(self.device)))
                normalised = self._torch.nn.functional.normalize(features.float(), dim=-1)
                self._text_cache[key] = normalised.cpu().numpy()
        return self._text_cache[key]

    def labels(self, images: Sequence[Image.Image], spec: AttributeSpec) -> list[str | None]:
        texts = self.text_embeddings([spec.template.format(c) for c in spec.classes])
        scores = 100.0 * self.image_embeddings(images) @ texts.T
        best = scores.argmax(axis=1)
        return [
            None if spec.none_below is not None and row[i] < spec.none_below else spec.classes[i]
            for row, i in zip(scores, best, strict=True)
        ]

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.image_embeddings(images)

    def faithfulness(self, images: Sequence[Image.Image], caption: str) -> float | None:
        return None

    def clip_score(self, images: Sequence[Image.Image], caption: str) -> float | None:
        from metrics.measures import clip_score

        return clip_score(self.image_embeddings(images), self.text_embeddings([caption])[0]) if images else None


_resident: dict[tuple[str, str, str], Backend] = {}
_lock = threading.Lock()
# Metrics share the worker's device with its pipelines: their models stay within this many bytes of weights.
MEMORY_BUDGET_BYTES = 4 * 2**30


def backend_bytes(backend: Backend) -> int:
    """Bytes of weights a backend keeps resident (0 for the pixel reader)."""
    model = getattr(backend, "model", None)
    if model is None:
        return 0
    return sum(p.numel() * p.element_size() for p in model.parameters())


def load_backend(name: str, model: str = "", *, device: str = "cpu", budget_bytes: int | None = None) -> Backend:
    """The backend `name` (with `model` for clip) on `device`, loaded once per process and kept resident.

    Resident models stay within `budget_bytes` (MEMORY_BUDGET_BYTES by default): the oldest loaded are
    dropped first to make room (a campaign names few models; one larger than the budget is kept alone).
    """
    key = (name, model, device)
    budget = MEMORY_BUDGET_BYTES if budget_bytes is None else budget_bytes
    with _lock:
        if key in _resident:
            return _resident[key]
        backend: Backend
        if name == "shapes":
            backend = ShapesBackend()
        elif name == "clip":
            backend = ClipBackend(model, device=device)
        else:
            raise BackendError(f"unknown backend {name!r}")
        needed = backend_bytes(backend)
        while _resident and sum(backend_bytes(b) for b in _resident.values()) + needed > budget:
            _resident.pop(next(iter(_resident)))
        _resident[key] = backend
        return backend


def forget_backends() -> None:
    """Drop every resident backend (tests, or a worker giving its device memory back)."""
    with _lock:
        _resident.clear()


def build_tiny_clip(folder: Path, *, seed: int = 0) -> Path:
    """A tiny random-weight CLIP (32x32 images) saved with save_pretrained, for tests and benchmarks.

    It is loaded through the same CLIPModel/CLIPProcessor.from_pretrained path as a real one; its
    labels mean nothing, but every step a real model takes is taken.
    """
    import torch
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPVisionConfig,
    )

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = write_byte_tokenizer(folder)
    text = text_config(tokenizer, hidden=32, layers=2)
    vision = CLIPVisionConfig(
        image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4
    )
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=16))
    model.save_pretrained(str(folder))
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(str(folder))
    return folder
