"""Multi-process training under ``torchrun`` (DistributedDataParallel).

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; without them everything runs in one process.
GPUs use NCCL (one GPU per local rank), CPUs use Gloo.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def setup(device: str | None = None) -> Context:
    """Join the process group if launched by torchrun; choose this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        dev = torch.device("cuda", local if world > 1 else torch.device(device or "cuda").index or 0)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    return Context(rank=rank, world_size=world, device=dev)


def teardown(ctx: Context) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(value: float, ctx: Context) -> float:
    if not ctx.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return float(t.item()) / ctx.world_size
