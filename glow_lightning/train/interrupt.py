"""SIGTERM and Ctrl-C end a training with a checkpoint, a line telling how to continue, and a
non-zero exit status: 143 for SIGTERM, 130 for SIGINT (128 + the signal, as a shell reports a
process the signal ended; schedulers that requeue preempted jobs read it as "not finished").

Lightning already turns SIGTERM into a stop after the running batch (``SIGTERMException``);
:class:`Interruption` routes the first Ctrl-C the same way (a second one interrupts at once),
saves the state after that batch through the run's :class:`StepCheckpoint`, and
:func:`interrupted` gives the one-line error. Under SLURM with auto-requeue, Lightning's own
``SIGUSR1`` handler requeues the job.
"""

from __future__ import annotations

import signal
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from glow_lightning.errors import Interrupted
from glow_lightning.train.checkpointing import StepCheckpoint


class Interruption(Callback):
    """Ctrl-C as a graceful stop; on either signal, a checkpoint of the last finished batch."""

    def __init__(self, checkpoints: StepCheckpoint) -> None:
        self.checkpoints = checkpoints
        self.signum: int | None = None
        self._previous: Any = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        def graceful(signum: int, frame: Any) -> None:
            self.signum = signum
            signal.signal(signal.SIGINT, self._previous)  # a second Ctrl-C stops at once
            trainer._signal_connector.received_sigterm = True  # stop after this batch

        try:
            self._previous = signal.signal(signal.SIGINT, graceful)
        except ValueError:  # not the main thread: leave Ctrl-C alone
            self._previous = None

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule,
                     exception: BaseException) -> None:
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        self._restore()
        if isinstance(exception, SIGTERMException):
            self.signum = self.signum or signal.SIGTERM
            self.checkpoints._save_now(trainer)

    def _restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def interrupted(signum: int, step: int, checkpoint: str, run_name: str, out_dir: str
                ) -> Interrupted:
    """The one-line error for a training a signal stopped, with the command that continues it."""
    name = signal.Signals(signum).name
    where = f"checkpoint '{checkpoint}'" if checkpoint else "no checkpoint written"
    err = Interrupted(f"training interrupted by {name} at step {step}; {where}; continue with: "
                      f"glow-lightning train <the same settings> out_dir={out_dir} "
                      f"run_name={run_name} resume=auto")
    err.exit_code = 128 + signum
    return err
