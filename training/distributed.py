"""Data-parallel training under torchrun: which process this is, and the collective steps the loop and service share.

`torchrun --nproc_per_node N manage.py train_generator ...` starts N copies of the command with RANK and
WORLD_SIZE set. Each joins one process group (gloo on the CPU, NCCL on GPUs), loads the same base, draws the
same global batch from the same seed and trains on its share of it; accelerate's DistributedDataParallel
averages the gradients, so every process holds the same weights after every step, and those weights equal one
process's on the same global batch (the batch's reference point, a detached batch mean, is averaged over the
processes too: `global_mean`). Only the main process (rank 0) writes the working folder, the log and the
weights and registers the generator; the others wait for it at a barrier, then every process leaves the group
(`finish`), without which the processes abort at exit. With one process every function here is a no-op.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# How long a process waits for the others at a collective step before it fails (a rank that died or hangs):
# long enough for rank 0 to save and register a large model while the others wait at the barrier.
TIMEOUT = timedelta(minutes=30)


def world_size() -> int:
    """Processes training together (torchrun's WORLD_SIZE; 1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def rank() -> int:
    return int(os.environ.get("RANK", "0") or 0)


def is_main() -> bool:
    return rank() == 0


def start(device: str) -> None:
    """Join the process group torchrun set up: gloo on the CPU, NCCL on GPUs. One process: nothing."""
    import torch.distributed as dist

    if world_size() > 1 and not dist.is_initialized():
        dist.init_process_group("gloo" if device == "cpu" else "nccl", timeout=TIMEOUT)


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


def share(total: int) -> slice:
    """This process's slice of a global batch of `total` (equal shares, in rank order)."""
    per = total // world_size()
    return slice(rank() * per, (rank() + 1) * per)


def finish() -> None:
    """Leave the process group (every process, once training and registration are done)."""
    import torch.distributed as dist

    if _active():
        dist.destroy_process_group()
