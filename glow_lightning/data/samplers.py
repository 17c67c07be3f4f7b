"""Samplers that own distribution (the Trainer runs with ``use_distributed_sampler=False``).

Training: every rank draws the same seeded permutation per epoch (``seed + epoch``), drops the tail
so all ranks take equally many steps, and keeps a strided shard, like ``DistributedSampler``. The
sampler counts what it has yielded, so ``state_dict`` / ``load_state_dict`` resume mid-epoch with
the same order. Evaluation: a strided shard with no padding and no duplicates, so every image is
counted exactly once across ranks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Sampler


class ShardedShuffleSampler(Sampler[int]):
    """Seeded shuffle per epoch, one disjoint shard per rank, resumable mid-epoch.

    ``len(self)`` is always the full shard, ``n // world_size``, even while a restored epoch skips
    its consumed prefix (Lightning sizes the epoch from it).
    """

    def __init__(self, n: int, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must lie in [0, {world_size}), got {rank}")
        self.n, self.seed, self.rank, self.world_size = n, seed, rank, world_size
        self.num_samples = n // world_size
        self.epoch, self.consumed = 0, 0
        self._skip: int | None = None  # one-shot resume offset for ``self.epoch``

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's permutation; a pending resume only survives for its own epoch."""
        if epoch != self.epoch:
            self._skip = None
            self.consumed = 0
        self.epoch = epoch

    def order(self) -> torch.Tensor:
        """This rank's indices for ``self.epoch``, int64 (num_samples,)."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        perm = torch.randperm(self.n, generator=generator)[: self.num_samples * self.world_size]
        return perm[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        start, self._skip = (self._skip or 0), None
        self.consumed = start
        for index in self.order()[start:].tolist():
            self.consumed += 1
            yield index

    def state_dict(self) -> dict[str, int]:
        """{"epoch", "consumed"}: samples of this epoch already yielded on this rank.

        A finished epoch reads as the start of the next: {"epoch": epoch + 1, "consumed": 0}.
        """
        if self.consumed >= self.num_samples > 0:
            return {"epoch": self.epoch + 1, "consumed": 0}
        return {"epoch": self.epoch, "consumed": self.consumed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue ``state["epoch"]`` after its first ``state["consumed"]`` samples, once."""
        self.epoch = int(state["epoch"])
        self.consumed = min(int(state["consumed"]), self.num_samples)
        self._skip = self.consumed


class ShardedEvalSampler(Sampler[int]):
    """Indices ``rank, rank + world_size, ...`` below n: disjoint, complete, never padded."""

    def __init__(self, n: int, rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must lie in [0, {world_size}), got {rank}")
        self.indices = range(rank, n, world_size)

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)
