"""Training health on the dashboard: is the optimiser doing what the recipe says?

Per optimiser step, against ``trainer/global_step``:

* ``train/lr`` (``/pg<i>`` per parameter group): Lightning's ``LearningRateMonitor``, so the
  warmup, the cosine decay and the end a :class:`~.budget.TimeBudget` plans are visible;
* ``train/grad_norm``: the global L2 norm of the gradients *before* clipping (Lightning clips
  right after ``on_before_optimizer_step``), and ``train/clip_fraction``: per epoch, the
  fraction of applied steps whose norm exceeded ``optim.grad_clip``;
* ``train/skipped``: 1 at each step the non-finite guard skipped, else 0 (events beside the
  running count ``train/skipped_steps``); the W&B summary lists the steps in
  ``train/skipped_at``;
* ``train/step_time`` (seconds between the ends of consecutive training steps, validations
  excluded), ``train/images_per_s`` (this process) and ``train/images_per_s_total`` (× world
  size: DDP processes step in lockstep);
* ``train/gpu_mem_gib``: peak memory the process allocated on its CUDA device.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, LearningRateMonitor

from glow_lightning.callbacks.media import wandb_loggers
from glow_lightning.config import ExperimentConfig
from glow_lightning.train.guard import grad_norm

MAX_SKIP_EVENTS = 100  # steps listed in the summary's train/skipped_at (the count is exact)


class TrainingHealth(Callback):
    """Logs the keys of the module docstring; ``clip`` is the gradient-norm clip (None: no
    clipping, no ``train/clip_fraction``)."""

    def __init__(self, clip: float | None = None) -> None:
        self.clip = clip
        self.skipped_at: list[int] = []
        self._skipped = 0
        self._last: float | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._skipped = _skipped(pl_module)  # a resumed run counts from its checkpoint

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule,
                                 optimizer: Any) -> None:
        guard = getattr(pl_module, "guard", None)  # the norm the guard just computed, if any
        norm = getattr(guard, "grad_norm", None)
        norm = norm if norm is not None else grad_norm(pl_module.parameters())
        pl_module.log("train/grad_norm", norm, on_step=True, on_epoch=False, batch_size=1)
        if self.clip:
            pl_module.log("train/clip_fraction", (norm > self.clip).float(), on_step=False,
                          on_epoch=True, batch_size=1)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last = None

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last = None  # the next interval would hold the validation

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        self._log_speed(pl_module, int(batch[0].shape[0]), trainer.world_size)
        self._log_skips(trainer, pl_module)
        if pl_module.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(pl_module.device) / 2**30
            pl_module.log("train/gpu_mem_gib", peak, on_step=True, on_epoch=False, batch_size=1)

    def _log_speed(self, pl_module: L.LightningModule, images: int, world_size: int) -> None:
        now, last, self._last = time.perf_counter(), self._last, time.perf_counter()
        if last is None:
            return
        seconds = now - last
        for key, value in (("step_time", seconds), ("images_per_s", images / seconds),
                           ("images_per_s_total", images * world_size / seconds)):
            pl_module.log(f"train/{key}", value, on_step=True, on_epoch=False, batch_size=1)

    def _log_skips(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # every step (Lightning would repeat a value logged only now at the next steps)
        count = _skipped(pl_module)
        pl_module.log("train/skipped", float(count - self._skipped), on_step=True,
                      on_epoch=False, batch_size=1)
        if count <= self._skipped:
            return
        self._skipped = count
        self.skipped_at = [*self.skipped_at, trainer.global_step][-MAX_SKIP_EVENTS:]
        for logger in wandb_loggers(trainer) if trainer.is_global_zero else []:
            logger.experiment.summary["train/skipped_at"] = self.skipped_at


def _skipped(pl_module: L.LightningModule) -> int:
    guard = getattr(pl_module, "guard", None)
    return int(getattr(guard, "skipped", 0))


def health_callbacks(cfg: ExperimentConfig) -> list[Callback]:
    """The learning-rate monitor and :class:`TrainingHealth`; nothing without a logger (the
    monitor needs one)."""
    if cfg.logger.kind == "none":
        return []
    return [LearningRateMonitor(logging_interval="step"),
            TrainingHealth(cfg.optim.grad_clip or None)]
