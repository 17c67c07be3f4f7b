"""The run's numbers in one place: ``<default_root_dir>/summary.json`` and the W&B summary.

``summary.json`` is what an offline user reads instead of the dashboard: the data the run read
(``data``: :func:`data_identity`), the best and the last ``val/bpd`` (with their steps), the
last validation's per-level bits, every ``test/*`` metric, the number of test images seen
(summed over ranks), the steps trained (and planned: a time budget's plan, else
``trainer.max_steps``) and the parameter count.
It is rewritten after every validation and at test end, on rank zero.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn

from glow_lightning.flows import parameter_count

from .media import wandb_loggers

FILENAME = "summary.json"


def _batch_size(batch: Any) -> int:
    first = batch[0] if isinstance(batch, list | tuple) else batch
    return int(first.shape[0])


def _scalars(metrics: dict[str, Any], prefix: str) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if k.startswith(prefix)
            and (not isinstance(v, torch.Tensor) or v.numel() == 1)}


def data_identity(trainer: L.Trainer) -> dict[str, Any] | None:
    """What the run's data module read (``identity()``: dataset, version, source with its
    revision or file hash, split sizes), or None for a data module without one."""
    identity = getattr(getattr(trainer, "datamodule", None), "identity", None)
    return identity() if callable(identity) else None


class RunSummary(Callback):
    """Keeps ``summary.json`` (see the module docstring) and puts the test metrics into the
    summary of every W&B logger."""

    def __init__(self, filename: str = FILENAME) -> None:
        self.filename = filename
        self.record: dict[str, Any] = {}
        self._count = 0
        self.num_images: int | None = None

    def _write(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        flow = getattr(pl_module, "flow", pl_module)
        self.record.update(steps=trainer.global_step, epoch=trainer.current_epoch,
                           params=parameter_count(flow))
        identity = data_identity(trainer)
        if identity is not None:
            self.record["data"] = identity
        if trainer.max_steps > 0:  # a time budget's plan replaces the configured bound
            self.record["planned_steps"] = trainer.max_steps
        path = Path(trainer.default_root_dir) / self.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.record, indent=2, sort_keys=True) + "\n")

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        val = _scalars(trainer.callback_metrics, "val/")
        bpd = val.get("val/bpd")
        if bpd is None or not math.isfinite(bpd):
            return
        best = self.record.get("val/bpd_best")
        if best is None or bpd < best:
            self.record.update({"val/bpd_best": bpd, "val/bpd_best_step": trainer.global_step})
        self.record["val/last"] = {**val, "step": trainer.global_step}
        self._write(trainer, pl_module)

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._count = 0

    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                          batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._count += _batch_size(batch)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Every rank reaches this hook, so the sum over ranks is a matched collective.
        count = torch.tensor(self._count, dtype=torch.long, device=pl_module.device)
        self.num_images = int(trainer.strategy.reduce(count, reduce_op="sum"))

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        test = _scalars(trainer.callback_metrics, "test/")
        if "test/bpd" not in test:
            rank_zero_warn("RunSummary: no 'test/bpd' among the test metrics")
            return
        test.update(getattr(pl_module, "test_info", {}))  # which checkpoint, split (strings)
        test["test/num_images"] = self.num_images
        self.record.update(test)
        self.record["num_images"] = self.num_images
        self._write(trainer, pl_module)
        for logger in wandb_loggers(trainer):
            for key, value in test.items():
                logger.experiment.summary[key] = value
