"""Checkpoint-driven commands: test bits/dim, sample grids, interpolations.

Checkpoints are loaded with ``weights_only=True``: loading never runs pickled code, and a file
that carries other pickled objects is refused with one line (:mod:`glow_lightning.safe_load`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from glow_lightning.config import ConfigError, ExperimentConfig, validate
from glow_lightning.module import GlowModule
from glow_lightning.ops import bins_to_float, postprocess
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
    stored = module.hparams.get("experiment") or {}
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(ExperimentConfig), stored,
                              OmegaConf.from_dotlist(overrides))
        obj = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as err:
        raise ConfigError(f"config error: {str(err).splitlines()[0]}") from None
    assert isinstance(obj, ExperimentConfig)
    validate(obj)
    return obj


def test_checkpoint(ckpt: str, overrides: list[str]) -> float:
    from glow_lightning.run import build_datamodule

    module = load_module(ckpt)
    cfg = experiment_of(module, overrides)
    trainer = L.Trainer(accelerator=cfg.trainer.accelerator, devices=1, logger=False,
                        enable_checkpointing=False, use_distributed_sampler=False)
    results = trainer.test(module, datamodule=build_datamodule(cfg))
    return float(results[0]["test/bpd"])


def sample_checkpoint(ckpt: str, n: int, temperature: float, out: str, seed: int = 0) -> Path:
    from glow_lightning.callbacks import make_grid, save_png

    module = load_module(ckpt)
    gen = torch.Generator().manual_seed(seed)
    with module.sampling() as flow:
        x = flow.sample(n, temperature, generator=gen)
    warn_nonfinite(x, f"sample ckpt={ckpt} temperature={temperature}")
    finite = torch.isfinite(x)
    images = postprocess(torch.where(finite, x, torch.zeros_like(x)), module.n_bits)
    return save_png(out, make_grid(images, nrow=int(max(1, round(n**0.5)))))


def warn_nonfinite(x: torch.Tensor, what: str) -> int:
    """Print one warning line to stderr when ``x`` holds NaN or inf; returns their count."""
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        print(f"warning: {what}: {bad} of {x.numel()} sample values were not finite (NaN or inf; "
              "drawn as 0, mid-grey); try a lower temperature or another checkpoint",
              file=sys.stderr)
    return bad


def interpolate_checkpoint(ckpt: str, pairs: int, steps: int, out: str,
                           overrides: list[str]) -> Path:
    from glow_lightning.callbacks import interpolate_latents, make_grid, save_png
    from glow_lightning.run import build_datamodule

    module = load_module(ckpt)
    datamodule = build_datamodule(experiment_of(module, overrides))
    datamodule.prepare_data()
    datamodule.setup("test")
    bins, _ = datamodule.example_images(2 * pairs, split="test")
    x = bins_to_float(bins, module.n_bits) + 0.5 / 2**module.n_bits
    with module.sampling() as flow, torch.no_grad():
        latents = flow.encode(x)
        path = interpolate_latents([z[0::2] for z in latents], [z[1::2] for z in latents], steps)
        decoded = flow.decode(path)
    warn_nonfinite(decoded, f"interpolate ckpt={ckpt}")
    decoded = torch.where(torch.isfinite(decoded), decoded, torch.zeros_like(decoded))
    images = postprocess(decoded, module.n_bits)
    return save_png(out, make_grid(images, nrow=steps))
