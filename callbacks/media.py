"""Where callback output goes: PNGs under the run directory, images and scalars to the loggers.

Everything here is meant for rank zero (the caller checks ``trainer.is_global_zero``); nothing
here calls a collective.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
from lightning.pytorch.loggers import WandbLogger

from glow_lightning.grids import as_image_array, save_png


def media_path(trainer: L.Trainer, kind: str, name: str) -> Path:
    """``<default_root_dir>/media/<kind>/<name>``."""
    return Path(trainer.default_root_dir) / "media" / kind / name


def wandb_loggers(trainer: L.Trainer) -> list[WandbLogger]:
    return [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]


def publish_image(trainer: L.Trainer, kind: str, name: str, key: str, array: np.ndarray,
                  caption: str) -> Path:
    """Save ``array`` (uint8 (H, W, C)) as a PNG under ``media/<kind>/`` and log it to W&B as
    ``key`` (uint8 pixels: W&B does not rescale floats)."""
    path = save_png(media_path(trainer, kind, name), array)
    for logger in wandb_loggers(trainer):
        logger.log_image(key=key, images=[as_image_array(array)], step=trainer.global_step,
                         caption=[caption])
    return path


def log_scalars(trainer: L.Trainer, metrics: dict[str, float]) -> None:
    """Log plain numbers to every logger at the current global step (usable outside steps)."""
    for logger in trainer.loggers:
        logger.log_metrics(metrics, step=trainer.global_step)
