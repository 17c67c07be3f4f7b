"""``glow-lightning manipulate``: move real images along an attribute direction of a checkpoint.

    glow-lightning manipulate ckpt=runs/x/checkpoints/last.ckpt attribute=1 source=7 out=m.png
    glow-lightning manipulate ckpt=celebahq.ckpt attribute=Smiling data.source=/data/celebahq

``attribute`` is a class id of the dataset's labels (digits: 0..9) or the name of a 0/1 label
column (CelebA-HQ attributes such as ``Smiling``; it becomes ``data.label_column``, and images
with label 1 have the attribute). With ``source=<class>`` the direction runs from the mean latent
of class ``source`` to that of class ``attribute`` and the moved images are of class ``source``;
without it, the direction is "with minus without" and the moved images lack the attribute.
The grid has one row per image and one column per strength (strength 0: the reconstruction).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from glow_lightning.commands.args import (
    need_ckpt,
    need_png,
    parse_bounded,
    parse_number,
    split_keys,
)
from glow_lightning.errors import ConfigError

HELP = ("attribute manipulation: ckpt=PATH attribute=<class or 0/1 label column> "
        "[source=<class>] strengths=-1,0,1,2 n=8 out=FILE")
OWN = {"ckpt": "", "attribute": "1", "source": "", "strengths": "-1,0,1,2", "n": "8",
       "reference": "1000", "out": "manipulation.png"}


def parse_attribute(attribute: str) -> tuple[int, list[str]]:
    """``"3"`` → (3, []): a class id. ``"Smiling"`` → (1, ["data.label_column=Smiling"]).

    >>> parse_attribute("Smiling")
    (1, ['data.label_column=Smiling'])
    """
    try:
        return int(attribute), []
    except ValueError:
        return 1, [f"data.label_column={attribute}"]


def parse_strengths(text: str) -> list[float]:
    """``"-1,0,1,2"`` → [-1.0, 0.0, 1.0, 2.0]."""
    try:
        values = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"strengths={text!r} must be comma-separated numbers, e.g. -1,0,1,2"
                          ) from None
    if not values:
        raise ConfigError("strengths= needs at least one number, e.g. strengths=-1,0,1,2")
    return values


def manipulate_checkpoint(ckpt: str, attribute: str, source: int | None, strengths: list[float],
                          n: int, reference: int, out: str, overrides: list[str]) -> Path:
    """Encode labelled training images at bin centres, take the mean-latent difference, move
    ``n`` test images along it and save the grid (rows = images, columns = strengths)."""
    from glow_lightning.callbacks import AttributeManipulation
    from glow_lightning.commands.checkpoint import experiment_of, load_module
    from glow_lightning.grids import make_grid, save_png
    from glow_lightning.train.run import build_datamodule

    module = load_module(ckpt)
    target, extra = parse_attribute(attribute)
    datamodule = build_datamodule(experiment_of(module, [*extra, *overrides]))
    datamodule.prepare_data()
    datamodule.setup("fit")
    maker = AttributeManipulation(target, source, strengths, n, reference)
    images = maker.images(datamodule, module)
    if images is None:
        raise ConfigError(f"no labelled images for attribute={attribute}"
                          f"{f' source={source}' if source is not None else ''}; the data needs "
                          "labels (data.label_column=) with both groups present")
    return save_png(out, make_grid(images, nrow=len(strengths)))


def main(words: Sequence[str]) -> int:
    mine, rest = split_keys(words, OWN, strict=True)
    opts = {**OWN, **mine}
    source = parse_number("source", opts["source"]) if opts["source"] else None
    path = manipulate_checkpoint(need_ckpt(mine), opts["attribute"], source,
                                 parse_strengths(opts["strengths"]),
                                 parse_bounded("n", opts["n"], 1),
                                 parse_bounded("reference", opts["reference"], 1),
                                 need_png(opts["out"]), rest)
    print(f"wrote {path}")
    return 0

