"""Distributed data-parallel training: process-group set-up, rank helpers and clean-up.

Launch with ``torchrun --nproc_per_node N tools/train.py --cfg F`` (or
``python -m torch.distributed.run ...``) and ``TRAIN.DDP: true``. torchrun sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; the backend is NCCL on CUDA
and Gloo on CPU. Rank 0 alone writes logs and checkpoints; the others train and wait at barriers.
Without those variables, or with ``TRAIN.DDP: false``, everything runs in one process and every
helper here is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from ssformer.errors import ConfigError

__all__ = [
    "DistContext",
    "all_gather_objects",
    "barrier",
    "broadcast_object",
    "cleanup_distributed",
    "reduce_sum",
    "setup_distributed",
]


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: its rank, the world size and the device it computes on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    enabled: bool = False

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that logs and writes checkpoints."""
        return self.rank == 0


def _launched_by_torchrun() -> bool:
    return all(key in os.environ for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def setup_distributed(ddp: bool, device: torch.device) -> DistContext:
    """Join the process group when ``ddp`` is set and the process was started by torchrun.

    ``device`` is the configured device; on CUDA each process takes ``cuda:LOCAL_RANK``.
    ``TRAIN.DDP: true`` without torchrun trains in a single process (the common Colab case).
    """
    if not ddp or not _launched_by_torchrun():
        return DistContext(device=device)
    rank = int(os.environ["RANK"])
    world_size = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} CUDA device(s) are "
                "visible; start torchrun with --nproc_per_node at most the number of GPUs"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistContext(
        rank=rank, world_size=world_size, local_rank=local_rank, device=device, enabled=True
    )


def cleanup_distributed(ctx: DistContext) -> None:
    """Leave the process group (after a last barrier) when one was joined."""
    if ctx.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every rank; a no-op in a single process."""
    if ctx.enabled:
        dist.barrier()


def reduce_sum(ctx: DistContext, values: torch.Tensor) -> torch.Tensor:
    """Sum ``values`` over ranks (returns a new tensor; the input in a single process)."""
    if not ctx.enabled:
        return values
    reduced = values.detach().clone().to(ctx.device)
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced


def broadcast_object(ctx: DistContext, obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (a picklable object)."""
    if not ctx.enabled:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def all_gather_objects(ctx: DistContext, obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (a one-element list in a single process)."""
    if not ctx.enabled:
        return [obj]
    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, obj)
    return gathered
