"""``glow-lightning sample ckpt=PATH``: a grid of samples at one temperature."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from glow_lightning.commands.args import (
    need_ckpt,
    need_png,
    parse_bounded,
    parse_number,
    split_keys,
)
from glow_lightning.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from glow_lightning.train.module import GlowModule

HELP = "sample a grid: ckpt=PATH temperature=0.7 n=64 out=grid.png seed=0 [y=CLASS]"
OWN = {"ckpt": "", "n": "64", "temperature": "0.7", "out": "samples.png", "seed": "0", "y": ""}


def sample_checkpoint(ckpt: str, n: int, temperature: float, out: str, seed: int = 0,
                      y: int | None = None) -> Path:
    """A grid of ``n`` samples at ``temperature``; ``y``: all of that class (a
    class-conditional checkpoint)."""
    import torch

    from glow_lightning.commands.checkpoint import load_module, warn_nonfinite
    from glow_lightning.grids import grid_columns, make_grid, save_png
    from glow_lightning.ops import displayable

    module = load_module(ckpt)
    labels = class_labels(module, y, n)
    gen = torch.Generator().manual_seed(seed)
    with module.sampling() as flow:
        x = flow.sample(n, temperature, y=labels, generator=gen)
    images, bad = displayable(x, module.n_bits)
    warn_nonfinite(bad, x.numel(), f"sample ckpt={ckpt} temperature={temperature}")
    return save_png(out, make_grid(images, nrow=grid_columns(n)))


def class_labels(module: GlowModule, y: int | None, n: int) -> torch.Tensor | None:
    """``n`` labels of class ``y``, refused in one line where the checkpoint cannot use them."""
    import torch

    if y is None:
        return None
    classes = module.num_classes
    if not classes:
        raise ConfigError("y= needs a class-conditional checkpoint (trained with "
                          "model.conditional=true); drop y= to sample this one")
    if not 0 <= y < classes:
        raise ConfigError(f"y={y} is not a class of this checkpoint; choose 0..{classes - 1}")
    return torch.full((n,), y, dtype=torch.long)


def main(words: Sequence[str]) -> int:
    mine, rest = split_keys(words, OWN, strict=True)
    if rest:  # the checkpoint alone defines the model: an override would be ignored
        raise ConfigError(f"sample takes no config overrides ('{rest[0]}'): the checkpoint fixes "
                          f"the model; its keys: {', '.join(OWN)}")
    opts = {**OWN, **mine}
    y = parse_number("y", opts["y"]) if opts["y"] else None
    path = sample_checkpoint(need_ckpt(mine), parse_bounded("n", opts["n"], 1),
                             parse_bounded("temperature", opts["temperature"], 0, kind=float),
                             need_png(opts["out"]), parse_number("seed", opts["seed"]), y)
    print(f"wrote {path}")
    return 0
