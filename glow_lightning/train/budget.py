"""Fit a run into a wall-clock budget: plan the step count from the measured step time.

``trainer.budget_minutes=M`` makes training end within about M minutes of wall time however fast
the machine is: after ``first_plan`` steps, and again every ``every`` steps, rank 0 measures the
mean seconds per step so far (validation and callbacks included) and plans the last step as
``step + remaining time / seconds per step``. Every rank receives the same plan (one broadcast),
which becomes the trainer's ``max_steps`` and the end of the learning-rate decay, so the cosine
schedule reaches its end when the time does. ``trainer.max_steps`` stays an upper bound.

The plan depends on the machine's speed, so the run is not bit-reproducible across machines: the
plan is logged (``train/planned_steps``), printed at the end and stored in checkpoints (a resumed
run keeps its budget and plan), and ``trainer.budget_minutes=null`` with that number as
``trainer.max_steps`` and ``optim.decay_steps`` gives a seeded run of fixed length.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback


class TimeBudget(Callback):
    """Plan ``max_steps`` (and the cosine decay) so training takes ``minutes`` of wall time."""

    def __init__(self, minutes: float, first_plan: int = 40, every: int = 200,
                 margin: float = 0.02) -> None:
        if minutes <= 0 or first_plan < 2 or every < 1 or not 0 <= margin < 1:
            raise ValueError("TimeBudget needs minutes > 0, first_plan >= 2, every >= 1 and "
                             "0 <= margin < 1")
        self.budget = 60.0 * minutes * (1.0 - margin)
        self.first_plan = first_plan
        self.every = every
        self.spent = 0.0  # training seconds of earlier sessions of this run (resume)
        self.planned: int | None = None
        self._start = 0.0
        self._start_step = 0
        self._cap: int | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.monotonic()
        self._start_step = trainer.global_step
        self._cap = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        if self.planned is not None:  # resumed: keep the plan until the next measurement
            self._apply(trainer, self.planned)

    def elapsed(self) -> float:
        return self.spent + time.monotonic() - self._start

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        done = trainer.global_step - self._start_step
        if done < self.first_plan or (done - self.first_plan) % self.every:
            return
        plan = trainer.strategy.broadcast(self._plan(trainer.global_step, done), src=0)
        self._apply(trainer, int(plan))
        pl_module.log("train/planned_steps", float(plan), on_step=True, on_epoch=False,
                      batch_size=1)

    def _plan(self, step: int, done: int) -> int:
        per_step = (time.monotonic() - self._start) / done
        remaining = max(0.0, self.budget - self.elapsed())
        return step + int(remaining / per_step)  # = step when the time is up: stop now

    def _apply(self, trainer: L.Trainer, plan: int) -> None:
        self.planned = plan if self._cap is None else min(plan, self._cap)
        trainer.fit_loop.epoch_loop.max_steps = self.planned
        for config in trainer.lr_scheduler_configs:  # a decaying Schedule ends with the plan
            for fn in getattr(config.scheduler, "lr_lambdas", []):
                if getattr(fn, "decay_steps", 0) > 0:
                    fn.decay_steps = self.planned

    def state_dict(self) -> dict[str, Any]:
        return {"spent": self.elapsed() if self._start else self.spent, "planned": self.planned}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.spent = float(state_dict.get("spent", 0.0))
        planned = state_dict.get("planned")
        self.planned = int(planned) if planned is not None else None
