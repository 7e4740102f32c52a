"""`run_generation_worker`: a long-lived process that keeps every queue of image sets full."""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.health import pending_migrations
from generation.pipelines import PipelineError, resolve_device, use_cpu_threads
from generation.providers import Limits
from generation.remote import RemoteQueue, RemoteQueueError
from generation.worker import GenerationWorker, WorkQueue, progress_stream

KEY_VARIABLE = "POPARENA_WORKER_TOKEN"


def database_not_ready() -> str | None:
    """Why this database cannot serve the worker yet, or None when it is migrated."""
    pending = pending_migrations()
    if pending is None:
        return "the database cannot be read yet"
    if pending:
        return f"the database lacks {pending} migration(s)"
    return None


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


class Command(BaseCommand):
    help = (
        "Generate images for every open campaign's queues on one device. Claims work atomically with a lease, "
        "batches it per generator, stores each population in one transaction. --once fills every queue and exits."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="fill every queue to its target, then exit")
        parser.add_argument("--campaign", metavar="SLUG", help="serve only this campaign's queues")
        parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (default: cpu)")
        parser.add_argument(
            "--max-batch",
            type=positive_int,
            default=settings.GENERATION_MAX_BATCH,
            help=f"images per pipeline call (default: GENERATION_MAX_BATCH, now {settings.GENERATION_MAX_BATCH})",
        )
        parser.add_argument(
            "--threads",
            type=non_negative_int,
            default=settings.GENERATION_CPU_THREADS,
            help="torch CPU threads; 0 leaves one core to the web server (default: GENERATION_CPU_THREADS, "
            f"now {settings.GENERATION_CPU_THREADS})",
        )
        parser.add_argument(
            "--lease-seconds", type=positive_int, default=120, help="claim lease, renewed while working"
        )
        parser.add_argument("--cache-mb", type=positive_int, default=8192, help="memory budget for resident pipelines")
        parser.add_argument("--idle-sleep", type=float, default=1.0, help="seconds to wait when there is no work")
        parser.add_argument(
            "--server",
            metavar="URL",
            help=f"work for the PopArena at URL over its HTTP API instead of this database; the key of an API "
            f"token with the 'worker' scope is read from ${KEY_VARIABLE}",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            device = resolve_device(options["device"])
        except PipelineError as exc:
            raise CommandError(f"--device: {exc}") from None
        queue: WorkQueue | None = None
        if options["server"]:
            key = os.environ.get(KEY_VARIABLE, "")
            if not key:
                raise CommandError(f"--server needs the worker's API token in ${KEY_VARIABLE}")
            try:
                queue = RemoteQueue(server=options["server"], key=key)
            except RemoteQueueError as exc:
                raise CommandError(str(exc)) from None
        if options["verbosity"] >= 1:
            logging.getLogger("poparena.worker").setLevel(logging.INFO)
        if device == "cpu":
            threads = use_cpu_threads(options["threads"])
            logging.getLogger("poparena.worker").info("%d torch CPU thread(s)", threads)
        ready = None if queue is not None else database_not_ready
        if ready is not None and options["once"] and (reason := ready()) is not None:
            raise CommandError(f"{reason}: run `manage.py migrate` first")
        worker = GenerationWorker(
            device=device,
            cache_dir=settings.POPARENA_MODEL_CACHE,
            max_batch=options["max_batch"],
            lease=timedelta(seconds=options["lease_seconds"]),
            owner=f"campaign:{options['campaign']}" if options["campaign"] else None,
            cache_budget_bytes=options["cache_mb"] * 2**20,
            idle_sleep_s=options["idle_sleep"],
            progress=progress_stream(),
            queue=queue,
            # Each finished set is stored by a second thread while the next pipeline call runs.
            store_behind=True,
            # Started beside `migrate` (scripts/demo), it waits for the tables and imports torch meanwhile.
            ready=ready,
            api_limits=Limits(
                max_concurrency=settings.GENERATION_API_MAX_CONCURRENCY,
                requests_per_minute=settings.GENERATION_API_REQUESTS_PER_MINUTE,
                max_retries=settings.GENERATION_API_MAX_RETRIES,
                max_retry_wait_s=settings.GENERATION_API_MAX_WAIT_S,
                timeout_s=settings.GENERATION_API_TIMEOUT_S,
            ),
        )
        worker.install_signal_handlers()
        try:
            stats = worker.run(once=options["once"])
        except RemoteQueueError as exc:
            raise CommandError(f"the server refused the worker: {exc}") from None
        self.stdout.write(
            f"{stats.images} images, {stats.populations} populations ready, {stats.failed_attempts} failed attempts"
        )
