"""When media callbacks draw: at validations the trainer actually runs, every N steps, the end.

A callback gated on ``current_epoch % N`` inside validation can miss every validation (Lightning
validates when ``(epoch + 1) % check_val_every_n_epoch == 0``). Here the schedule counts the
validations that happen: every ``every_n_validations``-th of them, optionally every
``every_n_steps`` training steps, and once at the end of training, never twice at one step.
Keys stay the same at every draw, so W&B's media slider steps through training.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from .inputs import as_glow


class MediaSchedule(Callback):
    """Calls :meth:`draw` on schedule (see the module docstring); rank zero decides in
    :meth:`draw` itself, every rank runs the hooks."""

    def __init__(self, every_n_validations: int = 1, every_n_steps: int = 0) -> None:
        if every_n_validations < 1 or every_n_steps < 0:
            raise ValueError("a media callback needs every_n_validations >= 1 and "
                             "every_n_steps >= 0")
        self.every_n_validations, self.every_n_steps = every_n_validations, every_n_steps
        self._validations = 0
        self._last_step = -1

    def draw(self, trainer: L.Trainer, pl_module: Any) -> None:
        raise NotImplementedError

    def _draw_once(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._last_step != trainer.global_step:
            self._last_step = trainer.global_step
            self.draw(trainer, as_glow(pl_module))

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._validations += 1
        if self._validations % self.every_n_validations == 0:
            self._draw_once(trainer, pl_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self._draw_once(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._draw_once(trainer, pl_module)

    def state_dict(self) -> dict[str, int]:
        return {"validations": self._validations}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._validations = int(state_dict.get("validations", 0))
