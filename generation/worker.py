"""The generation worker: plan -> claim -> batch -> generate -> store, in a loop over a work queue.

The queue is generation.services itself (the worker shares the server's database) or a
generation.remote.RemoteQueue (the worker reaches the server over HTTP with a `worker` token);
both have the same six functions.

One worker owns one device and keeps its pipelines resident. Heavy libraries (torch,
diffusers) are imported lazily through generation.pipelines, so importing this module is
cheap. SIGTERM and SIGINT finish the pipeline call under way, store what is complete and
hand the rest of the claim back to the queue.

With `store_behind` (run_generation_worker sets it) a finished population is stored - PNG
encoding, files, the transaction, then the population_ready listeners such as metrics - by one
background thread while the next pipeline call runs. Only that thread and this one use the
queue, one call at a time (a lock): SQLite's shared in-memory test database and a
RemoteQueue's HTTP session are not safe for concurrent use, and a store is short. Metrics run
after the lock is let go (generation.signals.held_back), so they never hold up a claim.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Protocol, TextIO, TypeVar

from django.conf import settings as django_settings
from django.db import connections

from generation import services, signals
from generation.image_files import BLANK_FAILURE, is_blank
from generation.models import Population
from generation.pipelines import (
    GeneratedImage,
    PipelineError,
    PipelineSpec,
    ResidentPipelineCache,
    encode_png,
    generate,
    import_pipeline_libraries,
)
from generation.prompting import population_prompts
from generation.providers import ImageProvider, Limits, ProviderError, is_api_source, load_provider

logger = logging.getLogger("poparena.worker")

# A claim holds at most a few pipeline calls' worth of images: fewer round trips to the database,
# and populations of N images pack into full batches even when N does not divide the batch size.
CALLS_PER_CLAIM = 4
# ...and no more than the worker finishes in about this long at its measured speed, so the rest
# stays queued for whichever worker is free first, and a fresh worker (no speed measured yet)
# claims one call's worth: the first comparison's two populations are not stuck behind others.
CLAIM_HORIZON_S = 8.0
# Populations handed to the storing thread and not yet stored. More waiting means storing is slower
# than generating: the generating thread then waits, so memory and the age of unstored claims stay bounded.
STORES_IN_FLIGHT = 4
T = TypeVar("T")


class WorkQueue(Protocol):
    """What the worker needs of the queue: generation.services, or a RemoteQueue over the HTTP API."""

    def plan_populations(self, *, owner: str | None = None) -> int: ...

    def claim_generation_batch(
        self, *, worker: str, max_images: int, lease: timedelta, owner: str | None = None
    ) -> list[Population]: ...

    def renew_leases(self, *, worker: str, population_ids: Iterable[int], lease: timedelta) -> int: ...

    def release_claims(self, *, worker: str, population_ids: Iterable[int]) -> int: ...

    def fail_population(self, *, worker: str, population_id: int, error: str) -> str | None: ...

    def store_population(
        self, *, worker: str, population_id: int, images: Sequence[services.ImageInput], generation_ms: int
    ) -> bool:
        """True once stored, False when the claim was lost; services.ImagesRefused when the images were refused."""
        ...


@dataclass
class WorkerStats:
    """Counters a person (or a benchmark) reads: images made, seconds inside pipeline calls and loading them.

    `wall_s` runs from the worker's creation. The share outside pipeline calls is of the time the
    worker had work: the wall less `idle_s`, when it looked and found nothing to do (which includes
    importing the pipeline libraries while waiting: `warm_s`). It includes loading the
    pipelines (imports and from_pretrained, once per pipeline: `load_s`) as well as claiming,
    planning and whatever storing the generating thread waits for.
    """

    images: int = 0
    populations: int = 0
    failed_attempts: int = 0
    blank_images: int = 0  # images that came back blank and were redrawn or failed their set
    pipeline_s: float = 0.0
    load_s: float = 0.0
    idle_s: float = 0.0
    warm_s: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    per_generator: dict[str, list[float]] = field(default_factory=lambda: defaultdict(lambda: [0.0, 0.0]))

    @property
    def wall_s(self) -> float:
        return time.perf_counter() - self.started

    def share_outside(self, *, wall_s: float, counting_load: bool = True) -> float:
        """Share of the busy part of `wall_s` spent outside pipeline calls; without `counting_load`, loading
        counts as neither."""
        busy = wall_s - self.idle_s
        if not counting_load:
            busy -= self.load_s
        return 1 - self.pipeline_s / busy if busy > 0 else 0.0

    def add_call(self, generator: str, images: int, seconds: float) -> None:
        self.images += images
        self.pipeline_s += seconds
        self.per_generator[generator][0] += images
        self.per_generator[generator][1] += seconds


@dataclass(frozen=True)
class _Item:
    population: Population
    index: int
    seed: int
    prompt: str


@dataclass(frozen=True)
class _Stored:
    """What became of one store: ready, claim lost (stored False), or refused and failed (reason set)."""

    population_id: int
    stored: bool
    failed: str | None = None
    status: str | None = None


class GenerationWorker:
    def __init__(
        self,
        *,
        device: str,
        cache_dir: Path,
        max_batch: int = 8,
        lease: timedelta = timedelta(minutes=2),
        owner: str | None = None,
        cache_budget_bytes: int = 8 * 2**30,
        idle_sleep_s: float = 1.0,
        progress: TextIO | None = None,
        queue: WorkQueue | None = None,
        name: str | None = None,
        store_behind: bool = False,
        ready: Callable[[], str | None] | None = None,
        api_limits: Limits | None = None,
        blank_tries: int | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.device = device
        self.max_batch = max_batch
        self.lease = lease
        self.owner = owner
        self.idle_sleep_s = idle_sleep_s
        self.progress = progress
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{device}"
        self.queue: WorkQueue = queue if queue is not None else services
        self.cache = ResidentPipelineCache(cache_dir=cache_dir, budget_bytes=cache_budget_bytes)
        # Hosted API generators (generation.providers): no pipeline, no device; kept so pacing and clients persist.
        self.api_limits = api_limits or Limits()
        self._providers: dict[tuple[str, str], ImageProvider] = {}
        self.stats = WorkerStats()
        self.stopping = False
        self._planned_at = float("-inf")
        self._warmed = False
        # Says why the queue cannot be used yet (run_generation_worker: the database is not migrated), or None once
        # it can. Until then the worker waits as it does with nothing to do, importing the pipeline libraries.
        self._not_ready = ready
        # Off by default: the storing thread has its own database connection, which cannot see the
        # rows of a caller's open transaction (a test's, for one). run_generation_worker turns it on.
        self.store_behind = store_behind
        # Draws of one image before a set whose image keeps coming back blank fails (GENERATION_BLANK_TRIES).
        self.blank_tries = max(1, blank_tries or int(getattr(django_settings, "GENERATION_BLANK_TRIES", 3)))
        # Only the server's own queue records a redrawn image's new seed; a remote worker's upload takes the
        # population's planned seeds, so there a blank image fails the attempt instead of being redrawn.
        self.redraw_blanks = queue is None
        self._queue_lock = threading.Lock()
        self._store_thread: ThreadPoolExecutor | None = None
        self._stores: deque[Future[_Stored]] = deque()
        # When each held population's lease was last set (monotonic; taken before the call, so never late).
        self._leased_at: dict[int, float] = {}

    # --- lifecycle ------------------------------------------------------------------------------------------

    def request_stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        if not self.stopping:
            logger.info("stop requested: finishing the current pipeline call, then releasing the claim")
        self.stopping = True

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def run(self, *, once: bool = False) -> WorkerStats:
        """Serve the queues until stopped; with `once`, until every queue is full and no work is left."""
        logger.info("worker %s serving %s (max batch %d images)", self.name, self.owner or "all queues", self.max_batch)
        try:
            while not self.stopping:
                began = time.perf_counter()
                if self._queue_ready() and self.step():
                    continue
                if once:
                    break
                if not self._warmed:
                    self._warm_up()
                time.sleep(self.idle_sleep_s)
                self.stats.idle_s += time.perf_counter() - began
            self.wait_for_stores()
        finally:
            self.close()
        self.log_summary()
        return self.stats

    def _queue_ready(self) -> bool:
        if self._not_ready is None:
            return True
        reason = self._not_ready()
        if reason is None:
            if self._warmed:
                logger.info("the queue is ready")
            self._not_ready = None  # ready once, ready for good: nothing here becomes unready again
            return True
        if not self._warmed:
            logger.info("waiting: %s", reason)
        return False

    def step(self) -> bool:
        """Plan, claim one batch and work it; False when there was nothing to do."""
        batch = services.plan_and_claim(
            claim=self._claim,
            plan=self._plan,
            plan_due=lambda: time.monotonic() - self._planned_at > services.PLAN_EVERY_S,
        )
        if not batch:
            if self._stores:
                # Nothing to claim while sets are still being stored: a store that fails hands its population
                # back to the queue, so look again once they are done (with --once, before stopping).
                self.wait_for_stores()
                return True
            return False
        self.work(batch)
        return True

    def _warm_up(self) -> None:
        """Nothing to do yet: import the pipeline libraries now (seconds on a CPU) rather than when work comes.

        Only here, on the thread that loads pipelines, and only when step() found nothing, so no store is in
        flight either: diffusers' lazy modules must not be imported from two threads at once.
        """
        self._warmed = True
        began = time.perf_counter()
        try:
            import_pipeline_libraries()
        except ImportError:
            # The first load_pipeline meets the same error and fails its work with it.
            logger.exception("importing the pipeline libraries failed")
        self.stats.warm_s += time.perf_counter() - began
        logger.info("pipeline libraries imported while waiting for work (%.1fs)", self.stats.warm_s)

    def claim_size(self) -> int:
        """Images to claim: what the worker makes in CLAIM_HORIZON_S, between one and CALLS_PER_CLAIM calls."""
        if self.stats.pipeline_s <= 0:
            return self.max_batch
        soon = int(self.stats.images / self.stats.pipeline_s * CLAIM_HORIZON_S)
        return max(self.max_batch, min(soon, self.max_batch * CALLS_PER_CLAIM))

    def _claim(self) -> list[Population]:
        leased_at = time.monotonic()
        batch = self._call(
            self.queue.claim_generation_batch,
            worker=self.name,
            max_images=self.claim_size(),
            lease=self.lease,
            owner=self.owner,
        )
        self._leased_at.update((population.pk, leased_at) for population in batch)
        return batch

    def _plan(self) -> None:
        self._call(self.queue.plan_populations, owner=self.owner)
        self._planned_at = time.monotonic()

    def _call(self, function: Callable[..., T], **kwargs: object) -> T:
        """One queue call, never at the same time as the storing thread's."""
        with self._queue_lock:
            return function(**kwargs)

    def _renew_if_due(self) -> None:
        """Renew every lease this worker holds once the oldest has less than half its time left.

        Not before every pipeline call: a renewal is a write, and with a 2-minute lease and calls of
        a fraction of a second almost all of them were needless.
        """
        if not self._leased_at:
            return
        now = time.monotonic()
        if now - min(self._leased_at.values()) < self.lease.total_seconds() / 2:
            return
        self._call(self.queue.renew_leases, worker=self.name, population_ids=list(self._leased_at), lease=self.lease)
        self._leased_at = dict.fromkeys(self._leased_at, now)

    # --- one claimed batch ----------------------------------------------------------------------------------

    def work(self, batch: Sequence[Population]) -> None:
        """Generate every image of a claimed batch (one generator) and store each finished population."""
        generator = batch[0].generator
        held = {population.pk for population in batch}
        for pk in held:
            # A batch this worker did not claim itself (tests hand one in): its lease's age is unknown, so renew first.
            self._leased_at.setdefault(pk, float("-inf"))
        loading = time.perf_counter()
        api = generator.backend == "api" or is_api_source(generator.source)
        make: Callable[[list[str], list[int]], list[GeneratedImage]]
        try:
            if api:
                make = self._provider(generator.source, generator.settings).generate
            else:
                spec = PipelineSpec.from_settings(generator.source, generator.settings)
                pipe = self.cache.get(spec, self.device)
                make = partial(generate, pipe, spec)
        except PipelineError as exc:
            for population in batch:
                self._fail(population, f"generator {generator.name!r}: {exc}")
            return
        except Exception as exc:  # anything else from a third-party loader fails this work only
            logger.exception("loading %s failed", generator.name)
            for population in batch:
                self._fail(population, f"generator {generator.name!r} could not be loaded: {exc!r}")
            return
        finally:
            self.stats.load_s += time.perf_counter() - loading

        items = [
            _Item(population, index, seed, prompt)
            for population in batch
            for index, (seed, prompt) in enumerate(
                zip(
                    population.seeds,
                    population_prompts(
                        population.prompt.caption,
                        template=generator.prompt_template,
                        settings=generator.settings,
                        seeds=population.seeds,
                    ),
                    strict=True,
                )
            )
        ]
        done: dict[int, list[tuple[_Item, GeneratedImage]]] = defaultdict(list)
        pipeline_ms: dict[int, float] = defaultdict(float)
        # An API's images come one request each: a set per call, so one set's refusal fails that set alone.
        for chunk in _by_population(items) if api else _chunks(items, self.max_batch):
            chunk = [item for item in chunk if item.population.pk in held]
            if self.stopping or not chunk:
                continue
            self._renew_if_due()
            started = time.perf_counter()
            try:
                images = make([i.prompt for i in chunk], [i.seed for i in chunk])
                chunk, images, blank = self._without_blanks(make, chunk, images)
            except PipelineError as exc:
                for population in {item.population.pk: item.population for item in chunk}.values():
                    self._fail(population, str(exc))
                    held.discard(population.pk)
                continue
            for population in {
                item.population.pk: item.population for item in chunk if item.population.pk in blank
            }.values():
                self._fail(population, blank[population.pk])
                held.discard(population.pk)
            seconds = time.perf_counter() - started
            self.stats.add_call(generator.name, len(chunk), seconds)
            self._report(generator.name, len(chunk), seconds)
            for item, image in zip(chunk, images, strict=True):
                done[item.population.pk].append((item, image))
                pipeline_ms[item.population.pk] += seconds * 1000 / len(chunk)
            for population in {item.population.pk: item.population for item in chunk}.values():
                if population.pk in held and len(done[population.pk]) == population.size:
                    self._store(population, done.pop(population.pk), int(pipeline_ms[population.pk]))
                    held.discard(population.pk)
        if held:
            # Stopping: what is finished is stored before the rest of the claim goes back.
            self.wait_for_stores()
            released = self._call(self.queue.release_claims, worker=self.name, population_ids=held)
            for pk in held:
                self._leased_at.pop(pk, None)
            logger.info("released %d unfinished population(s) back to the queue", released)

    def _without_blanks(
        self,
        make: Callable[[list[str], list[int]], list[GeneratedImage]],
        chunk: list[_Item],
        images: list[GeneratedImage],
    ) -> tuple[list[_Item], list[GeneratedImage], dict[int, str]]:
        """Redraw every blank image (generation.image_files.is_blank) with a new seed, `blank_tries` draws at most.

        A blank image never reaches a set: returns the items (redrawn ones with their new seed and prompt), the
        images (each redrawn one's provenance lists the seeds that came back blank) and, per population whose
        image was blank every time, the reason its set fails (BLANK_FAILURE: the prompt is shown to the researcher).
        """
        items, images = list(chunk), list(images)
        blank_seeds: dict[int, list[int]] = defaultdict(list)
        failed: dict[int, str] = {}
        for draw in range(1, self.blank_tries + 1):
            blank = [i for i, image in enumerate(images) if is_blank(image.image)]
            if not blank:
                break
            self.stats.blank_images += len(blank)
            for i in blank:
                blank_seeds[i].append(items[i].seed)
            if draw == self.blank_tries or not self.redraw_blanks:
                for i in blank:
                    item = items[i]
                    failed.setdefault(
                        item.population.pk,
                        f"{BLANK_FAILURE}: image {item.index} for prompt {item.population.prompt.caption!r} came back "
                        f"blank {draw} time(s) (seeds {', '.join(map(str, blank_seeds[i]))})",
                    )
                break
            for i in blank:
                item = items[i]
                seed = secrets.randbelow(2**31)
                generator = item.population.generator
                prompt = population_prompts(
                    item.population.prompt.caption,
                    template=generator.prompt_template,
                    settings=generator.settings,
                    seeds=[seed],
                )[0]
                items[i] = replace(item, seed=seed, prompt=prompt)
            for i, image in zip(
                blank, make([items[i].prompt for i in blank], [items[i].seed for i in blank]), strict=True
            ):
                images[i] = image
        for i, seeds in blank_seeds.items():
            images[i] = replace(images[i], provenance={**(images[i].provenance or {}), "blank_seeds": seeds})
        return items, images, failed

    def _provider(self, source: str, settings: object) -> ImageProvider:
        """The hosted API a generator names, built once per source and settings (ProviderError when unusable)."""
        key = (source, json.dumps(settings, sort_keys=True, default=str))
        provider = self._providers.get(key)
        if provider is None:
            if not isinstance(settings, dict):
                raise ProviderError(f"settings must be a JSON object, got {type(settings).__name__}")
            provider = self._providers[key] = load_provider(source, settings, defaults=self.api_limits)
        return provider

    # --- storing, here or behind the next pipeline call -----------------------------------------------------

    def _store(self, population: Population, finished: list[tuple[_Item, GeneratedImage]], generation_ms: int) -> None:
        """Store a finished population now, or hand it to the storing thread with `store_behind`."""
        if not self.store_behind:
            self._record(self._store_now(population, finished, generation_ms))
            return
        self._collect(wait_for=STORES_IN_FLIGHT - 1)
        if self._store_thread is None:
            self._store_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._stores.append(self._store_thread.submit(self._store_now, population, finished, generation_ms))

    def wait_for_stores(self) -> None:
        """Wait until every population handed to the storing thread is stored or failed; raises what a store raised."""
        self._collect(wait_for=0)

    def close(self) -> None:
        """Finish the stores under way and end the storing thread, closing its database connections."""
        thread, self._store_thread = self._store_thread, None
        if thread is None:
            return
        try:
            while self._stores:
                future = self._stores.popleft()
                # Stores left here come after another error (run() waits for every store first): that one is
                # being raised, so these are logged.
                if (error := future.exception()) is not None:
                    logger.error("a store failed while the worker was stopping", exc_info=error)
                else:
                    self._record(future.result())
            thread.submit(connections.close_all).result()
        finally:
            thread.shutdown(wait=True)

    def _collect(self, *, wait_for: int) -> None:
        """Record finished stores, waiting for the oldest until at most `wait_for` are under way."""
        while self._stores and (self._stores[0].done() or len(self._stores) > wait_for):
            # Popped only once done: if it raised, close() still finds the ones behind it and waits for them.
            self._stores[0].exception()
            self._record(self._stores.popleft().result())

    def _record(self, outcome: _Stored) -> None:
        self._leased_at.pop(outcome.population_id, None)
        if outcome.failed is not None:
            self.stats.failed_attempts += 1
            logger.warning(
                "population %s attempt failed (%s): %s",
                outcome.population_id,
                outcome.status or "no longer held",
                outcome.failed,
            )
        elif outcome.stored:
            self.stats.populations += 1
        else:
            logger.warning(
                "population %s was reclaimed by another worker; its images were discarded", outcome.population_id
            )

    def _store_now(
        self, population: Population, finished: list[tuple[_Item, GeneratedImage]], generation_ms: int
    ) -> _Stored:
        """Encode and store one population; in the storing thread with `store_behind`. Touches no counters."""
        images = [
            services.ImageInput(
                index=item.index,
                data=encode_png(generated),
                extension="png",
                seed=item.seed,
                prompt=item.prompt,
                truncated=generated.truncated,
                width=generated.image.width,
                height=generated.image.height,
                provenance=generated.provenance or {},
            )
            for item, generated in finished
        ]
        with signals.on_device(self.device):
            with signals.held_back() as ready:
                try:
                    stored = self._call(
                        self.queue.store_population,
                        worker=self.name,
                        population_id=population.pk,
                        images=images,
                        generation_ms=generation_ms,
                    )
                except services.ImagesRefused as exc:  # here or by a remote server (its 400): this attempt failed
                    reason = f"the images could not be stored: {exc}"
                    status = self._call(
                        self.queue.fail_population, worker=self.name, population_id=population.pk, error=reason
                    )
                    return _Stored(population.pk, stored=False, failed=reason, status=status)
            # Outside the queue lock: metrics and other listeners never hold up the generating thread's claims.
            for population_id in ready:
                signals.send_population_ready(population_id)
        return _Stored(population.pk, stored=stored)

    def _fail(self, population: Population, reason: str) -> None:
        status = self._call(self.queue.fail_population, worker=self.name, population_id=population.pk, error=reason)
        self._record(_Stored(population.pk, stored=False, failed=reason, status=status))

    # --- reporting ------------------------------------------------------------------------------------------

    def _report(self, generator: str, images: int, seconds: float) -> None:
        rate = images / seconds if seconds > 0 else float("inf")
        logger.debug("%s: %d images in %.2fs (%.1f images/s)", generator, images, seconds, rate)
        if self.progress is not None:
            self.progress.write(
                f"\r{self.stats.images} images, {self.stats.populations} populations ready, "
                f"{self.stats.images / max(self.stats.wall_s, 1e-9):.1f} images/s   "
            )
            self.progress.flush()

    def log_summary(self) -> None:
        if self.progress is not None:
            self.progress.write("\n")
        wall = self.stats.wall_s
        logger.info(
            "worker %s: %d images, %d populations ready, %d failed attempts, %d blank images (redrawn or failed), "
            "%.1fs wall, %.1fs in pipeline calls, "
            "%.1fs waiting for work (%.1fs of it importing the pipeline libraries), %.0f%% of the rest outside "
            "pipeline calls (loading pipelines %.1fs; %.0f%% outside pipeline calls and loading)",
            self.name,
            self.stats.images,
            self.stats.populations,
            self.stats.failed_attempts,
            self.stats.blank_images,
            wall,
            self.stats.pipeline_s,
            self.stats.idle_s,
            self.stats.warm_s,
            100 * self.stats.share_outside(wall_s=wall),
            self.stats.load_s,
            100 * self.stats.share_outside(wall_s=wall, counting_load=False),
        )
        for generator, (images, seconds) in sorted(self.stats.per_generator.items()):
            logger.info("  %s: %d images, %.1f images/s in pipeline calls", generator, images, images / seconds)


def _by_population(items: Sequence[_Item]) -> Iterator[list[_Item]]:
    chunk: list[_Item] = []
    for item in items:
        if chunk and item.population.pk != chunk[0].population.pk:
            yield chunk
            chunk = []
        chunk.append(item)
    if chunk:
        yield chunk


def _chunks(items: Sequence[_Item], size: int) -> Iterator[list[_Item]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def progress_stream() -> TextIO | None:
    """Progress goes to a terminal only; logs and CI output stay clean."""
    return sys.stderr if sys.stderr.isatty() else None
