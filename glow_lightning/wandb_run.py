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
from lightning.pytorch.loggers import WandbLogger

from glow_lightning.config import ExperimentConfig, to_dict

RUN_DIR = re.compile(r"^(?:offline-)?run-(\d{8}_\d{6})-([a-z0-9]+)$")


def _online_possible() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path.home() / ".netrc"
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def wandb_mode(cfg: ExperimentConfig) -> str:
    """``auto``: the WANDB_MODE variable if set, else online only when an API key is configured."""
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


def wandb_logger(cfg: ExperimentConfig, run_dir: Path, resume: str | None = None) -> WandbLogger:
    """The W&B logger of a run in ``run_dir``, continuing the run of ``resume`` if any."""
    mode = wandb_mode(cfg)
    os.environ["WANDB_MODE"] = mode
    upload = mode == "online" and cfg.logger.log_checkpoints
    run_id = wandb_run_id(resume)
    resumed: dict[str, Any] = {"id": run_id, "resume": "allow"} if run_id else {}
    return WandbLogger(project=cfg.logger.project, group=cfg.logger.group, tags=cfg.logger.tags,
                       name=run_dir.name, save_dir=str(run_dir), offline=mode != "online",
                       log_model="all" if upload else False, config=to_dict(cfg), **resumed)


def finish(trainer: L.Trainer) -> None:
    """Close the W&B run (rank zero holds it), so the next run in this process is a new one."""
    if any(isinstance(lg, WandbLogger) for lg in trainer.loggers) and trainer.is_global_zero:
        import wandb

        wandb.finish()
