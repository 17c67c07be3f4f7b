"""Everything W&B-specific about a run: online or offline, which run a resume continues, the
logger itself and finishing it.

Offline unless an API key is configured (``logger.mode=auto``); a resumed training logs into the
W&B run that wrote its checkpoint (same run id, ``resume="allow"``), as W&B's resume convention
has it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from glow_lightning.callbacks.media import wandb_loggers
from glow_lightning.callbacks.summary import data_identity
from glow_lightning.config import ExperimentConfig, to_dict
from glow_lightning.errors import ConfigError
from glow_lightning.flows import parameter_count
from glow_lightning.train.budget import TimeBudget

RUN_DIR = re.compile(r"^(?:offline-)?run-(\d{8}_\d{6})-([a-z0-9]+)$")


def _online_possible() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path.home() / ".netrc"
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def wandb_mode(cfg: ExperimentConfig) -> str:
    """``auto``: the WANDB_MODE variable if set, else online only when an API key is configured."""
    if cfg.logger.mode == "online" and not _online_possible():
        raise ConfigError("logger.mode=online needs a W&B API key (WANDB_API_KEY or `wandb "
                          "login`); log in, or use logger.mode=offline and `wandb sync` later")
    if cfg.logger.mode != "auto":
        return cfg.logger.mode
    return os.environ.get("WANDB_MODE") or ("online" if _online_possible() else "offline")


def wandb_run_id(checkpoint: str | None) -> str | None:
    """The id of the W&B run that wrote ``checkpoint`` (``<run_dir>/checkpoints/*.ckpt``): the
    newest run folder W&B left in ``<run_dir>/wandb``. None for a fresh start or a run that
    logged elsewhere."""
    if not checkpoint:
        return None
    folder = Path(checkpoint).resolve().parent.parent / "wandb"
    found = [m for p in folder.glob("*run-*") if (m := RUN_DIR.match(p.name))]
    return max(found, key=lambda m: m.group(1)).group(2) if found else None


def run_config(cfg: ExperimentConfig) -> dict[str, Any]:
    """The one copy of the config W&B gets: the experiment's sections (W&B shows nested keys as
    ``model.coupling``, ``data.name``, ...) and ``logger.extra_config`` at the top level (an
    ablation cell's axes). ``model.realnvp`` only for RealNVP: a Glow run does not use it
    (``config.yaml`` keeps every key, so a resume rebuilds the same config)."""
    config = to_dict(cfg)
    extra = config["logger"].pop("extra_config", {})
    if cfg.model.architecture != "realnvp":
        config["model"].pop("realnvp", None)
    return {**config, **extra}


def run_tags(cfg: ExperimentConfig) -> list[str]:
    """``logger.tags`` plus what a researcher filters by: dataset, architecture, coupling and
    permutation (RealNVP's masked couplings fix the last two, so it gets neither)."""
    m = cfg.model
    own = [f"data:{cfg.data.name}", f"architecture:{m.architecture}"]
    if m.architecture != "realnvp":
        own += [f"coupling:{m.coupling}", f"permutation:{m.permutation}"]
    return list(dict.fromkeys([*own, *cfg.logger.tags]))


class StepWandbLogger(WandbLogger):
    """A ``WandbLogger`` whose every row is logged at the trainer's global step, as W&B's own
    step: the step checkpoints and ``summary.json`` use. Lightning hands loggers a step that
    lags by one during validation (its batch counter), so a validation's metrics would land
    one step before its media, and the history would step backwards. With W&B's ``step=``
    everything logged at one step (a validation's metrics, grids, tables) merges into one row,
    so the media slider's frames line up across panels. Unbound (no trainer yet), Lightning's
    step is used."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clock: Callable[[], int] | None = None

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        step = self.clock() if self.clock is not None else step
        if step is None:
            return super().log_metrics(metrics, step)
        self.experiment.log({**metrics, "trainer/global_step": step}, step=step)


def wandb_logger(cfg: ExperimentConfig, run_dir: Path, resume: str | None = None) -> WandbLogger:
    """The W&B logger of a run in ``run_dir``, continuing the run of ``resume`` if any; grouped
    by ``logger.group`` (default: the experiment's name), tagged by :func:`run_tags`."""
    mode = wandb_mode(cfg)
    os.environ["WANDB_MODE"] = mode
    run_id = wandb_run_id(resume)
    resumed: dict[str, Any] = {"id": run_id, "resume": "allow"} if run_id else {}
    return StepWandbLogger(project=cfg.logger.project, group=cfg.logger.group or cfg.name,
                           tags=run_tags(cfg), job_type=cfg.logger.job_type,
                           notes=cfg.notes or None, name=run_dir.name, save_dir=str(run_dir),
                           offline=mode != "online", log_model=False, config=run_config(cfg),
                           **resumed)


def git_commit() -> str | None:
    """The commit of the source tree this package runs from, when it is a git checkout."""
    import subprocess

    folder = Path(__file__).resolve().parent
    try:
        done = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], timeout=5,
                              capture_output=True, text=True)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


METRICS = (  # (glob, summary): every key against the global step; bests where lower is better.
    # No "last" summaries: W&B keeps the latest value by default, and a "last" wrapper would
    # also wrap the tables and images under val/ and test/ so that they no longer render.
    ("epoch", None), ("train/*", None), ("val/*", None), ("val/bpd", "min"), ("test/*", None),
    ("samples/*", None), ("interpolations", None), ("manipulation", None),
    ("test_monitor/*", None))  # validation on the test split (data.val_size=0)


def decay_end(trainer: L.Trainer) -> int | None:
    """The step where the learning rate's cosine decay ends (a :class:`TimeBudget` moves it to
    its plan), None without a decay."""
    ends = [fn.decay_steps for c in trainer.lr_scheduler_configs
            for fn in getattr(c.scheduler, "lr_lambdas", []) if getattr(fn, "decay_steps", 0)]
    return int(ends[0]) if ends else None


class WandbSetup(Callback):
    """On rank zero: at fit start, step axes and summaries for the run's keys
    (``define_metric``: ``val/bpd`` summarised by its minimum, ``epoch`` a metric), and the
    parameter count, package version, git commit and the data's identity (dataset, version,
    source revision or file hash, split sizes) added to the one copy of the config; the
    :class:`StepWandbLogger` bound to the trainer's global step; whenever a :class:`TimeBudget`
    plans (else at train start, the trainer's own step count), ``planned_steps`` and
    ``decay_end_step`` in the config and summary: what runs, where ``trainer.max_steps`` and
    ``optim.decay_steps`` are only bounds the plan replaces."""

    def __init__(self) -> None:
        self._planned: int | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, StepWandbLogger):
                logger.clock = lambda: trainer.global_step

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loggers = wandb_loggers(trainer)
        if not loggers or not trainer.is_global_zero:
            return
        from glow_lightning import __version__

        run = loggers[0].experiment
        run.define_metric("trainer/global_step")
        for key, summary in METRICS:
            extra = {"summary": summary} if summary else {}
            run.define_metric(key, step_metric="trainer/global_step", **extra)
        run.config.update({"params": parameter_count(getattr(pl_module, "flow", pl_module)),
                           "version": __version__, "git_commit": git_commit(),
                           "data_identity": data_identity(trainer)}, allow_val_change=True)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        estimate = trainer.estimated_stepping_batches
        self._note_plan(trainer, _budget_plan(trainer) or (
            int(estimate) if math.isfinite(estimate) else None))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        self._note_plan(trainer, _budget_plan(trainer))

    def _note_plan(self, trainer: L.Trainer, planned: int | None) -> None:
        loggers = wandb_loggers(trainer)
        if planned in (None, self._planned) or not loggers or not trainer.is_global_zero:
            return
        self._planned = planned
        plan = {"planned_steps": planned, "decay_end_step": decay_end(trainer)}
        loggers[0].experiment.config.update(plan, allow_val_change=True)
        loggers[0].experiment.summary.update(plan)


def _budget_plan(trainer: L.Trainer) -> int | None:
    callbacks = getattr(trainer, "callbacks", [])  # set by Lightning, not typed on Trainer
    plans = [c.planned for c in callbacks if isinstance(c, TimeBudget) and c.planned]
    return plans[0] if plans else None


def uploads_checkpoints(cfg: ExperimentConfig) -> bool:
    """Checkpoints go to W&B as artifacts only online (offline they would be copied into the
    run folder), and only with ``logger.log_checkpoints``."""
    return cfg.logger.kind == "wandb" and cfg.logger.log_checkpoints and wandb_mode(cfg) == "online"


class CheckpointArtifacts(Callback):
    """At the end of training, on rank zero: ``last.ckpt`` and ``best.ckpt`` as versions of the
    run's ``model-<run id>`` artifact with the aliases ``last``/``latest`` and ``best``. Only
    those two, once per training (a resumed run adds one more pair): bounded storage."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loggers = wandb_loggers(trainer)
        if not loggers or not trainer.is_global_zero:
            return
        import wandb

        run = loggers[0].experiment
        # best first: W&B moves "latest" to every version it logs, so it ends on last.ckpt
        for name, aliases in (("best.ckpt", ["best"]), ("last.ckpt", ["last", "latest"])):
            path = self.folder / name
            if path.is_file():
                artifact = wandb.Artifact(f"model-{run.id}", type="model",
                                          metadata={"step": trainer.global_step, "file": name})
                artifact.add_file(str(path), name=name)
                run.log_artifact(artifact, aliases=aliases)


def finish(trainer: L.Trainer) -> None:
    """Close the W&B run (rank zero holds it), so the next run in this process is a new one."""
    if wandb_loggers(trainer) and trainer.is_global_zero:
        import wandb

        wandb.finish()
