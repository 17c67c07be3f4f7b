"""Checkpoint-driven commands: test bits/dim, sample grids, interpolations.

Checkpoints are loaded with ``weights_only=True``: loading never runs pickled code, and a file
that carries other pickled objects is refused with one line (:mod:`glow_lightning.safe_load`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import torch

from glow_lightning.config import ExperimentConfig, merge_config
from glow_lightning.errors import ConfigError
from glow_lightning.module import GlowModule
from glow_lightning.ops import bin_centres, displayable
from glow_lightning.safe_load import check_checkpoint


def load_module(ckpt: str | Path, map_location: str = "cpu") -> GlowModule:
    """Rebuild a GlowModule from its checkpoint alone (safe, weights-only load). Raises
    CheckpointRefused (a ConfigError) for a missing, damaged or code-carrying file."""
    check_checkpoint(ckpt)
    module = GlowModule.load_from_checkpoint(str(ckpt), map_location=map_location,
                                             weights_only=True)
    return module.eval()


def experiment_of(module: GlowModule, overrides: list[str]) -> ExperimentConfig:
    """The experiment config stored in the checkpoint, with dotlist overrides applied."""
    return merge_config(module.hparams.get("experiment") or {}, dotlist=overrides)


def evaluate_checkpoint(ckpt: str, overrides: list[str]) -> dict[str, float]:
    """The ``test/*`` metrics of a checkpoint on its dataset's test split (one process):
    ``test/bpd`` and the per-level terms ``test/bits_level{i}[_prior|_logdet]``."""
    from glow_lightning.run import build_datamodule

    module = load_module(ckpt)
    cfg = experiment_of(module, overrides)
    trainer = L.Trainer(accelerator=cfg.trainer.accelerator, devices=1, logger=False,
                        enable_checkpointing=False, use_distributed_sampler=False,
                        enable_progress_bar=False, enable_model_summary=False)
    results = trainer.test(module, datamodule=build_datamodule(cfg), verbose=False)
    return {k: float(v) for k, v in results[0].items()}


def sample_checkpoint(ckpt: str, n: int, temperature: float, out: str, seed: int = 0,
                      y: int | None = None) -> Path:
    """A grid of ``n`` samples at ``temperature``; ``y``: all of that class (a
    class-conditional checkpoint)."""
    from glow_lightning.callbacks import make_grid, save_png

    module = load_module(ckpt)
    labels = class_labels(module, y, n)
    gen = torch.Generator().manual_seed(seed)
    with module.sampling() as flow:
        x = flow.sample(n, temperature, y=labels, generator=gen)
    images, bad = displayable(x, module.n_bits)
    warn_nonfinite(bad, x.numel(), f"sample ckpt={ckpt} temperature={temperature}")
    return save_png(out, make_grid(images, nrow=int(max(1, round(n**0.5)))))


def class_labels(module: GlowModule, y: int | None, n: int) -> torch.Tensor | None:
    """``n`` labels of class ``y``, refused in one line where the checkpoint cannot use them."""
    if y is None:
        return None
    classes = module.num_classes
    if not classes:
        raise ConfigError("y= needs a class-conditional checkpoint (trained with "
                          "model.conditional=true); drop y= to sample this one")
    if not 0 <= y < classes:
        raise ConfigError(f"y={y} is not a class of this checkpoint; choose 0..{classes - 1}")
    return torch.full((n,), y, dtype=torch.long)


def warn_nonfinite(bad: int, total: int, what: str) -> None:
    """Print one warning line to stderr when ``bad`` of ``total`` values were NaN or inf."""
    if bad:
        print(f"warning: {what}: {bad} of {total} sample values were not finite (NaN or inf; "
              "drawn as 0, mid-grey); try a lower temperature or another checkpoint",
              file=sys.stderr)


def interpolate_checkpoint(ckpt: str, pairs: int, steps: int, out: str,
                           overrides: list[str]) -> Path:
    from glow_lightning.callbacks import interpolate_images, make_grid, save_png
    from glow_lightning.run import build_datamodule

    module = load_module(ckpt)
    datamodule = build_datamodule(experiment_of(module, overrides))
    datamodule.prepare_data()
    datamodule.setup("test")
    bins, _ = datamodule.example_images(2 * pairs, split="test")
    with module.sampling() as flow:
        decoded = interpolate_images(flow, bin_centres(bins, module.n_bits), steps)
    images, bad = displayable(decoded, module.n_bits)
    warn_nonfinite(bad, decoded.numel(), f"interpolate ckpt={ckpt}")
    return save_png(out, make_grid(images, nrow=steps))
