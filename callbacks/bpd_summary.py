"""Test bits/dim into the W&B run summary and ``<default_root_dir>/test_bpd.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn

from .media import wandb_loggers


def _batch_size(batch: Any) -> int:
    first = batch[0] if isinstance(batch, list | tuple) else batch
    return int(first.shape[0])


class BpdSummary(Callback):
    """At test end, copy ``trainer.callback_metrics[key]`` (the value ``trainer.test()``
    returns) into the summary of every W&B logger and into ``test_bpd.json`` together with the
    number of test images seen (summed over ranks)."""

    def __init__(self, key: str = "test/bpd", filename: str = "test_bpd.json") -> None:
        self.key = key
        self.filename = filename
        self._count = 0
        self.num_images: int | None = None

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
        value = trainer.callback_metrics.get(self.key)
        if value is None:
            rank_zero_warn(f"BpdSummary: no '{self.key}' among the test metrics")
            return
        record: dict[str, float | int] = {self.key: float(value)}
        if self.num_images is not None:
            record["num_images"] = self.num_images
        path = Path(trainer.default_root_dir) / self.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2) + "\n")
        for logger in wandb_loggers(trainer):
            logger.experiment.summary[self.key] = float(value)
