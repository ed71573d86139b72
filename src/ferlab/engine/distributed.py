"""Data-parallel training across processes (PyTorch DDP), launched by ``torchrun``.

``torchrun --nproc-per-node N -m ferlab train ...`` (or ``--nnodes`` for several machines) sets
``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` and the rendezvous address; :func:`setup` reads them and
joins the process group (``nccl`` on CUDA, ``gloo`` on CPU). Without them everything runs in one
process and these helpers do nothing.

Every process sees the same global permutation of the training set and takes its own contiguous
slice of each global batch, so N processes with per-process batch B/N follow exactly the steps of
one process with batch B (gradients are averaged by DDP). Only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "all_reduce_sum", "barrier", "broadcast", "setup", "teardown"]


@dataclass(frozen=True)
class DistInfo:
    world: int = 1
    rank: int = 0
    local_rank: int = 0
    owns_group: bool = False
    """True when :func:`setup` created the process group (and so must destroy it)."""

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(use_cuda: bool) -> DistInfo:
    """Join the process group described by the environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    owns = False
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", init_method="env://")
        owns = True
    return DistInfo(
        world=dist.get_world_size(), rank=dist.get_rank(), local_rank=local_rank, owns_group=owns
    )


def teardown(info: DistInfo, *, wait: bool = False) -> None:
    """Leave the process group. ``wait``: wait for every rank first (on success only, where
    every rank gets here): a rank destroying gloo's group while another still uses it can
    abort that one ("terminate called without an active exception")."""
    if info.owns_group and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Rank 0's value everywhere (decisions taken on wall-clock time must agree)."""
    if info.enabled:
        dist.broadcast(t, src=0)
    return t


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
