"""Per-step training bits/dim of one run, kept in a small CSV beside the run (for Figure 3)."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from glow_lightning.flows import parameter_count

HISTORY_FILE = "bpd_history.csv"
# The batch's train bits/dim; ``train/loss`` is the same number for unconditional flows (it
# adds the weighted class loss for class-conditional ones).
KEYS = ("train/bpd_step", "train/loss")


class BpdHistory(Callback):
    """Record ``(step, train bpd)`` after every optimiser step on rank zero; write
    ``<default_root_dir>/bpd_history.csv`` at the end of training (and every ``flush_every``
    steps, so a long run leaves a partial history behind). Also keeps the final ``steps``, the
    training ``seconds`` and the flow's parameter count ``params``. The rows and seconds travel
    in checkpoints, so a resumed run continues its history."""

    def __init__(self, filename: str = HISTORY_FILE, flush_every: int = 200) -> None:
        self.filename = filename
        self.flush_every = flush_every
        self.rows: list[tuple[int, float]] = []
        self.steps = 0
        self.params = 0
        self.seconds = 0.0
        self._started: float | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        flow = getattr(pl_module, "flow", pl_module)
        self.params = parameter_count(flow)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.perf_counter()

    def _elapsed(self) -> float:
        return self.seconds + (time.perf_counter() - self._started if self._started else 0.0)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [[s, v] for s, v in self.rows], "seconds": self._elapsed()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = [(int(s), float(v)) for s, v in state_dict.get("rows", [])]
        self.seconds = float(state_dict.get("seconds", 0.0))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        if not trainer.is_global_zero:
            return
        value = next((trainer.callback_metrics[k] for k in KEYS if k in trainer.callback_metrics),
                     None)
        if value is not None:
            self.rows.append((trainer.global_step, float(value)))
        if self.rows and trainer.global_step % self.flush_every == 0:
            self.write(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.steps = trainer.global_step
        self.seconds, self._started = self._elapsed(), None
        if trainer.is_global_zero:
            self.write(trainer)

    def write(self, trainer: L.Trainer) -> Path:
        path = Path(trainer.default_root_dir) / self.filename
        write_history(path, self.rows)
        return path


def write_history(path: Path, rows: list[tuple[int, float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "train_bpd"])
        writer.writerows(rows)


def read_history(path: Path) -> list[tuple[int, float]]:
    """``[(step, train_bpd)]`` from a history CSV; empty when the file does not exist."""
    if not Path(path).is_file():
        return []
    with Path(path).open(newline="") as f:
        return [(int(r["step"]), float(r["train_bpd"])) for r in csv.DictReader(f)]
