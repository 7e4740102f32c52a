"""Data-parallel training under torchrun: which process this is, and the collective steps the loop and service share.

`torchrun --nproc_per_node N manage.py train_generator ...` (or `accelerate launch --multi_gpu`, which starts
torchrun) starts N copies of the command with RANK, LOCAL_RANK and WORLD_SIZE set. Each joins one process group
(gloo on the CPU, NCCL on GPUs, one GPU per process), loads the same base, draws the same effective batch from
the same seed and trains on its share of it (`micro_slices`); torch's DistributedDataParallel averages the
gradients, so every process holds the same weights after every step, and those weights equal one process's on
the same effective batch (the batch's reference point, a detached batch mean, is averaged over the processes
too: `global_mean`). Only the main process (rank 0) writes the working folder, the log and the weights and
registers the generator; the others wait for it at a barrier, then every process leaves the group (`finish`),
without which the processes abort at exit. With one process every function here is a no-op.
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


def local_rank() -> int:
    """This process's index on its host (torchrun's LOCAL_RANK): which GPU it trains on."""
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def device_for(device: str) -> str:
    """The device this process trains on: `device` as given, except that under torchrun each process on a GPU
    host takes the GPU of its local rank (`cuda` -> `cuda:LOCAL_RANK`)."""
    if world_size() > 1 and device.split(":")[0] == "cuda":
        return f"cuda:{local_rank()}"
    return device


def start(device: str) -> None:
    """Join the process group torchrun set up: gloo on the CPU, NCCL on GPUs. One process: nothing."""
    import torch
    import torch.distributed as dist

    if world_size() > 1 and not dist.is_initialized():
        if device != "cpu":
            torch.cuda.set_device(device_for(device))
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
    """Leave the process group (every process, once training and registration are done)."""
    import torch.distributed as dist

    if _active():
        dist.destroy_process_group()
