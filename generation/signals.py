"""What generation tells the layers above it: a population became ready. They connect; generation imports none of them.

`population_ready` is sent once the transaction that made a population ready has committed and
the population has been announced to waiting pages, so a receiver (metrics) can never delay
serving it. It is sent with `send_robust`: a receiver that fails is logged, never raised into the
store. It runs in the process that stored the population: the worker for its own, the web server
for a remote worker's upload. `device` is the storing worker's device (`on_device`), "cpu"
elsewhere, so a receiver can use the accelerator the worker owns.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.dispatch import Signal

logger = logging.getLogger("poparena.generation")

population_ready = Signal()  # kwargs: population_id: int, device: str

_device: contextvars.ContextVar[str] = contextvars.ContextVar("generation_device", default="cpu")
_held_back: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("generation_held_back", default=None)


@contextmanager
def on_device(device: str) -> Iterator[None]:
    """Within this block, populations stored here say they were made on `device`."""
    token = _device.set(device)
    try:
        yield
    finally:
        _device.reset(token)


@contextmanager
def held_back() -> Iterator[list[int]]:
    """Within this block, population_ready is not sent but its population ids are collected in the list yielded.

    The worker stores under a lock it shares with the thread that generates, and sends the collected
    signals (send_population_ready, after the block) once it has let go of the lock, so the
    generating thread never waits for metrics.
    """
    collected: list[int] = []
    token = _held_back.set(collected)
    try:
        yield collected
    finally:
        _held_back.reset(token)


def send_population_ready(population_id: int) -> None:
    collected = _held_back.get()
    if collected is not None:
        collected.append(population_id)
        return
    for receiver, result in population_ready.send_robust(
        sender=population_ready, population_id=population_id, device=_device.get()
    ):
        if isinstance(result, Exception):
            logger.warning(
                "a population_ready receiver %r failed for population %s: %r", receiver, population_id, result
            )
