"""``glow-lightning train`` for the cluster rehearsal (tests/test_cluster.py), run by torchrun or
Lightning's launcher on every rank; each rank logs its per-step training loss.

    python -m tests.cluster_driver <log prefix> <kill_at_step|-1> key=value ...

Rank ``r`` appends ``{"step": s, "loss": l}`` to ``<prefix>.rank<r>.jsonl`` after every batch
and ``{"test/bpd": ...}`` at the end. With ``kill_at_step >= 0`` rank 1 kills itself with SIGKILL
as that step starts (mid-epoch, after the checkpoint before it).
"""

from __future__ import annotations

import json
import os
import signal
import sys

from lightning.pytorch.callbacks import Callback

from glow_lightning.config import load_config
from glow_lightning.train.run import train


class Record(Callback):
    def __init__(self, prefix: str, kill_at: int) -> None:
        self.prefix, self.kill_at = prefix, kill_at

    def write(self, rank: int, record: dict) -> None:
        with open(f"{self.prefix}.rank{rank}.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_rank == 1 and trainer.global_step == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.write(trainer.global_rank, {"step": trainer.global_step,
                                         "loss": float(outputs["loss"])})


def main(prefix: str, kill_at: int, words: list[str]) -> None:
    record = Record(prefix, kill_at)
    results = train(load_config(words), extra_callbacks=[record])
    rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", 0)))
    record.write(rank, {"test/bpd": results.get("test/bpd"), "run_dir": results["run_dir"]})


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
