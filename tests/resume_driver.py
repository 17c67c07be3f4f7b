"""Train like ``glow-lightning train`` and record every step's training loss (for test_resume,
which runs :func:`run` in forked child processes; by hand: ``python -m tests.resume_driver``).

    python -m tests.resume_driver <loss.jsonl> <pause_at_step|-1> key=value ...

Appends ``{"step": global_step, "loss": loss}`` per training batch to ``loss.jsonl`` (flushed at
once, so a killed run keeps what it trained) and ``{"test/bpd": ...}`` at the end. With
``pause_at_step >= 0`` the run blocks before that step, after writing ``<loss.jsonl>.paused``,
until it is killed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from lightning.pytorch.callbacks import Callback

from glow_lightning.config import load_config
from glow_lightning.train.run import train


class StepLosses(Callback):
    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, record: dict) -> None:
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.write({"step": trainer.global_step, "loss": float(outputs["loss"])})


class PauseBefore(Callback):
    def __init__(self, step: int, flag: Path) -> None:
        self.step, self.flag = step, flag

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            self.flag.write_text(str(self.step))
            time.sleep(3600)


def run(path: Path, pause_at: int, overrides: list[str]) -> None:
    losses = StepLosses(path)
    callbacks = [losses]
    if pause_at >= 0:
        callbacks.append(PauseBefore(pause_at, path.with_name(path.name + ".paused")))
    results = train(load_config(overrides), extra_callbacks=callbacks)
    losses.write({"test/bpd": results["test/bpd"]})


if __name__ == "__main__":
    run(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:])
