"""``glow-lightning interpolate ckpt=PATH``: interpolations between pairs of test images
through every latent (Glow Sec. 5.3)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from glow_lightning.commands.args import need_ckpt, need_png, parse_bounded, split_keys
from glow_lightning.errors import ConfigError

HELP = "interpolate test images: ckpt=PATH pairs=4 steps=8 out=F"
OWN = {"ckpt": "", "pairs": "4", "steps": "8", "out": "interpolations.png"}


def interpolate_checkpoint(ckpt: str, pairs: int, steps: int, out: str,
                           overrides: list[str]) -> Path:
    """``pairs`` rows of ``steps`` images between test images ``2k`` and ``2k+1``."""
    from glow_lightning.commands.checkpoint import experiment_of, load_module, warn_nonfinite
    from glow_lightning.flows.latents import interpolate_images
    from glow_lightning.grids import make_grid, save_png
    from glow_lightning.ops import bin_centres, displayable
    from glow_lightning.train.run import build_datamodule

    module = load_module(ckpt)
    datamodule = build_datamodule(experiment_of(module, overrides))
    datamodule.prepare_data()
    datamodule.setup("test")
    bins, _ = datamodule.example_images(2 * pairs, split="test")
    if len(bins) < 2 * pairs:  # fewer test images than asked for: say so, never fewer rows
        raise ConfigError(f"pairs={pairs} needs {2 * pairs} test images but the test split holds "
                          f"{len(bins)}; choose pairs=1..{len(bins) // 2}")
    with module.sampling() as flow:
        decoded = interpolate_images(flow, bin_centres(bins, module.n_bits), steps)
    images, bad = displayable(decoded, module.n_bits)
    warn_nonfinite(bad, decoded.numel(), f"interpolate ckpt={ckpt}")
    return save_png(out, make_grid(images, nrow=steps))


def main(words: Sequence[str]) -> int:
    mine, rest = split_keys(words, OWN, strict=True)
    opts = {**OWN, **mine}
    path = interpolate_checkpoint(need_ckpt(mine), parse_bounded("pairs", opts["pairs"], 1),
                                  parse_bounded("steps", opts["steps"], 2),
                                  need_png(opts["out"]), rest)
    print(f"wrote {path}")
    return 0
