"""Everything W&B-specific about a run: online or offline, which run a resume continues, the
logger itself and finishing it.

Offline unless an API key is configured (``logger.mode=auto``); a resumed training logs into the
W&B run that wrote its checkpoint (same run id, ``resume="allow"``), as W&B's resume convention
has it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import WandbLogger

from glow_lightning.config import ExperimentConfig, to_dict
from glow_lightning.errors import ConfigError

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
    ablation cell's axes)."""
    config = to_dict(cfg)
    extra = config["logger"].pop("extra_config", {})
    return {**config, **extra}


def wandb_logger(cfg: ExperimentConfig, run_dir: Path, resume: str | None = None) -> WandbLogger:
    """The W&B logger of a run in ``run_dir``, continuing the run of ``resume`` if any."""
    mode = wandb_mode(cfg)
    os.environ["WANDB_MODE"] = mode
    run_id = wandb_run_id(resume)
    resumed: dict[str, Any] = {"id": run_id, "resume": "allow"} if run_id else {}
    return WandbLogger(project=cfg.logger.project, group=cfg.logger.group, tags=cfg.logger.tags,
                       name=run_dir.name, save_dir=str(run_dir), offline=mode != "online",
                       log_model=False, config=run_config(cfg), **resumed)


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


METRICS = (  # (glob, summary): every key against the global step; bests where lower is better
    ("epoch", None), ("train/*", None), ("val/*", None), ("val/bpd", "min"),
    ("val/bits_level*", "last"), ("test/*", "last"), ("samples/*", None),
    ("interpolations", None), ("manipulation", None))


class WandbSetup(Callback):
    """At fit start, on rank zero: step axes and summaries for the run's keys
    (``define_metric``: ``val/bpd`` summarised by its minimum, ``test/*`` by the last value,
    ``epoch`` a metric), and the parameter count, package version and git commit added to the
    one copy of the config."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if not loggers or not trainer.is_global_zero:
            return
        from glow_lightning import __version__

        run = loggers[0].experiment
        run.define_metric("trainer/global_step")
        for key, summary in METRICS:
            extra = {"summary": summary} if summary else {}
            run.define_metric(key, step_metric="trainer/global_step", **extra)
        flow = getattr(pl_module, "flow", pl_module)
        run.config.update({"params": sum(p.numel() for p in flow.parameters()),
                           "version": __version__, "git_commit": git_commit()},
                          allow_val_change=True)


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
        loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
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
    if any(isinstance(lg, WandbLogger) for lg in trainer.loggers) and trainer.is_global_zero:
        import wandb

        wandb.finish()
