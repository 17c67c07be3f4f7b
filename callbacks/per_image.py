"""Every test image's bits/dim: ``per_image.csv``, a histogram PNG, the worst and best images.

The module's ``test_step`` returns per-image ``bpd`` (and ``bpd_iw``, the importance-weighted
bound); this callback collects them with each image's index in the test split and its label,
gathers every rank's rows on rank zero at the end of the test (the eval sampler gives each
image to exactly one rank) and writes there. When the test loader's dataset can be indexed
(map-style data; streamed images have index -1), the W&B table shows the worst and best images.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import Callback

from glow_lightning.grids import as_image_array, make_grid

from .histograms import save_histograms
from .media import wandb_loggers

CSV_NAME, PNG_NAME = "per_image.csv", "per_image_hist.png"
Rows = dict[str, np.ndarray]


def gather_rows(rows: Rows) -> Rows:
    """Every rank's rows concatenated (all ranks must call), sorted by index."""
    parts = [rows]
    if dist.is_available() and dist.is_initialized():
        parts = [{} for _ in range(dist.get_world_size())]
        dist.all_gather_object(parts, rows)
    merged = {k: np.concatenate([p[k] for p in parts]) for k in rows}
    order = np.argsort(merged["index"], kind="stable")
    return {k: v[order] for k, v in merged.items()}


def write_csv(path: Path, rows: Rows, iw_samples: int = 0) -> Path:
    """``index,label,bpd[,bpd_iw{K}]``: one line per image."""
    names = {"bpd_iw": f"bpd_iw{iw_samples}"}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([names.get(k, k) for k in rows])
        for values in zip(*rows.values(), strict=True):
            writer.writerow([int(v) if k in ("index", "label") else repr(float(v))
                             for k, v in zip(rows, values, strict=True)])
    return path


class PerImageBits(Callback):
    """Collect per-image test bits/dim (``rows``: index, label, bpd[, bpd_iw] on rank zero after
    the test); with ``publish``, write :data:`CSV_NAME` and :data:`PNG_NAME` under the trainer's
    ``default_root_dir``, log the ``extremes`` worst and best images and a histogram to W&B, and
    put ``test/bpd_median`` into the module's ``test_info`` (the run summary reads it)."""

    def __init__(self, publish: bool = True, extremes: int = 8) -> None:
        self.publish, self.extremes = publish, extremes
        self._parts: list[Rows] = []
        self.rows: Rows = {}

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._parts, self.rows = [], {}

    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                          batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if not isinstance(outputs, dict) or "bpd" not in outputs:
            return
        index = batch[2] if len(batch) > 2 else torch.full_like(batch[1], -1)
        part = {"index": index, "label": batch[1], "bpd": outputs["bpd"]}
        if "bpd_iw" in outputs:
            part["bpd_iw"] = outputs["bpd_iw"]
        self._parts.append({k: v.detach().cpu().double().numpy() for k, v in part.items()})

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._parts:
            return
        own = {k: np.concatenate([p[k] for p in self._parts]) for k in self._parts[0]}
        rows = gather_rows(own)  # a collective: every rank, before the rank-zero check
        if not trainer.is_global_zero:
            return
        self.rows = rows
        if self.publish:
            self._publish(trainer, pl_module)

    def _publish(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        root, bpd = Path(trainer.default_root_dir), self.rows["bpd"]
        write_csv(root / CSV_NAME, self.rows, getattr(pl_module, "iw_samples", 0))
        save_histograms(root / PNG_NAME, {"test": bpd},
                        f"test bits/dim per image at step {trainer.global_step}")
        info = getattr(pl_module, "test_info", None)
        if isinstance(info, dict):
            info["test/bpd_median"] = float(np.median(bpd))
        for logger in wandb_loggers(trainer):
            import wandb

            table = wandb.Table(columns=["which", "index", "label", "bpd", "image"],
                                data=self._extremes(trainer))
            logger.log_metrics({"test/per_image_extremes": table,
                                "test/bpd_histogram": wandb.Histogram(bpd[np.isfinite(bpd)])},
                               step=trainer.global_step)

    def _extremes(self, trainer: L.Trainer) -> list[list[Any]]:
        """[which, index, label, bpd, wandb.Image or None] of the worst and best images."""
        import wandb

        bpd = np.nan_to_num(self.rows["bpd"], nan=np.inf)
        order = np.argsort(-bpd, kind="stable")
        k = min(self.extremes, len(order))
        picks = [("worst", i) for i in order[:k]] + [("best", i) for i in order[::-1][:k]]
        dataset = getattr(trainer.test_dataloaders, "dataset", None)
        n_bits = int(getattr(trainer.lightning_module, "n_bits", 8))
        out: list[list[Any]] = []
        for which, i in picks:
            index = int(self.rows["index"][i])
            image = None
            if index >= 0 and hasattr(dataset, "__getitem__"):
                pixels = dataset[index][0].float().unsqueeze(0) / (2**n_bits - 1)
                image = wandb.Image(as_image_array(make_grid(pixels, padding=0)))
            out.append([which, index, int(self.rows["label"][i]), float(self.rows["bpd"][i]),
                        image])
        return out
