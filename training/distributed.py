"""Data-parallel training under torchrun: which process this is, and the collective steps the loop and service share.

`torchrun --nproc_per_node N manage.py train_generator ...` (or `accelerate launch --multi_gpu`, which starts
torchrun) starts N copies of the command with RANK, LOCAL_RANK and WORLD_SIZE set. Each joins one process group
(gloo on the CPU, NCCL on GPUs, one GPU per process), loads the same base, draws the same effective batch from
the same seed and trains on its share of it (`micro_slices`); torch's DistributedDataParallel averages the
gradients, so every process holds the same weights after every step, and those weights equal one process's on
the same effective batch (the batch's reference point, a detached batch mean, is averaged over the processes
too: `global_mean`). Only the main process (rank 0) writes the working folder, the log and the weights and
registers the generator; the others leave the group (`finish`, without which the processes abort at exit) once
training is done, so no wait of theirs depends on how long saving and evaluating take. Frozen encoders run once
over the data, not once per process: each process encodes its share and every one gathers the whole (`gather_shards`).

A process that dies or stops answering stops the others, never a hang: a collective step with it fails at once
when its connection closes (gloo) or after `--rank-timeout` seconds (`start`), and `watching` turns that failure
into `GroupStopped`, which names this process and what the backend said. torchrun also stops the survivors of a
failed process with SIGTERM; `stop_on_sigterm` makes that a `GroupStopped` too, so the main process removes its
working folder and nothing half-written is left or registered. With one process every collective is a no-op.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import torch

Item = TypeVar("Item")

# How long a process waits for the others at a collective step before it gives up on them (one that hangs; one
# that died is seen at once): the longest wait is the others' while the main process loads the base alone.
DEFAULT_TIMEOUT_S = 600.0
# What gloo and NCCL say when a collective step fails because of another process (its connection closed, or it
# did not answer within the timeout), as against an error of this process's own (out of memory, a bad tensor).
_PEER_FAILURES = ("Connection closed by peer", "Connection reset by peer", "Timed out waiting", "NCCL", "gloo")


class GroupStopped(Exception):
    """This process stopped because the run's group did: another process died or stopped answering, or the
    launcher stopped this one. Nothing of the run is saved or registered."""


def world_size() -> int:
    """Processes training together (torchrun's WORLD_SIZE; 1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def rank() -> int:
    return int(os.environ.get("RANK", "0") or 0)


def is_main() -> bool:
    return rank() == 0


def local_rank() -> int:
    """This process's index on its host (torchrun's LOCAL_RANK): which GPU it trains on."""
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def device_for(device: str) -> str:
    """The device this process trains on: `device` as given, except that under torchrun each process on a GPU
    host takes the GPU of its local rank (`cuda` -> `cuda:LOCAL_RANK`)."""
    if world_size() > 1 and device.split(":")[0] == "cuda":
        return f"cuda:{local_rank()}"
    return device


def whoami() -> str:
    return f"process {rank()} of {world_size()}"


def start(device: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Join the process group torchrun set up: gloo on the CPU, NCCL on GPUs, each collective step failing after
    `timeout_s` seconds without the others. One process: nothing."""
    import torch
    import torch.distributed as dist

    if world_size() > 1 and not dist.is_initialized():
        if device != "cpu":
            torch.cuda.set_device(device_for(device))
        backend = "gloo" if device == "cpu" else "nccl"
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))


@contextlib.contextmanager
def watching(timeout_s: float) -> Iterator[None]:
    """Run the block; a collective step in it that fails because of another process raises GroupStopped."""
    try:
        yield
    except RuntimeError as exc:
        if world_size() == 1 or not any(marker in str(exc) for marker in _PEER_FAILURES):
            raise
        ignore_sigterm()
        said = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GroupStopped(
            f"{whoami()}: another process of this run died or did not answer within --rank-timeout "
            f"({timeout_s:g} s), so this one stops too; nothing of the run is saved or registered "
            f"(the backend said: {said})"
        ) from exc


def stop_on_sigterm() -> Callable[[], None]:
    """From now on SIGTERM raises GroupStopped (once) in the main thread, so the main process's cleanup runs: under
    torchrun, the launcher's way of stopping the other processes when one fails. Returns what undoes it."""
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _stop)

    def restore() -> None:
        # Under torchrun a process that is stopping exits next: the launcher's SIGTERM must not turn its exit
        # status and message into a kill.
        if world_size() > 1 and signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
            return
        signal.signal(signal.SIGTERM, previous)

    return restore


def _stop(signum: int, frame: Any) -> None:
    ignore_sigterm()
    launcher = " (torchrun stops every process when one fails; its report names which)" if world_size() > 1 else ""
    raise GroupStopped(f"{whoami()}: stopped by SIGTERM{launcher}; nothing of the run is saved or registered")


def ignore_sigterm() -> None:
    """This process is stopping already: a later SIGTERM must not cut short the cleanup on the way out (where
    `stop_on_sigterm` is in force; elsewhere SIGTERM is left as it is)."""
    if signal.getsignal(signal.SIGTERM) is _stop:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


@contextlib.contextmanager
def sigterm_held() -> Iterator[None]:
    """A cleanup on the way out of a failure: SIGTERM held off while it runs, and ignored after it."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        ignore_sigterm()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def _active() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def barrier() -> None:
    """Wait until every process gets here."""
    import torch.distributed as dist

    if _active():
        dist.barrier()


def any_process(flag: bool) -> bool:
    """Whether `flag` is true in any process (a stop request seen by one stops all at the same step)."""
    import torch
    import torch.distributed as dist

    if not _active():
        return flag
    value = torch.tensor([int(flag)])
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def global_mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of `tensor` over every process's share (equal shares), detached; one process: its own mean."""
    import torch.distributed as dist

    mean = tensor.detach().mean()
    if not _active():
        return mean
    total = mean.clone()
    if dist.get_backend() == "gloo":
        total = total.cpu()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return (total / world_size()).to(mean.device)


def average(values: torch.Tensor) -> torch.Tensor:
    """Each element of `values` averaged over the processes (one collective step); one process: `values`."""
    import torch.distributed as dist

    if not _active():
        return values
    total = values.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total / world_size()


def shard(items: int, processes: int, index: int) -> slice:
    """Process `index`'s contiguous share of `items` things split over `processes` (the last shares may be short
    or empty): the shares of every process, in rank order, are the items in order, each once."""
    size = -(-items // processes)
    return slice(min(index * size, items), min((index + 1) * size, items))


def gather_shards(
    items: Sequence[Item], encode: Callable[[Sequence[Item]], dict[str, torch.Tensor]], chunk: int
) -> tuple[dict[str, torch.Tensor], list[int]]:
    """`encode(items)` done once over the processes: each encodes its `shard` of whole chunks of `chunk` items (as
    `encode` calls its model on them, from the first item on), every one gets the whole, in order (each named tensor
    with one row per item). So each model call sees the very batch it sees in one process, and the result is one
    process's to the bit (a batch of another size may round otherwise). Also returns how many items each encoded."""
    import torch
    import torch.distributed as dist

    if not _active():
        return encode(items), [len(items)]
    chunks = shard(-(-len(items) // chunk), world_size(), rank())
    mine = items[chunks.start * chunk : chunks.stop * chunk]
    encoded = encode(mine) if mine else {}
    # The shapes first: a process with an empty share learns from the others what to gather.
    described: list[Any] = [None] * world_size()
    dist.all_gather_object(described, {k: (len(mine), tuple(v.shape[1:]), v.dtype) for k, v in encoded.items()})
    counts = [next(iter(d.values()))[0] if d else 0 for d in described]
    shapes = next(d for d in described if d)
    size = max(counts)
    whole = {}
    for key, (_, shape, dtype) in shapes.items():
        device = "cpu" if dist.get_backend() == "gloo" else torch.device("cuda", torch.cuda.current_device())
        padded = torch.zeros((size, *shape), dtype=dtype, device=device)
        if key in encoded:
            padded[: len(mine)] = encoded[key]
        parts = [torch.empty_like(padded) for _ in range(world_size())]
        dist.all_gather(parts, padded)
        whole[key] = torch.cat([part[:count] for part, count in zip(parts, counts, strict=True)])
    return whole, counts


def micro_slices(per_process: int, accumulate: int, processes: int, index: int) -> list[slice]:
    """Process `index`'s share of each of `accumulate` micro-batches of an effective batch drawn as one
    sequence of per_process x processes x accumulate items: micro-batch m is the m-th run of
    per_process x processes items, and each process takes its run of per_process within it, in rank order."""
    run = per_process * processes
    return [slice(m * run + index * per_process, m * run + (index + 1) * per_process) for m in range(accumulate)]


def wrap(model: torch.nn.Module, device: str) -> torch.nn.Module:
    """The model as the training steps call it: under torchrun, in DistributedDataParallel (gradients averaged
    over the processes at each backward); one process: itself."""
    from torch.nn.parallel import DistributedDataParallel

    if not _active():
        return model
    return DistributedDataParallel(model, device_ids=[device] if device != "cpu" else None)


def finish() -> None:
    """Leave the process group (every process, once its part is done: training, or for the main process training,
    saving and registering)."""
    import torch.distributed as dist

    if _active():
        dist.destroy_process_group()
