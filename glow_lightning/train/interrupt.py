"""SIGTERM and Ctrl-C end a training with a checkpoint, a line telling how to continue, and a
non-zero exit status: 143 for SIGTERM, 130 for SIGINT (128 + the signal, as a shell reports a
process the signal ended; schedulers that requeue preempted jobs read it as "not finished").

Lightning already turns SIGTERM into a stop after the running batch (``SIGTERMException``);
:class:`Interruption` routes the first Ctrl-C the same way (a second one interrupts at once),
saves the state after that batch through the run's :class:`StepCheckpoint`, and
:func:`interrupted` gives the one-line error.

Under SLURM, ``SIGUSR1`` (``#SBATCH --signal=USR1@120``: the warning before the time limit) is
the same graceful stop, after which :func:`requeue` runs ``scontrol requeue <job>`` and the run
exits 138 (128 + 10); the requeued job runs its script again, whose ``run_name=… resume=auto``
continues from ``last.ckpt``. Lightning's own handler is switched off
(:func:`slurm_environment`): it saves a checkpoint from inside the signal handler, in the middle
of a step, beside the run's own ones.
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any

import lightning as L
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import Callback

from glow_lightning.errors import Interrupted
from glow_lightning.train.checkpointing import StepCheckpoint


class Interruption(Callback):
    """Ctrl-C as a graceful stop; on either signal, a checkpoint of the last finished batch."""

    def __init__(self, checkpoints: StepCheckpoint) -> None:
        self.checkpoints = checkpoints
        self.signum: int | None = None
        self._previous: Any = None
        self._previous_usr1: Any = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        def graceful(signum: int, frame: Any) -> None:
            self.signum = signum
            signal.signal(signal.SIGINT, self._previous)  # a second Ctrl-C stops at once
            trainer._signal_connector.received_sigterm = True  # stop after this batch

        try:
            self._previous = signal.signal(signal.SIGINT, graceful)
            if in_slurm_job():
                self._previous_usr1 = signal.signal(signal.SIGUSR1, graceful)
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
        if self._previous_usr1 is not None:
            signal.signal(signal.SIGUSR1, self._previous_usr1)
            self._previous_usr1 = None


def in_slurm_job() -> bool:
    """Whether this process is a task of a SLURM batch job (not an interactive shell)."""
    return SLURMEnvironment.detect()


def slurm_environment() -> list[Any]:
    """Lightning's SLURM environment without its auto-requeue handler, under SLURM; else []."""
    return [SLURMEnvironment(auto_requeue=False)] if in_slurm_job() else []


def requeue() -> str:
    """``scontrol requeue`` this SLURM job (rank zero only); what happened, in a few words."""
    job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if job else os.environ.get("SLURM_JOB_ID")
    if not job:
        return "no SLURM job id to requeue"
    try:
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True,
                              timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"requeue of job {job} failed ({err}); resubmit it"
    if done.returncode:
        why = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no message"]
        return f"requeue of job {job} failed ({why[0]}); resubmit it"
    return f"job {job} requeued"


def interrupted(signum: int, step: int, checkpoint: str, run_name: str, out_dir: str,
                requeued: str | None = None) -> Interrupted:
    """The one-line error for a training a signal stopped (``requeued``: what :func:`requeue`
    said), with the command that continues it."""
    name = signal.Signals(signum).name
    where = f"checkpoint '{checkpoint}'" if checkpoint else "no checkpoint written"
    requeued = f"{requeued}; " if requeued else ""
    err = Interrupted(f"training interrupted by {name} at step {step}; {where}; {requeued}"
                      f"continue with: glow-lightning train <the same settings> "
                      f"out_dir={out_dir} run_name={run_name} resume=auto")
    err.exit_code = 128 + signum
    return err
