"""Samplers that own distribution (the Trainer runs with ``use_distributed_sampler=False``).

Training: every rank draws the same seeded permutation per epoch (``seed + epoch``), drops the tail
so all ranks take equally many steps, and keeps a strided shard, like ``DistributedSampler``. The
sampler counts what it has yielded, so ``state_dict`` / ``load_state_dict`` resume mid-epoch with
the same order. Evaluation: a strided shard with no padding and no duplicates, so every image is
counted exactly once across ranks.

Mid-epoch resume (:class:`ResumeTracker`): which training samples a checkpoint has already consumed.

The train sampler counts what it has yielded, but loaders prefetch, so that count runs ahead of
training. While fitting, the position is therefore taken from Lightning's own count of processed
batches in the current epoch. On resume Lightning restarts that count at its last *completed*
batch, which can be one behind what was trained; the difference is kept as an offset so that a
second resume in the same epoch is exact too. ``load`` makes the next train epoch skip the
consumed samples once (``ShardedShuffleSampler.load_state_dict``).

Exact when resuming with the same batch size and world size; checked against a real Trainer
in tests/test_data_samplers.py, with and without worker processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import torch
from torch.utils.data import Sampler

AUGMENT_SEED = 0x5EED_A0C  # keeps the augmentation stream apart from the shuffle's seeds


def reseed_augmentation(seed: int, epoch: int, rank: int) -> None:
    """Seed torch's global CPU generator, which random crops, shifts and flips draw from
    (:mod:`glow_lightning.data.images`), from (seed, epoch, rank) alone when an epoch starts.

    Why: between the last step of an epoch and the first of the next, the loaders draw from that
    generator a number of times that depends on how training got there (validation, the new
    iterator; a run resumed at the boundary skips some), so a restored RNG state alone does not
    make the next epoch's augmentations those of the uninterrupted run. A mid-epoch resume keeps
    the restored state (the epoch's stream is already under way)."""
    torch.default_generator.manual_seed(augmentation_seed(seed, epoch, rank))


def augmentation_seed(seed: int, epoch: int, rank: int, worker: int = 0) -> int:
    """The seed of (run seed, epoch, rank, loader worker)'s augmentation draws."""
    return (AUGMENT_SEED + seed * 1_000_003 + epoch * 10_007 + rank + worker * 7_919) % 2**63


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
        if start == 0:
            reseed_augmentation(self.seed, self.epoch, self.rank)
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


def _batch_progress(trainer: Any) -> Any | None:
    """Lightning's per-epoch batch counters while fitting, else None."""
    if trainer is None or getattr(trainer.state, "fn", None) != "fit":
        return None
    return trainer.fit_loop.epoch_loop.batch_progress.current


class Resumable(Protocol):
    """What :class:`ResumeTracker` reads and restores: a map-style sampler's or a stream's
    position in the epoch (``len``: the samples this rank trains on in an epoch)."""

    def __len__(self) -> int: ...

    def state_dict(self) -> dict[str, int]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class ResumeTracker:
    """Carries the train position between checkpoints and the train sampler."""

    def __init__(self) -> None:
        self.pending: dict[str, int] | None = None
        self.offset: tuple[int, int] | None = None  # (epoch, batches Lightning does not count)

    def load(self, state: dict[str, Any], sampler: Resumable | None) -> None:
        """Remember ``state`` ({"epoch", "consumed"}) for the next sampler (or this one)."""
        self.pending = {"epoch": int(state["epoch"]), "consumed": int(state["consumed"])}
        if sampler is not None:
            sampler.load_state_dict(self.pending)

    def attach(self, sampler: Resumable, trainer: Any, batch_size: int) -> None:
        """Hand a pending position to a new sampler and note Lightning's restored count."""
        if self.pending is None:
            return
        sampler.load_state_dict(self.pending)
        progress = _batch_progress(trainer)
        completed = progress.completed if progress is not None else 0
        self.offset = (self.pending["epoch"], self.pending["consumed"] // batch_size - completed)
        self.pending = None

    def position(self, sampler: Resumable | None, trainer: Any, batch_size: int
                 ) -> dict[str, int]:
        """{"epoch", "consumed"}: samples of the current epoch trained on this rank."""
        if sampler is None:
            return dict(self.pending or {"epoch": 0, "consumed": 0})
        progress = _batch_progress(trainer)
        if progress is None:
            return sampler.state_dict()
        epoch, batches = trainer.current_epoch, progress.processed
        if self.offset is not None and self.offset[0] == epoch:
            batches += self.offset[1]
        epoch_size = len(sampler) // batch_size * batch_size  # the loader drops the last batch
        return next_position(epoch, batches * batch_size, epoch_size)


def next_position(epoch: int, consumed: int, num_samples: int) -> dict[str, int]:
    """{"epoch", "consumed"}, a finished epoch written as the start of the next one.

    Lightning resumes a finished epoch in the next one, and with worker processes it starts the
    sampler before calling ``set_epoch``; so the sampler must already hold the next epoch.
    """
    if consumed >= num_samples > 0:
        return {"epoch": epoch + 1, "consumed": 0}
    return {"epoch": epoch, "consumed": consumed}
