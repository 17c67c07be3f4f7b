"""What the checkpoint-driven commands share: rebuild a module from its checkpoint alone, the
experiment config it was trained with, a warning for non-finite samples.

Checkpoints are loaded with ``weights_only=True``: loading never runs pickled code, and a file
that carries other pickled objects is refused with one line
(:mod:`glow_lightning.train.safe_load`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from glow_lightning.config import ExperimentConfig, differing, merge_config, to_dict
from glow_lightning.errors import CheckpointRefused, ConfigError
from glow_lightning.flows.spec import upgrade_fields
from glow_lightning.train.module import GlowModule
from glow_lightning.train.safe_load import check_checkpoint


def load_module(ckpt: str | Path, map_location: str = "cpu") -> GlowModule:
    """Rebuild a GlowModule from its checkpoint alone (safe, weights-only load). Raises
    CheckpointRefused for a missing, damaged or code-carrying file."""
    check_checkpoint(ckpt)
    try:
        module = GlowModule.load_from_checkpoint(str(ckpt), map_location=map_location,
                                                 weights_only=True)
    except (RuntimeError, KeyError, TypeError, ValueError) as err:  # weights ≠ hyper-parameters
        first = " ".join(str(err).split())[:120]
        raise CheckpointRefused(f"checkpoint '{ckpt}' cannot rebuild its model ({first}…); "
                                "use a checkpoint written by glow-lightning train") from None
    return module.eval()


FIXED = ("model", "data.name", "data.n_bits", "data.image_size")  # what the weights were fit to


def experiment_of(module: GlowModule, overrides: list[str],
                  fixed: tuple[str, ...] = FIXED) -> ExperimentConfig:
    """The experiment config stored in the checkpoint (its model section upgraded from older
    checkpoints' keys), with dotlist overrides applied; an override of the model or of the images
    it was trained on (``fixed``, default :data:`FIXED`) is refused in one line rather than
    ignored or evaluated on data of another kind."""
    stored = dict(module.hparams.get("experiment") or {})
    if "model" in stored:
        stored["model"] = upgrade_fields(stored["model"])
    cfg = merge_config(stored, dotlist=overrides)
    changed = differing(to_dict(merge_config(stored)), to_dict(cfg), fixed)
    if changed:
        raise ConfigError(f"{'; '.join(changed)}: contradicts the checkpoint, which fixes its "
                          "model and images; drop the override (or train a model with it)")
    return cfg


def warn_nonfinite(bad: int, total: int, what: str) -> None:
    """Print one warning line to stderr when ``bad`` of ``total`` values were NaN or inf."""
    if bad:
        print(f"warning: {what}: {bad} of {total} sample values were not finite (NaN or inf; "
              "drawn as 0, mid-grey); try a lower temperature or another checkpoint",
              file=sys.stderr)
