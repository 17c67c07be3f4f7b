"""``glow-lightning test ckpt=... ood=NAME|PATH[,...]``: the checkpoint's bits/dim on other data
and on its own samples, against its test images (Nalisnick et al. 2019, "Do deep generative
models know what they don't know?": likelihood models can score other data *higher*).

Each OOD set is the checkpoint's experiment with ``data.name=NAME`` (a known dataset) or
``data.source=PATH`` (local files read like the in-distribution data), at the model's shape
(1-channel data tiled to 3 channels or resized with the data module's own options where that
matches). Per set: the number of images, the mean bits/dim and the AUROC of telling it from the
test split by bits/dim (:func:`glow_lightning.evaluate.auroc`); the model's samples at
T = 0.7 and 1.0, quantised to the n-bit grid, are rows too. Writes ``ood.json`` and
``ood_histograms.png``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from glow_lightning.errors import ConfigError

if TYPE_CHECKING:
    from glow_lightning.config import ExperimentConfig
    from glow_lightning.data import ImageDataModule
    from glow_lightning.train.module import GlowModule

SAMPLE_TEMPERATURES = (0.7, 1.0)
# the other data's own columns, no validation split held out of its train split (only its test
# split is read; so the test section's checks of validation do not apply either)
RESET_COLUMNS = ["data.image_column=null", "data.label_column=null", "data.val_size=0",
                 "test.checkpoint=last"]


def ood_overrides(target: str) -> list[str]:
    """Config overrides that read ``target``: a known dataset name or an existing path; else a
    one-line ConfigError listing the known names."""
    from glow_lightning.data import DATASETS

    if target in DATASETS:
        return [f"data.name={target}", "data.source=null", *RESET_COLUMNS]
    if Path(target).exists():
        return [f"data.source={target}", *RESET_COLUMNS]
    raise ConfigError(f"ood={target!r} is neither a known dataset nor an existing path; known "
                      f"datasets: {', '.join(DATASETS)}")


def matched_datamodule(cfg: ExperimentConfig, shape: tuple[int, ...]) -> ImageDataModule:
    """The data module of ``cfg`` at ``shape`` (C, H, W): as configured, else with 1-channel
    images tiled to 3 and/or resized to the model's side; a one-line ConfigError naming both
    shapes where neither matches."""
    from glow_lightning.data import build_datamodule as build
    from glow_lightning.train.run import build_datamodule

    datamodule = build_datamodule(cfg)
    got = datamodule.image_shape
    if got == tuple(shape):
        return datamodule
    kwargs: dict[str, Any] = {k: v for k, v in dataclasses.asdict(cfg.data).items()
                              if k != "name"}
    if got[1:] != tuple(shape[1:]):
        kwargs["image_size"] = shape[-1]
    kwargs["tile_channels"] = got[0] == 1 and shape[0] == 3
    try:
        datamodule = build(cfg.data.name, **kwargs)
    except ValueError:
        pass
    if datamodule.image_shape != tuple(shape):
        raise ConfigError(f"ood data '{cfg.data.source or cfg.data.name}' has images of shape "
                          f"{got}, the model takes {tuple(shape)}, and neither tiling channels "
                          "nor data.image_size matches them; choose data of the model's shape")
    return datamodule


def sample_bpd(module: GlowModule, n: int, temperature: float, seed: int = 0,
               batch: int = 64) -> np.ndarray:
    """Bits/dim (n,) of ``n`` of the model's own samples at ``temperature``, quantised to the
    n-bit grid as :func:`~glow_lightning.ops.displayable` draws them, evaluated like test
    images (the fixed per-image eval noise)."""
    import torch

    from glow_lightning.ops import bits_per_dim, displayable
    from glow_lightning.train.evaluation import eval_log_prob

    gen, levels, out = torch.Generator().manual_seed(seed), 2**module.n_bits - 1, []
    for start in range(0, n, batch):
        with module.sampling() as flow:
            x = flow.sample(min(batch, n - start), temperature, generator=gen)
        bins = (displayable(x, module.n_bits)[0] * levels).round().to(torch.uint8)
        log_prob = eval_log_prob(module, bins)
        out.append(bits_per_dim(log_prob, module.flow.num_dims, module.n_bits).double().numpy())
    return np.concatenate(out)


def ood_row(name: str, bpd: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """One set's entry: count, mean and median bits/dim, AUROC against ``reference``."""
    from glow_lightning.evaluate import auroc

    return {"name": name, "num_images": int(bpd.size), "bpd_mean": float(np.mean(bpd)),
            "bpd_median": float(np.median(bpd)), "auroc": auroc(reference, bpd)}


def write_report(out: Path, sets: dict[str, np.ndarray], rows: list[dict[str, Any]]) -> Path:
    """``ood.json`` (the rows) and ``ood_histograms.png`` (every set's bits/dim) under ``out``."""
    from glow_lightning.callbacks.histograms import save_histograms

    out.mkdir(parents=True, exist_ok=True)
    save_histograms(out / "ood_histograms.png", sets, "bits/dim: test split vs other data")
    path = out / "ood.json"
    path.write_text(json.dumps({"sets": rows}, indent=2) + "\n")
    return path
