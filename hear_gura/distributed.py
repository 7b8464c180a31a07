"""Sharding work over processes and GPUs with PyTorch's own launcher.

Run any sharded command under ``torchrun``::

    torchrun --nproc-per-node 2 -m hear_gura embed fusion_cat *.wav --out emb/          # 2 CPU processes
    torchrun --nproc-per-node 8 -m hear_gura embed ... --device cuda                     # 8 GPUs, one each
    torchrun --nnodes 4 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 -m hear_gura embed ...
    torchrun --nproc-per-node 8 -m hear_gura evaluate --tasks-dir tasks --ensembles cat,fusion_cat --out results

torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :class:`Shard` reads
them, joins the process group (gloo on CPU, nccl on GPU) for the final
barrier, and hands each rank every ``WORLD_SIZE``-th work item. Without
torchrun it is a single shard of everything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import List, Optional, Sequence, TypeVar

import torch

T = TypeVar("T")


@dataclass
class Shard:
    """This process's part of the work: rank ``rank`` of ``world_size``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    joined: bool = False

    @classmethod
    def from_environment(cls, backend: Optional[str] = None, timeout_hours: Optional[float] = None) -> "Shard":
        """The shard torchrun's variables describe (a single shard without them).

        Args:
            backend: the process group's backend; default nccl with GPUs, else gloo.
                ``hear-gura evaluate`` uses gloo: it only exchanges small Python objects.
            timeout_hours: how long a collective (a barrier) may wait; torch's default otherwise.
        """
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        shard = cls(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
        import torch.distributed as dist

        if not dist.is_initialized():
            options = {"timeout": timedelta(hours=timeout_hours)} if timeout_hours else {}
            dist.init_process_group(backend=backend or ("nccl" if torch.cuda.is_available() else "gloo"), **options)
            shard.joined = True
        return shard

    def take(self, items: Sequence[T]) -> List[T]:
        """Every ``world_size``-th item, starting at ``rank``."""
        return list(items[self.rank :: self.world_size])

    def device(self, requested: str) -> torch.device:
        """The device for this rank: ``cuda`` becomes ``cuda:LOCAL_RANK`` when sharded."""
        device = torch.device(requested)
        if device.type == "cuda" and device.index is None and self.world_size > 1:
            return torch.device("cuda", self.local_rank)
        return device

    def label(self) -> str:
        """`` [rank r/n]`` when sharded, for progress bars."""
        return f" [rank {self.rank}/{self.world_size}]" if self.world_size > 1 else ""

    def barrier(self) -> None:
        """Wait for every rank (no-op for a single shard)."""
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        """Leave the process group if this shard joined it."""
        if self.joined:
            import torch.distributed as dist

            dist.destroy_process_group()
