"""Writes for generators, prompts and the generation queue (plan, claim, store, fail, release)."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from core.errors import ApplicationError
from core.models import sync_object
from generation import signals
from generation.image_files import BadImage, ImageFacts, canonical_png
from generation.media_io import read_stored, save_many
from generation.models import Demand, Generator, Image, Population, Prompt, image_upload_to
from generation.owners import stored_owner
from generation.pipelines import PipelineError, PipelineSpec
from generation.planning import Candidate, Coverage, QueueKey, choose_batch, order_candidates
from generation.prompt_files import PromptRow
from generation.prompting import population_prompts
from generation.providers import ProviderSettingsError, check_api_generator, is_api_source
from generation.providers.budgets import get_refused_queues
from generation.selectors import get_queue_states

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GeneratorSpec:
    name: str
    display_name: str
    description: str
    source: str
    settings: dict[str, Any]
    prompt_template: str = "{prompt}"
    is_offline_standin: bool = False
    gold_source: bool = True
    # None: "api" for a hosted API's source (generation.providers), the model's default otherwise.
    backend: str | None = None


class GeneratorRefused(ApplicationError):
    """A generator that could never run (a hosted API's source or settings); the message names the field."""

    code = "invalid_generator"


def check_generator(*, backend: str, source: str, settings: Any) -> None:
    """GeneratorRefused unless the generator could run: a hosted API's source and settings, or a diffusers
    pipeline's settings (generation.pipelines.PipelineSpec: steps, guidance, size, max_sequence_length...), checked
    when it is saved rather than when a worker first claims its work. Imported generators pass."""
    try:
        check_api_generator(backend=backend, source=source, settings=settings)
    except ProviderSettingsError as exc:
        raise GeneratorRefused(str(exc)) from None
    if backend == Generator.Backend.DIFFUSERS and not is_api_source(source):
        try:
            PipelineSpec.from_settings(source, settings)
        except PipelineError as exc:
            raise GeneratorRefused(str(exc)) from None


@transaction.atomic
def sync_generator(*, spec: GeneratorSpec) -> tuple[Generator, str]:
    """Create or update the generator named `spec.name`; "created", "updated" or "unchanged".

    GeneratorRefused, with nothing changed, for a hosted API generator whose settings could never run.
    """
    backend = spec.backend or (Generator.Backend.API if is_api_source(spec.source) else None)
    check_generator(backend=backend or Generator.Backend.DIFFUSERS, source=spec.source, settings=spec.settings)
    values = {
        "display_name": spec.display_name,
        "description": spec.description,
        "source": spec.source,
        "settings": spec.settings,
        "prompt_template": spec.prompt_template,
        "is_offline_standin": spec.is_offline_standin,
        "gold_source": spec.gold_source,
    }
    if backend is not None:
        values["backend"] = backend
    return sync_object(Generator, lookup={"name": spec.name}, values=values)


@transaction.atomic
def import_prompts(*, rows: Iterable[PromptRow], owner_id: int | None = None) -> tuple[list[Prompt], Counter[str]]:
    """Get or create one prompt per row in `owner_id`'s prompts; returns them in row order, counts created/existing.

    A row finds the owner's own prompt of that caption and category, else a shared one (Prompt.is_shared),
    else a new prompt of the owner's: never another owner's, whose image sets would come with it.
    """
    counts: Counter[str] = Counter()
    prompts = []
    own = Q(owner_id=owner_id) if owner_id is not None else Q(owner__isnull=True)
    for row in rows:
        candidates = Prompt.objects.filter(own | Q(is_shared=True), caption=row.caption, category=row.category)
        # The owner's own row first, then a shared one.
        prompt = candidates.filter(own).first() or candidates.first()
        counts["existing" if prompt is not None else "created"] += 1
        if prompt is None:
            prompt = Prompt.objects.create(caption=row.caption, category=row.category, owner_id=owner_id)
        prompts.append(prompt)
    return prompts, counts


# --- the generation queue ---------------------------------------------------------------------------------

MAX_ATTEMPTS = 3
# After a queue's population failed for good, its generator is likely broken: wait this long
# before planning new work for it, instead of failing the same way in a tight loop.
FAILURE_BACKOFF = timedelta(minutes=10)
READY_GROUP = "generation.ready"


@dataclass(frozen=True)
class DemandSpec:
    generator: Generator
    prompt: Prompt
    size: int
    low_watermark: int = 1
    high_watermark: int = 2
    max_uses: int = 5


@dataclass(frozen=True)
class ImageInput:
    """One finished image of a claimed population, encoded, with what reproduces it."""

    index: int
    data: bytes
    extension: str
    seed: int
    prompt: str
    truncated: bool
    width: int
    height: int
    # What the image's source was asked and answered (Image.provenance): an import's file and row, an API's answer.
    provenance: dict[str, Any] = field(default_factory=dict)


@transaction.atomic
def sync_demand(*, owner: str, demands: Iterable[DemandSpec]) -> Counter[str]:
    """Make `owner`'s demand exactly `demands`: create, update, and delete what is no longer wanted."""
    counts: Counter[str] = Counter()
    keep = []
    for spec in demands:
        demand, outcome = sync_object(
            Demand,
            lookup={"owner": owner, "generator": spec.generator, "prompt": spec.prompt, "size": spec.size},
            values={
                "low_watermark": spec.low_watermark,
                "high_watermark": spec.high_watermark,
                "max_uses": spec.max_uses,
            },
        )
        counts[outcome] += 1
        keep.append(demand.pk)
    counts["deleted"] = Demand.objects.filter(owner=owner).exclude(pk__in=keep).delete()[0]
    return counts


def _new_seeds(size: int) -> list[int]:
    # 31-bit seeds: every framework's generator accepts them, and they read well in exports.
    return [secrets.randbelow(2**31) for _ in range(size)]


@transaction.atomic
def plan_populations(*, owner: str | None = None, now: datetime | None = None) -> int:
    """Create pending populations for every queue below its low watermark; returns how many."""
    now = now or timezone.now()
    if connection.vendor == "postgresql":
        # Two workers planning at once would both see the same deficit; the row locks make the
        # second wait for the first and then count its new populations.
        list(Demand.objects.select_for_update().order_by("pk").values_list("pk", flat=True))
    created: list[Population] = []
    states = get_queue_states(owner=owner)
    # A prompt a hosted API refused every time is shown to the researcher, not asked for again (until retried).
    refused = get_refused_queues() if any(state.deficit for state in states) else set()
    for state in states:
        if state.last_failed_at is not None and now - state.last_failed_at < FAILURE_BACKOFF:
            continue
        if (state.generator_id, state.prompt_id) in refused:
            continue
        created.extend(
            Population(
                generator_id=state.generator_id,
                prompt_id=state.prompt_id,
                size=state.size,
                seeds=_new_seeds(state.size),
            )
            for _ in range(state.deficit)
        )
    Population.objects.bulk_create(created)
    return len(created)


def _claimable(now: datetime) -> QuerySet[Population]:
    return Population.objects.filter(
        Q(status=Population.Status.PENDING) | Q(status=Population.Status.GENERATING, lease_until__lt=now)
    )


@transaction.atomic
def claim_generation_batch(
    *,
    worker: str,
    max_images: int,
    lease: timedelta,
    owner: str | None = None,
    generator_ids: Iterable[int] | None = None,
    now: datetime | None = None,
) -> list[Population]:
    """Claim pending (or abandoned) populations of one generator, up to `max_images` images, best first.

    "Best" is generation.planning's order: a comparison made possible as early as possible,
    then the populations that unlock the most comparisons. The first population is claimed
    whatever its size; the others only while they fit, so a small claim stays small (the
    worker sizes claims to what it will finish soon, and the rest stays visibly queued).
    Returned in the order to make them.

    Each claim is a compare-and-set on the row, so two workers never hold the same population;
    on PostgreSQL the chosen rows are also locked with SKIP LOCKED so workers don't queue up.
    `generator_ids`, when given, is all a worker may claim (a limited worker token's generators).
    """
    now = now or timezone.now()
    # An imported generator's sets are never made by a worker, even where a pending row of one was written by hand.
    candidates = _claimable(now).exclude(generator__backend=Generator.Backend.IMPORTED)
    if generator_ids is not None:
        candidates = candidates.filter(generator_id__in=list(generator_ids))
    if owner is not None:
        owned = Demand.objects.filter(
            owner=stored_owner(owner), generator=OuterRef("generator"), prompt=OuterRef("prompt"), size=OuterRef("size")
        )
        candidates = candidates.filter(Exists(owned))
    fields = ("pk", "generator_id", "prompt_id", "size", "status")
    rows = list(candidates.order_by("created_at", "pk").values_list(*fields))
    if not rows:
        return []
    # A generating candidate's lease ran out: it counts as work to do, not as work under way.
    expired: Counter[QueueKey] = Counter(
        (generator_id, prompt_id, size) for _, generator_id, prompt_id, size, status in rows if status != "pending"
    )
    coverage = {
        key: Coverage(covered=state.available + state.generating - expired[key], priority=state.priority)
        for state in get_queue_states(owner=owner)
        for key in [(state.generator_id, state.prompt_id, state.size)]
    }
    # Populations no demand wants any more come last, as they did when ordered by priority.
    unwanted = Coverage(covered=0, priority=float("-inf"))
    ordered = order_candidates(
        [Candidate(pk, generator_id, prompt_id, size) for pk, generator_id, prompt_id, size, _ in rows],
        {**{c: unwanted for c in {(r[1], r[2], r[3]) for r in rows}}, **coverage},
    )
    ordered = _within_budgets(ordered)
    chosen: list[int] = []
    while ordered and not chosen:
        batch = choose_batch(ordered, max_images)
        free = _unlocked([c.pk for c in batch])
        for candidate in batch:
            claimed = candidate.pk in free and _claimable(now).filter(pk=candidate.pk).update(
                status=Population.Status.GENERATING,
                claimed_by=worker,
                lease_until=now + lease,
                attempts=F("attempts") + 1,
                updated_at=now,
            )
            if claimed:
                chosen.append(candidate.pk)
        # Another worker took this generator's best rows first: try the next generator.
        taken = {c.pk for c in batch}
        ordered = [c for c in ordered if c.pk not in taken]
    populations = Population.objects.filter(pk__in=chosen).select_related("generator", "prompt").in_bulk()
    return [populations[pk] for pk in chosen]


# While claims keep finding work, the queues are planned at most this often (planning reads every queue).
PLAN_EVERY_S = 5


def plan_and_claim(
    *, claim: Callable[[], list[Population]], plan: Callable[[], object], plan_due: Callable[[], bool]
) -> list[Population]:
    """Claim a batch, planning the queues when the claim came back empty (then claim again) or when due.

    The local worker and the remote workers' claim API both claim this way; each passes its own
    queue calls and its own clock: `plan_due` is asked only after a claim found work, so it may
    mark the interval as taken (the API does, once for all its workers).
    """
    batch = claim()
    if not batch or plan_due():
        plan()
        batch = batch or claim()
    return batch


def _within_budgets(ordered: list[Candidate]) -> list[Candidate]:
    """The candidates a hosted API generator's `budget` still pays for (generation.providers.budgets), in order.

    On PostgreSQL the budgeted generators' rows are locked first, so two workers claiming at once do not
    both spend the same remainder.
    """
    from generation.providers.budgets import get_affordable_images

    budgeted = Generator.objects.filter(backend=Generator.Backend.API, settings__has_key="budget")
    if connection.vendor == "postgresql":
        list(budgeted.select_for_update().order_by("pk").values_list("pk", flat=True))
    elif not budgeted.exists():
        return ordered
    affordable = get_affordable_images()
    kept = []
    for candidate in ordered:
        left = affordable.get(candidate.generator_id)
        if left is not None:
            if candidate.size > left:
                continue
            affordable[candidate.generator_id] = left - candidate.size
        kept.append(candidate)
    return kept


def _unlocked(population_ids: list[int]) -> set[int]:
    """Those of `population_ids` no other transaction is claiming now (on PostgreSQL; all of them elsewhere)."""
    rows = Population.objects.filter(pk__in=population_ids)
    if connection.vendor == "postgresql":
        rows = rows.select_for_update(skip_locked=True)
    return set(rows.values_list("pk", flat=True))


def _held(worker: str, population_ids: Iterable[int]) -> QuerySet[Population]:
    return Population.objects.filter(
        pk__in=list(population_ids), status=Population.Status.GENERATING, claimed_by=worker
    )


def renew_leases(*, worker: str, population_ids: Iterable[int], lease: timedelta) -> int:
    """Extend the worker's leases; returns how many it still holds."""
    now = timezone.now()
    return _held(worker, population_ids).update(lease_until=now + lease, updated_at=now)


def release_claims(*, worker: str, population_ids: Iterable[int]) -> int:
    """Hand unfinished populations back to the queue (a stopping worker); the attempt does not count."""
    return _held(worker, population_ids).update(
        status=Population.Status.PENDING,
        claimed_by="",
        lease_until=None,
        attempts=Greatest(F("attempts") - 1, Value(0)),
        updated_at=timezone.now(),
    )


@transaction.atomic
def fail_population(*, worker: str, population_id: int, error: str) -> str | None:
    """Record a failed attempt: back to pending while attempts remain, else failed for good.

    Returns the new status, or None if the worker no longer held the population.
    """
    population = _held(worker, [population_id]).select_for_update().first()
    if population is None:
        return None
    final = population.attempts >= MAX_ATTEMPTS
    population.status = Population.Status.FAILED if final else Population.Status.PENDING
    population.error = f"attempt {population.attempts}: {error}"[:4000]
    population.claimed_by = ""
    population.lease_until = None
    population.save(update_fields=["status", "error", "claimed_by", "lease_until", "updated_at"])
    return population.status


def retry_failed_populations(*, population_ids: Iterable[int]) -> int:
    """Queue failed populations again with fresh attempts (after a generator was fixed)."""
    return Population.objects.filter(pk__in=list(population_ids), status=Population.Status.FAILED).update(
        status=Population.Status.PENDING, attempts=0, updated_at=timezone.now()
    )


def _store_files(images: Sequence[ImageInput]) -> tuple[list[ImageInput], list[str]]:
    """Write every image in its canonical PNG form (generation.image_files.canonical_png) under a random name.

    The one place image files are written: whatever format, metadata or encoder an image came in, its stored
    bytes depend only on its pixels. Returns the images as stored (their rows' sha256 is of these bytes) and
    the names; a BadImage refuses the lot, with nothing written.
    """
    stored = []
    for image in images:
        canonical = canonical_png(image.data)
        stored.append(
            replace(
                image,
                data=canonical.data,
                extension=canonical.extension,
                width=canonical.width,
                height=canonical.height,
            )
        )
    # A few at a time (object storage answers each write after a round trip); all stored, or none left behind.
    files = [(image_upload_to(None, f"{secrets.token_hex(16)}.{image.extension}"), image.data) for image in stored]
    return stored, save_many(default_storage, files)


def _delete_files(names: Iterable[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except Exception:  # cleanup must not hide the error that caused it
            logger.exception("could not delete orphaned image file %s", name)


def _create_images(population: Population, images: Sequence[ImageInput], names: Sequence[str]) -> None:
    """The image rows of a population whose files are already stored under `names`."""
    Image.objects.bulk_create(
        Image(
            population=population,
            index=image.index,
            file=name,
            seed=image.seed,
            generation_prompt=image.prompt,
            prompt_truncated=image.truncated,
            width=image.width,
            height=image.height,
            sha256=hashlib.sha256(image.data).hexdigest(),
            byte_size=len(image.data),
            provenance=image.provenance,
        )
        for image, name in zip(images, names, strict=True)
    )


class ImagesRefused(ApplicationError):
    """The store refused a population's images (unreadable, missing ones, the wrong size); nothing was stored.

    The contract between the store and the worker: the worker records it as that attempt's failure, and a remote
    worker reads the server's 400 as the same (generation.remote). Any other error from a store is a fault, and
    the worker stops on it rather than blaming the images.
    """

    code = "images_refused"


class WrongImageSize(ImagesRefused):
    """Images of another size than their generator's: participants could tell the sides apart by size."""

    code = "wrong_image_size"


def configured_image_size(generator: Generator) -> tuple[int, int] | None:
    """The (width, height) a generator's settings name (`width` and `height`, or `size` "WxH"); None if they don't."""
    settings_ = generator.settings if isinstance(generator.settings, dict) else {}
    width, height = settings_.get("width"), settings_.get("height")
    size = settings_.get("size")
    if width is None and height is None and isinstance(size, str) and size.count("x") == 1:
        width, height = size.split("x")
    try:
        return (int(width), int(height)) if width is not None and height is not None else None
    except (TypeError, ValueError):
        return None


def check_image_sizes(*, generator: Generator, population_id: int, images: Sequence[ImageInput]) -> None:
    """WrongImageSize naming both sizes unless every image has its generator's configured size (and all one size)."""
    expected = configured_image_size(generator)
    sizes = sorted({(image.width, image.height) for image in images})
    wrong = [size for size in sizes if expected is not None and size != expected]
    if wrong or len(sizes) > 1:
        got = ", ".join(f"{w}x{h}" for w, h in sizes)
        wanted = f"{expected[0]}x{expected[1]}" if expected is not None else "one size for every image"
        raise WrongImageSize(
            f"population {population_id}: images of {got}, but generator {generator.name!r} makes {wanted}; "
            "nothing was stored"
        )


def store_population(*, worker: str, population_id: int, images: Sequence[ImageInput], generation_ms: int) -> bool:
    """Store all N images and mark the population ready, in one transaction; never half-visible.

    Files are written first under random names; if the worker lost its claim meanwhile (its
    lease ran out and another worker took over) or anything fails, they are deleted again
    and the population is left as it was. Returns whether the population became ready; ImagesRefused when
    the images are not a whole set of readable images of the generator's size.
    """
    try:
        images, names = _store_files(images)
    except BadImage as bad:
        raise ImagesRefused(f"population {population_id}: {bad}") from None
    try:
        with transaction.atomic():
            population = _held(worker, [population_id]).select_for_update().first()
            if population is None:
                _delete_files(names)
                return False
            indexes = sorted(image.index for image in images)
            if indexes != list(range(population.size)):
                raise ImagesRefused(f"population {population_id} needs images 0..{population.size - 1}, got {indexes}")
            check_image_sizes(generator=population.generator, population_id=population_id, images=images)
            _create_images(population, images, names)
            now = timezone.now()
            population.status = Population.Status.READY
            population.ready_at = now
            population.claimed_by = ""
            population.lease_until = None
            population.error = ""
            population.generation_ms = generation_ms
            # The seeds the images were made with: a blank image redrawn with a new seed replaced its planned one.
            population.seeds = [image.seed for image in sorted(images, key=lambda image: image.index)]
            population.save(
                update_fields=[
                    "seeds",
                    "status",
                    "ready_at",
                    "claimed_by",
                    "lease_until",
                    "error",
                    "generation_ms",
                    "updated_at",
                ]
            )
            transaction.on_commit(partial(_announce_ready, population))
            # After the announcement: metrics and other listeners never delay serving a population.
            transaction.on_commit(partial(signals.send_population_ready, population.pk))
    except Exception:
        _delete_files(names)
        raise
    return True


@dataclass(frozen=True)
class UploadedImage:
    """One image a remote worker sent, already checked (generation.image_files.inspect_image)."""

    data: bytes
    facts: ImageFacts
    truncated: bool = False
    # What the worker's source was asked and answered (a hosted API's request id...), as a local store records it.
    provenance: dict[str, Any] = field(default_factory=dict)


def store_uploaded_population(
    *, worker: str, population_id: int, uploads: Sequence[UploadedImage], generation_ms: int
) -> bool:
    """store_population for a remote worker: image i gets the population's seed i and the prompt made from it.

    The seeds and prompts are the server's (the worker was given the same ones with its claim),
    so an upload cannot change what an image claims to reproduce. Returns False when the worker
    no longer holds the population; a wrong image count is an ApplicationError. Either way
    nothing is stored.
    """
    population = _held(worker, [population_id]).select_related("generator", "prompt").first()
    if population is None:
        return False
    if len(uploads) != population.size:
        raise ApplicationError(
            f"population {population_id} has {population.size} images; {len(uploads)} were uploaded",
            code="wrong_image_count",
        )
    prompts = population_prompts(
        population.prompt.caption,
        template=population.generator.prompt_template,
        settings=population.generator.settings,
        seeds=population.seeds,
    )
    images = [
        ImageInput(
            index=index,
            data=upload.data,
            extension=upload.facts.extension,
            seed=seed,
            prompt=prompt,
            truncated=upload.truncated,
            width=upload.facts.width,
            height=upload.facts.height,
            provenance=upload.provenance,
        )
        for index, (upload, seed, prompt) in enumerate(zip(uploads, population.seeds, prompts, strict=True))
    ]
    return store_population(worker=worker, population_id=population_id, images=images, generation_ms=generation_ms)


@dataclass(frozen=True)
class ImportedSet:
    """A set of images made elsewhere for one generator and prompt: images 0..N-1 with their provenance."""

    generator: Generator
    prompt: Prompt
    images: Sequence[ImageInput]


@transaction.atomic
def store_imported_sets(*, sets: Sequence[ImportedSet]) -> list[Population]:
    """Store image sets made elsewhere as ready populations with no uses yet, all or none.

    The images are written as every image is (_store_files: canonical PNG, random names) and held to their
    generator's size (check_image_sizes); if anything fails the files written are deleted again. Callers
    make this the last write of their transaction, so a rollback after it cannot leave files behind.
    """
    names: list[str] = []
    populations: list[Population] = []
    try:
        for imported in sets:
            images, stored = _store_files(imported.images)
            names.extend(stored)
            ordered = sorted(images, key=lambda image: image.index)
            if [image.index for image in ordered] != list(range(len(ordered))):
                raise ValueError(f"an imported set needs images 0..{len(ordered) - 1}")
            population = Population.objects.create(
                generator=imported.generator,
                prompt=imported.prompt,
                size=len(ordered),
                seeds=[image.seed for image in ordered],
                status=Population.Status.READY,
                ready_at=timezone.now(),
            )
            check_image_sizes(generator=imported.generator, population_id=population.pk, images=images)
            _create_images(population, images, stored)
            populations.append(population)
            transaction.on_commit(partial(_announce_ready, population))
            transaction.on_commit(partial(signals.send_population_ready, population.pk))
    except Exception:
        _delete_files(names)
        raise
    return populations


def _announce_ready(population: Population) -> None:
    """Tell waiting pages that a population is ready; a dead channel layer must not fail the store."""
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return
    message = {
        "type": "population.ready",
        "population": population.pk,
        "generator": population.generator_id,
        "prompt": population.prompt_id,
        "size": population.size,
    }
    try:
        async_to_sync(layer.group_send)(READY_GROUP, message)
    except Exception:
        logger.warning("could not announce ready population %s on the channel layer", population.pk, exc_info=True)


# --- gold-check decoys ------------------------------------------------------------------------------------

DECOY_GENERATOR = "gold-decoy"


def _decoy_generator() -> Generator:
    """The stand-in 'generator' of degraded copies: never in a campaign, never generating, never ranked."""
    generator, _ = Generator.objects.get_or_create(
        name=DECOY_GENERATOR,
        defaults={
            "display_name": "Quality check (a deliberately degraded copy)",
            "description": "Gold comparisons: one side is a degraded copy of the other, so the right answer is known.",
            "source": "builtin:gold-decoy",
            "is_active": False,
        },
    )
    return generator


@transaction.atomic
def get_or_create_decoy(*, population: Population) -> Population:
    """A ready, degraded copy of a ready population (same prompt, size and image count), made once.

    Files are written before the rows; if the transaction fails they are deleted again, so a
    decoy, like any population, is either ready with all its images or not there.
    """
    from generation.degrade import degrade_image

    existing = population.decoys.filter(status=Population.Status.READY).first()
    if existing is not None:
        return existing
    if population.status != Population.Status.READY:
        raise ValueError(f"population {population.pk} is {population.status}, not ready: no decoy of it")
    sources = list(population.images.order_by("index"))
    # Every copy is made from the set's first picture, so the decoy is also the least varied set: plainly
    # worse on a diversity question as well as on quality, whatever the real set shows.
    first = read_stored(sources[0].file.storage, sources[0].file.name)
    inputs = []
    for image in sources:
        data, extension = degrade_image(first, seed=image.seed)
        inputs.append(
            ImageInput(
                index=image.index,
                data=data,
                extension=extension,
                seed=image.seed,
                prompt=image.generation_prompt,
                truncated=image.prompt_truncated,
                width=image.width,
                height=image.height,
            )
        )
    inputs, names = _store_files(inputs)
    try:
        now = timezone.now()
        decoy = Population.objects.create(
            generator=_decoy_generator(),
            prompt_id=population.prompt_id,
            size=population.size,
            seeds=population.seeds,
            status=Population.Status.READY,
            ready_at=now,
            decoy_of=population,
        )
        _create_images(decoy, inputs, names)
    except Exception:
        _delete_files(names)
        raise
    return decoy
