"""Checkpoints that survive a crash and load without running code.

* :class:`AtomicCheckpointIO` writes a temporary file unique to its writer in the target folder,
  flushes it to disk and renames it over ``<path>`` (``os.replace``), so a process killed
  mid-write leaves the previous checkpoint intact; a failed write leaves no temporary file.
  (Lightning's own writer stages through the system temp folder and falls back to a copy when
  that lies on another file system, which is not atomic.) Every load is weights-only
  (:mod:`glow_lightning.train.safe_load`).
* :class:`StepCheckpoint` saves every N optimiser steps (else every epoch), keeps the newest
  ``keep`` of those files, ``last.ckpt`` beside them, and saves once more when training ends, so
  ``last.ckpt`` always holds the final state; :func:`best_checkpoint` keeps ``best.ckpt``, the
  lowest ``val/bpd`` so far; ``init.ckpt`` (the weights before the first update) lives until a
  step file passes. A run's folder thus holds at most ``keep + 3`` checkpoints.
* :func:`resolve_resume` turns ``resume=auto|<path>`` into the checkpoint to continue from;
  :func:`check_resumable` refuses, in one line, a checkpoint whose weights do not fit the model.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from glow_lightning.config import RESUME_FREE, ExperimentConfig, differing
from glow_lightning.errors import ConfigError
from glow_lightning.train.rundir import storage_error
from glow_lightning.train.safe_load import load_checkpoint

LAST = "last.ckpt"
INIT = "init.ckpt"  # the weights before the first update, kept until a step file passes


def _is_local(path: str | Path) -> bool:
    return "://" not in str(path) or str(path).startswith("file://")


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary name unique to this writer (host, pid, random), fsync, then
    rename over ``path``; on any failure the temporary file is removed and a file-system error
    (permissions, disk full) becomes one StorageError line naming the path."""
    path = Path(str(path).removeprefix("file://"))
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # torch reports a full disk as a RuntimeError
        tmp.unlink(missing_ok=True)
        raise storage_error(path, err) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Local checkpoints written atomically; all checkpoints read weights-only."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any,
                        storage_options: Any | None = None) -> None:
        if not _is_local(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_save(checkpoint, path)

    def load_checkpoint(self, path: Any, map_location: Any | None = None,
                        weights_only: bool | None = None) -> dict[str, Any]:
        """Always weights-only, whatever the caller asks for."""
        if not _is_local(path):
            return super().load_checkpoint(path, map_location, weights_only=True)
        return load_checkpoint(str(path).removeprefix("file://"),
                               map_location=map_location or "cpu")


class StepCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` of the newest ``keep`` step files that also saves (a step file and
    ``last.ckpt``) when training ends, unless the final step was just saved; ``last.ckpt`` is
    overwritten, never versioned."""

    def __init__(self, dirpath: str | Path, every_n_steps: int = 0, save_last: bool = True,
                 keep: int = 3) -> None:
        super().__init__(dirpath=str(dirpath), filename="step{step:07d}",
                         auto_insert_metric_name=False, every_n_train_steps=every_n_steps or None,
                         monitor="step", mode="max", save_top_k=keep, save_last=save_last,
                         enable_version_counter=False)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save_now(trainer)
        super().on_train_end(trainer, pl_module)

    def _save_now(self, trainer: L.Trainer) -> None:
        if not self._should_skip_saving_checkpoint(trainer):
            candidates = self._monitor_candidates(trainer)
            self._save_topk_checkpoint(trainer, candidates)
            self._save_last_checkpoint(trainer, candidates)

    @property
    def last_path(self) -> str:
        """The newest checkpoint written: ``last.ckpt`` when kept, else the newest step file."""
        return self.last_model_path or self._last_checkpoint_saved or ""

    # A checkpoint is written only from weights that are finite and came from an applied step,
    # and it "passes" once the next step's loss, computed with exactly those weights, is
    # finite: the step file the guard names after a blow-up then evaluates finite.
    passed: str = ""

    _batch_end = False  # inside on_train_batch_end, where most batches save nothing

    def _should_skip_saving_checkpoint(self, trainer: L.Trainer) -> bool:
        if super()._should_skip_saving_checkpoint(trainer):
            return True
        n = self._every_n_train_steps
        if self._batch_end and (n < 1 or trainer.global_step % n):
            return False  # no step file is due: the finiteness check waits for one that is
        return not _safe_to_save(trainer.lightning_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           *args: Any, **kwargs: Any) -> None:
        self._batch_end = True
        try:
            self._batch_end_saves(trainer, pl_module, *args, **kwargs)
        finally:
            self._batch_end = False

    def _batch_end_saves(self, trainer: L.Trainer, pl_module: L.LightningModule,
                         *args: Any, **kwargs: Any) -> None:
        guard = getattr(pl_module, "guard", None)
        newest = self.best_model_path  # monitor "step", mode "max": the newest step file
        if guard is not None and guard.in_row == 0 and newest and newest != self.passed:
            old, self.passed = self.passed, newest
            if old and old not in self.best_k_models:  # kept only while it was the passed one
                super()._remove_checkpoint(trainer, old)
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)
        self._batch_end = False  # the final step's save below is checked in full
        if 0 < trainer.max_steps <= trainer.global_step:
            # the final step: save from inside the epoch. Saved at train end instead, a stop on
            # an epoch's last batch would record one epoch more than was trained (Lightning
            # counts the next, empty one), and the resumed run would skip an epoch of data.
            self._save_now(trainer)

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule,
                                 optimizer: Any) -> None:
        """Before a fresh run's first update: ``init.ckpt``, the weights after ActNorm's data
        init. The guard applies a step only when its loss, computed with these weights, was
        finite, so they pass at once: a run blown up by its first updates (too high a rate)
        still names a checkpoint that evaluates finite. It is removed once a step file passes."""
        if trainer.global_step or self.passed or not self.dirpath:
            return
        if _safe_to_save(pl_module):
            path = os.path.join(self.dirpath, INIT)
            trainer.save_checkpoint(path, weights_only=True)
            self.passed = path

    def _remove_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        if filepath != self.passed:  # the last file that passed survives rotation
            super()._remove_checkpoint(trainer, filepath)


def _safe_to_save(module: L.LightningModule) -> bool:
    """Whether the last optimiser step was applied (not skipped by the guard) and every
    parameter is finite."""
    guard = getattr(module, "guard", None)
    if guard is not None and guard.in_row > 0:
        return False
    flags = [torch.isfinite(p).all() for p in module.parameters()]
    return bool(torch.stack(flags).all()) if flags else True


def best_checkpoint(dirpath: str | Path) -> ModelCheckpoint:
    """``best.ckpt``: the weights with the lowest ``val/bpd`` so far, replaced at a validation
    that improves on it."""
    return ModelCheckpoint(dirpath=str(dirpath), filename="best", monitor="val/bpd", mode="min",
                           save_top_k=1, auto_insert_metric_name=False,
                           enable_version_counter=False)


def check_resumable(path: str | Path, module: torch.nn.Module) -> None:
    """ConfigError (one line) unless ``path`` loads weights-only and its ``state_dict`` has
    exactly the keys and shapes of ``module``'s."""
    state = load_checkpoint(path).get("state_dict")
    if not isinstance(state, dict):
        raise ConfigError(f"checkpoint '{path}' holds no state_dict; resume from a checkpoint "
                          "written by glow-lightning train")
    own = module.state_dict()
    problems = [f"missing {k}" for k in sorted(own.keys() - state.keys())]
    problems += [f"unexpected {k}" for k in sorted(state.keys() - own.keys())]
    problems += [f"{k} is {tuple(state[k].shape)} but the model has {tuple(own[k].shape)}"
                 for k in sorted(own.keys() & state.keys()) if state[k].shape != own[k].shape]
    if problems:
        more = f" and {len(problems) - 2} more" if len(problems) > 2 else ""
        raise ConfigError(f"checkpoint '{path}' does not fit this model ({'; '.join(problems[:2])}"
                          f"{more}); resume with the model settings it was trained with (its "
                          "run's config.yaml)")


def check_same_experiment(path: str | Path, current: dict[str, Any]) -> None:
    """ConfigError listing every model, data or optimiser key whose value differs between the
    checkpoint's stored experiment and ``current`` (this run's), unless ``resume_allow=key,key``
    names it. Checked before the run directory is touched."""
    stored = (load_checkpoint(path).get("hyper_parameters") or {}).get("experiment")
    if not isinstance(stored, dict):
        return  # a checkpoint from before experiments were stored: the weights check stays
    allow = tuple(k.strip() for k in str(current.get("resume_allow") or "").split(",") if k)
    changed = differing(stored, current, ("model", "data", "optim"), RESUME_FREE + allow)
    if changed:
        keys = ",".join(c.split(":")[0] for c in changed)
        raise ConfigError(f"resume from '{path}' with changed settings ({'; '.join(changed)}); "
                          f"resume with the run's own settings, or allow them: resume_allow={keys}")


def resolve_resume(cfg: ExperimentConfig, run_dir: Path) -> str | None:
    """The checkpoint to resume from: ``resume=<path>`` (must exist), ``resume=auto``
    (``<run_dir>/checkpoints/last.ckpt`` when present, else a fresh start; needs a fixed
    ``run_name`` so that the run directory is the same), or None."""
    resume = cfg.resume
    if not resume:
        return None
    if resume != "auto":
        if not Path(resume).is_file():
            raise ConfigError(f"resume='{resume}' does not exist; pass resume=<path to a .ckpt "
                              "file> or resume=auto")
        return resume
    if not cfg.run_name:
        raise ConfigError("resume=auto needs a fixed run_name=<name> (the run directory "
                          "<out_dir>/<run_name> holds checkpoints/last.ckpt)")
    last = run_dir / "checkpoints" / LAST
    return str(last) if last.is_file() else None
