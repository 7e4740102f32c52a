"""Computing and storing metrics for populations: labels per image, measures per population.

`measure_populations` is the one writer. It reads each population's images once, runs every
backend over a batch of populations at a time (models resident, on the caller's device), and then
stores each population's results in its own transaction: a population has all of its results for a
spec or none, and a crash mid-way loses only work, never consistency. Without `recompute` a
population that already has results for a spec is skipped, so running it twice changes nothing.

Who calls it: the generation worker right after it stores a population (through
generation.signals.population_ready, connected in annotation, which knows which campaigns measure
what), and the compute_metrics command for backfills.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from django.db import transaction
from PIL import Image as PILImage

from generation.media_io import in_background, in_parallel, read_stored
from generation.models import Image, Population
from metrics import measures
from metrics.classifiers import Backend, load_backend
from metrics.config import AttributeSpec
from metrics.models import AttributeMeasure, ImageLabel, SetMeasure

logger = logging.getLogger("poparena.metrics")

BATCH_POPULATIONS = 16
# A batch being read ahead: its populations, its pictures as they are read, and the progress count once measured.
_Pending = tuple[list[Population], Future[dict[int, list[PILImage.Image] | Exception]], int]


@dataclass(frozen=True)
class SetSpec:
    """Which backend gives a campaign's whole-set measures: its first CLIP, else shapes."""

    backend: str
    model: str
    feature: str
    source: str = ""  # where the model loads from (AttributeSpec.source); not part of `key`

    @property
    def key(self) -> str:
        return hashlib.sha256(f"{self.backend}|{self.model}|{self.feature}".encode()).hexdigest()[:32]


def set_spec_for(attributes: Sequence[AttributeSpec]) -> SetSpec | None:
    """CLIP image embeddings where a CLIP is configured (they see content); else the shapes feature; else none."""
    for spec in attributes:
        if spec.backend == "clip":
            return SetSpec("clip", spec.model, "CLIP image embedding", spec.source)
    if any(spec.backend == "shapes" for spec in attributes):
        return SetSpec("shapes", "generation.shapes.classify", "8x8 thumbnail, mean-centred")
    return None


@dataclass
class MeasureReport:
    measured: int = 0
    skipped: int = 0
    images: int = 0
    seconds: float = 0.0
    failed: list[tuple[int, str]] = field(default_factory=list)


def measure_populations(
    *,
    population_ids: Sequence[int],
    attributes: Sequence[AttributeSpec],
    recompute: bool = False,
    device: str = "cpu",
    progress: Callable[[int], None] | None = None,
) -> MeasureReport:
    """Label and measure every ready population in `population_ids` for `attributes`; see the module docstring."""
    report = MeasureReport()
    started = time.perf_counter()
    set_spec = set_spec_for(attributes)
    keys = {spec.key for spec in attributes} | ({set_spec.key} if set_spec else set())
    if not keys:
        return report
    ids = list(dict.fromkeys(population_ids))
    # A batch's pictures are read while the batch before it is measured: on object storage the reads' round trips
    # overlap the backends' work instead of adding to it.
    pending: _Pending | None = None
    for start in range(0, len(ids), BATCH_POPULATIONS):
        chunk = list(
            Population.objects.filter(pk__in=ids[start : start + BATCH_POPULATIONS], status=Population.Status.READY)
            .select_related("prompt", "generator")
            .prefetch_related("images")
            .order_by("pk")
        )
        if not recompute:
            done = _fully_measured([p.pk for p in chunk], attributes, set_spec)
            report.skipped += sum(1 for p in chunk if p.pk in done)
            chunk = [p for p in chunk if p.pk not in done]
        reading = in_background(_open_images, chunk)
        if pending is not None:
            _finish_chunk(pending, attributes, set_spec, device, report, progress)
        pending = (chunk, reading, min(start + BATCH_POPULATIONS, len(ids)))
    if pending is not None:
        _finish_chunk(pending, attributes, set_spec, device, report, progress)
    report.seconds = time.perf_counter() - started
    return report


def _finish_chunk(
    pending: _Pending,
    attributes: Sequence[AttributeSpec],
    set_spec: SetSpec | None,
    device: str,
    report: MeasureReport,
    progress: Callable[[int], None] | None,
) -> None:
    chunk, reading, done = pending
    if chunk:
        _measure_chunk(chunk, reading.result(), attributes, set_spec, device, report)
    if progress is not None:
        progress(done)


def _fully_measured(ids: list[int], attributes: Sequence[AttributeSpec], set_spec: SetSpec | None) -> set[int]:
    wanted = len(attributes)
    have: dict[int, int] = {}
    rows = AttributeMeasure.objects.filter(population_id__in=ids, spec_key__in=[s.key for s in attributes])
    for population_id in rows.values_list("population_id", flat=True):
        have[population_id] = have.get(population_id, 0) + 1
    complete = {pk for pk in ids if have.get(pk, 0) == wanted}
    if set_spec is not None:
        with_set = set(
            SetMeasure.objects.filter(population_id__in=ids, spec_key=set_spec.key).values_list(
                "population_id", flat=True
            )
        )
        complete &= with_set
    return complete


def _open_picture(image: Image) -> PILImage.Image | Exception:
    """One stored picture, decoded; the error instead if it cannot be read or decoded."""
    try:
        picture = PILImage.open(io.BytesIO(read_stored(image.file.storage, image.file.name)))
        picture.load()
        return picture.convert("RGB")
    except Exception as exc:  # a missing or unreadable file fails its population's metrics only
        return exc


def _open_images(chunk: list[Population]) -> dict[int, list[PILImage.Image] | Exception]:
    """Each population's pictures in index order, every picture of the chunk read a few at a time
    (generation.media_io: object storage answers each read after a round trip); a population with a picture
    that could not be read gets that error instead."""
    images = [(p.pk, image) for p in chunk for image in sorted(p.images.all(), key=lambda i: i.index)]
    opened = in_parallel(_open_picture, [image for _, image in images])
    found: dict[int, list[PILImage.Image] | Exception] = {p.pk: [] for p in chunk}
    for (population_id, _), picture in zip(images, opened, strict=True):
        so_far = found[population_id]
        if isinstance(so_far, Exception):
            continue
        found[population_id] = picture if isinstance(picture, Exception) else [*so_far, picture]
    return found


def _measure_chunk(
    chunk: list[Population],
    images: dict[int, list[PILImage.Image] | Exception],
    attributes: Sequence[AttributeSpec],
    set_spec: SetSpec | None,
    device: str,
    report: MeasureReport,
) -> None:
    pictures: dict[int, list[PILImage.Image]] = {}
    for population_id, opened in images.items():
        if isinstance(opened, Exception):
            logger.warning("metrics: population %s images unreadable: %s", population_id, opened)
            report.failed.append((population_id, f"images unreadable: {opened}"))
        else:
            pictures[population_id] = opened
    chunk = [p for p in chunk if p.pk in pictures and pictures[p.pk]]
    if not chunk:
        return
    flat = [picture for p in chunk for picture in pictures[p.pk]]
    offsets = _offsets([len(pictures[p.pk]) for p in chunk])
    # Every backend runs once over the whole chunk: one batched call per attribute, not one per population.
    labels: dict[str, list[str | None]] = {}
    backends: dict[str, Backend] = {}
    for spec in attributes:
        backend = load_backend(spec.backend, spec.source or spec.model, device=device)
        backends[spec.key] = backend
        labels[spec.key] = backend.labels(flat, spec)
    set_values: dict[int, tuple[float, float | None, float | None]] = {}
    set_backend: Backend | None = None
    if set_spec is not None:
        set_backend = load_backend(
            set_spec.backend, (set_spec.source or set_spec.model) if set_spec.backend == "clip" else "", device=device
        )
        embeddings = set_backend.embed(flat)
        for population, (lo, hi) in zip(chunk, offsets, strict=True):
            caption = population.prompt.caption
            group = pictures[population.pk]
            set_values[population.pk] = (
                measures.vendi_score(embeddings[lo:hi]),
                set_backend.faithfulness(group, caption),
                set_backend.clip_score(group, caption),
            )
    for population, (lo, hi) in zip(chunk, offsets, strict=True):
        _store(
            population,
            attributes,
            {key: values[lo:hi] for key, values in labels.items()},
            backends,
            set_spec,
            set_backend,
            set_values.get(population.pk),
        )
        report.measured += 1
        report.images += hi - lo


def _offsets(sizes: list[int]) -> list[tuple[int, int]]:
    out, at = [], 0
    for size in sizes:
        out.append((at, at + size))
        at += size
    return out


@transaction.atomic
def _store(
    population: Population,
    attributes: Sequence[AttributeSpec],
    labels: dict[str, list[str | None]],
    backends: dict[str, Backend],
    set_spec: SetSpec | None,
    set_backend: Backend | None,
    set_values: tuple[float, float | None, float | None] | None,
) -> None:
    images = sorted(population.images.all(), key=lambda i: i.index)
    keys = [spec.key for spec in attributes]
    # Replacing, not updating: a recompute leaves exactly one row per image and spec, whatever was there.
    ImageLabel.objects.filter(image__population=population, spec_key__in=keys).delete()
    AttributeMeasure.objects.filter(population=population, spec_key__in=keys).delete()
    label_rows, measure_rows = [], []
    for spec in attributes:
        read = labels[spec.key]
        label_rows += [
            ImageLabel(image=image, spec_key=spec.key, attribute=spec.name, label=value or "")
            for image, value in zip(images, read, strict=True)
        ]
        result = measures.class_measures(read, spec.classes, spec.target)
        measure_rows.append(
            AttributeMeasure(
                population=population,
                spec_key=spec.key,
                attribute=spec.name,
                backend=spec.backend,
                model_id=backends[spec.key].model_id,
                classes=list(spec.classes),
                target=spec.target,
                counts=result.counts,
                images=len(images),
                counted=result.counted,
                shares=result.shares,
                discrepancy=result.discrepancy,
                kl=result.kl,
                entropy=result.entropy,
                distinct=result.distinct,
                effective=result.effective,
            )
        )
    ImageLabel.objects.bulk_create(label_rows)
    AttributeMeasure.objects.bulk_create(measure_rows)
    if set_spec is not None and set_backend is not None and set_values is not None:
        vendi, faithfulness, clip_score = set_values
        SetMeasure.objects.filter(population=population, spec_key=set_spec.key).delete()
        SetMeasure.objects.create(
            population=population,
            spec_key=set_spec.key,
            backend=set_spec.backend,
            model_id=set_backend.model_id,
            feature=set_spec.feature,
            images=len(images),
            vendi=vendi,
            faithfulness=faithfulness,
            clip_score=clip_score,
        )
