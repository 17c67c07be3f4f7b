"""Mid-epoch resume: which training samples a checkpoint has already consumed.

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

from typing import Any

from glow_lightning.data.samplers import ShardedShuffleSampler


def _batch_progress(trainer: Any) -> Any | None:
    """Lightning's per-epoch batch counters while fitting, else None."""
    if trainer is None or getattr(trainer.state, "fn", None) != "fit":
        return None
    return trainer.fit_loop.epoch_loop.batch_progress.current


class ResumeTracker:
    """Carries the train position between checkpoints and the train sampler."""

    def __init__(self) -> None:
        self.pending: dict[str, int] | None = None
        self.offset: tuple[int, int] | None = None  # (epoch, batches Lightning does not count)

    def load(self, state: dict[str, Any], sampler: ShardedShuffleSampler | None) -> None:
        """Remember ``state`` ({"epoch", "consumed"}) for the next sampler (or this one)."""
        self.pending = {"epoch": int(state["epoch"]), "consumed": int(state["consumed"])}
        if sampler is not None:
            sampler.load_state_dict(self.pending)

    def attach(self, sampler: ShardedShuffleSampler, trainer: Any, batch_size: int) -> None:
        """Hand a pending position to a new sampler and note Lightning's restored count."""
        if self.pending is None:
            return
        sampler.load_state_dict(self.pending)
        progress = _batch_progress(trainer)
        completed = progress.completed if progress is not None else 0
        self.offset = (self.pending["epoch"], self.pending["consumed"] // batch_size - completed)
        self.pending = None

    def position(self, sampler: ShardedShuffleSampler | None, trainer: Any, batch_size: int
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
