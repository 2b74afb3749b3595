"""Data-parallel training under ``torchrun``: process group set-up, model wrapping,
sharded sampling, and cross-rank checks. A single process (no ``WORLD_SIZE``) gets no-ops.

gloo is used on CPU, nccl when CUDA is available. Rendezvous stays on this machine
(``torchrun --standalone`` or ``MASTER_ADDR=127.0.0.1``).
"""

from __future__ import annotations

import os
from typing import List, Optional

import torch
import torch.distributed as dist
from torch import nn


class Distributed:
    """Rank, world size and the collective helpers the trainer needs."""

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0):
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the process that writes checkpoints and metrics)."""
        return self.rank == 0

    @classmethod
    def from_environment(cls) -> Distributed:
        """Initialise the process group when launched by torchrun (WORLD_SIZE > 1)."""
        world = int(os.environ.get('WORLD_SIZE', '1'))
        if world <= 1:
            return cls()
        if os.environ.get('MASTER_ADDR', '127.0.0.1') in ('127.0.0.1', 'localhost'):
            os.environ.setdefault('GLOO_SOCKET_IFNAME', 'lo')
        backend = 'nccl' if torch.cuda.is_available() else 'gloo'
        if not dist.is_initialized():
            dist.init_process_group(backend=backend)
        local = int(os.environ.get('LOCAL_RANK', '0'))
        if backend == 'nccl':
            torch.cuda.set_device(local)
        return cls(dist.get_rank(), dist.get_world_size(), local)

    def wrap(self, module: nn.Module) -> nn.Module:
        """DDP-wrap `module` when there are several ranks. Unused parameters are tolerated
        because a stage may leave some heads out of its loss."""
        if self.world_size <= 1:
            return module
        return nn.parallel.DistributedDataParallel(module, find_unused_parameters=True)

    def sampler(self, dataset, seed: int) -> Optional[torch.utils.data.Sampler]:
        """A DistributedSampler giving each rank its shard, or None for one process."""
        if self.world_size <= 1:
            return None
        return torch.utils.data.distributed.DistributedSampler(
            dataset, num_replicas=self.world_size, rank=self.rank, shuffle=True, seed=seed,
            drop_last=True)

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.world_size > 1:
            dist.barrier()

    def all_gather_object(self, value) -> List:
        """`value` from every rank, in rank order."""
        if self.world_size <= 1:
            return [value]
        out = [None] * self.world_size
        dist.all_gather_object(out, value)
        return out

    def shutdown(self) -> None:
        """Destroy the process group."""
        if self.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()
