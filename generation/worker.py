"""The generation worker: plan -> claim -> batch -> generate -> store, in a loop over a work queue.

The queue is generation.services itself (the worker shares the server's database) or a
generation.remote.RemoteQueue (the worker reaches the server over HTTP with a `worker` token);
both have the same six functions.

One worker owns one device and keeps its pipelines resident. Heavy libraries (torch,
diffusers) are imported lazily through generation.pipelines, so importing this module is
cheap. SIGTERM and SIGINT finish the pipeline call under way, store what is complete and
hand the rest of the claim back to the queue.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import socket
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Protocol, TextIO

from generation import services, signals
from generation.models import Population
from generation.pipelines import (
    GeneratedImage,
    PipelineError,
    PipelineSpec,
    ResidentPipelineCache,
    generate,
)
from generation.prompting import population_prompts

logger = logging.getLogger("poparena.worker")

# A claim holds at most a few pipeline calls' worth of images: fewer round trips to the database,
# and populations of N images pack into full batches even when N does not divide the batch size.
CALLS_PER_CLAIM = 4
# ...and no more than the worker finishes in about this long at its measured speed, so the rest
# stays queued for whichever worker is free first, and a fresh worker (no speed measured yet)
# claims one call's worth: the first comparison's two populations are not stuck behind others.
CLAIM_HORIZON_S = 8.0
PLAN_EVERY_S = 5.0


def encode_png(generated: GeneratedImage) -> bytes:
    buffer = io.BytesIO()
    generated.image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


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
        """True once stored, False when the claim was lost; ValueError when the images were refused."""
        ...


@dataclass
class WorkerStats:
    """Counters a person (or a benchmark) reads: images made, seconds inside pipeline calls."""

    images: int = 0
    populations: int = 0
    failed_attempts: int = 0
    pipeline_s: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    per_generator: dict[str, list[float]] = field(default_factory=lambda: defaultdict(lambda: [0.0, 0.0]))

    @property
    def wall_s(self) -> float:
        return time.perf_counter() - self.started

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
        self.stats = WorkerStats()
        self.stopping = False
        self._planned_at = float("-inf")

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
        while not self.stopping:
            if not self.step():
                if once:
                    break
                time.sleep(self.idle_sleep_s)
        self.log_summary()
        return self.stats

    def step(self) -> bool:
        """Plan, claim one batch and work it; False when there was nothing to do."""
        batch = self._claim()
        if not batch or time.monotonic() - self._planned_at > PLAN_EVERY_S:
            # Planning reads every queue: do it when the claimed work runs out, or now and then.
            self.queue.plan_populations(owner=self.owner)
            self._planned_at = time.monotonic()
            batch = batch or self._claim()
        if not batch:
            return False
        self.work(batch)
        return True

    def claim_size(self) -> int:
        """Images to claim: what the worker makes in CLAIM_HORIZON_S, between one and CALLS_PER_CLAIM calls."""
        if self.stats.pipeline_s <= 0:
            return self.max_batch
        soon = int(self.stats.images / self.stats.pipeline_s * CLAIM_HORIZON_S)
        return max(self.max_batch, min(soon, self.max_batch * CALLS_PER_CLAIM))

    def _claim(self) -> list[Population]:
        return self.queue.claim_generation_batch(
            worker=self.name, max_images=self.claim_size(), lease=self.lease, owner=self.owner
        )

    # --- one claimed batch ----------------------------------------------------------------------------------

    def work(self, batch: Sequence[Population]) -> None:
        """Generate every image of a claimed batch (one generator) and store each finished population."""
        generator = batch[0].generator
        held = {population.pk for population in batch}
        try:
            spec = PipelineSpec.from_settings(generator.source, generator.settings)
            pipe = self.cache.get(spec, self.device)
        except PipelineError as exc:
            for population in batch:
                self._fail(population, f"generator {generator.name!r}: {exc}")
            return
        except Exception as exc:  # anything else from a third-party loader fails this work only
            logger.exception("loading %s failed", generator.name)
            for population in batch:
                self._fail(population, f"generator {generator.name!r} could not be loaded: {exc!r}")
            return

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
        for chunk in _chunks(items, self.max_batch):
            chunk = [item for item in chunk if item.population.pk in held]
            if self.stopping or not chunk:
                continue
            self.queue.renew_leases(worker=self.name, population_ids=held, lease=self.lease)
            started = time.perf_counter()
            try:
                images = generate(pipe, spec, [i.prompt for i in chunk], [i.seed for i in chunk])
            except PipelineError as exc:
                for population in {item.population.pk: item.population for item in chunk}.values():
                    self._fail(population, str(exc))
                    held.discard(population.pk)
                continue
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
            released = self.queue.release_claims(worker=self.name, population_ids=held)
            logger.info("released %d unfinished population(s) back to the queue", released)

    def _store(self, population: Population, finished: list[tuple[_Item, GeneratedImage]], generation_ms: int) -> None:
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
            )
            for item, generated in finished
        ]
        try:
            with signals.on_device(self.device):
                stored = self.queue.store_population(
                    worker=self.name, population_id=population.pk, images=images, generation_ms=generation_ms
                )
        except ValueError as exc:  # the images were refused (a remote server's 400): this attempt failed
            self._fail(population, f"the images could not be stored: {exc}")
            return
        if stored:
            self.stats.populations += 1
        else:
            logger.warning("population %s was reclaimed by another worker; its images were discarded", population.pk)

    def _fail(self, population: Population, reason: str) -> None:
        self.stats.failed_attempts += 1
        status = self.queue.fail_population(worker=self.name, population_id=population.pk, error=reason)
        logger.warning("population %s attempt failed (%s): %s", population.pk, status or "no longer held", reason)

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
        overhead = 1 - self.stats.pipeline_s / self.stats.wall_s if self.stats.wall_s else 0.0
        logger.info(
            "worker %s: %d images, %d populations ready, %d failed attempts, %.1fs wall, %.0f%% outside pipeline calls",
            self.name,
            self.stats.images,
            self.stats.populations,
            self.stats.failed_attempts,
            self.stats.wall_s,
            100 * overhead,
        )
        for generator, (images, seconds) in sorted(self.stats.per_generator.items()):
            logger.info("  %s: %d images, %.1f images/s in pipeline calls", generator, images, images / seconds)


def _chunks(items: Sequence[_Item], size: int) -> Iterator[list[_Item]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def progress_stream() -> TextIO | None:
    """Progress goes to a terminal only; logs and CI output stay clean."""
    return sys.stderr if sys.stderr.isatty() else None
