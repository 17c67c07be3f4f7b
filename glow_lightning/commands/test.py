"""``glow-lightning test ckpt=PATH [data overrides]``: test bits/dim of a checkpoint, with where
the bits go (each level's prior term and log-det)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from glow_lightning.commands.args import need_ckpt, split_keys
from glow_lightning.errors import CheckpointRefused

HELP = "test bits/dim of a checkpoint: ckpt=PATH [data overrides]"


def evaluate_checkpoint(ckpt: str, overrides: list[str]) -> dict[str, float]:
    """The ``test/*`` metrics of a checkpoint on its dataset's test split (one process):
    ``test/bpd`` and the per-level terms ``test/bits_level{i}[_prior|_logdet]``."""
    import lightning as L

    from glow_lightning.commands.checkpoint import experiment_of, load_module
    from glow_lightning.train.run import build_datamodule

    module = load_module(ckpt)
    cfg = experiment_of(module, overrides)
    trainer = L.Trainer(accelerator=cfg.trainer.accelerator, devices=1, logger=False,
                        enable_checkpointing=False, use_distributed_sampler=False,
                        enable_progress_bar=False, enable_model_summary=False)
    results = trainer.test(module, datamodule=build_datamodule(cfg), verbose=False)
    return {k: float(v) for k, v in results[0].items()}


def main(words: Sequence[str]) -> int:
    mine, rest = split_keys(words, {"ckpt"}, strict=True)
    ckpt = need_ckpt(mine)
    metrics = evaluate_checkpoint(ckpt, rest)
    if not math.isfinite(metrics["test/bpd"]):  # a number that is no result must not exit 0
        raise CheckpointRefused(f"checkpoint '{ckpt}' evaluates to test/bpd={metrics['test/bpd']}: "
                                "its weights are not usable; test an earlier checkpoint (the one "
                                "a training's 'last good checkpoint' names, or best.ckpt)")
    print(f"test/bpd = {metrics['test/bpd']:.4f}")
    if "test/bpd_worst" in metrics:
        print(f"  worst image: {metrics['test/bpd_worst']:.4f} bits/dim")
    levels = sorted(k for k in metrics if k.startswith("test/bits_level") and k.count("_") == 1)
    for key in levels:  # where the bits go: prior term + log-det of each level
        i = key.removeprefix("test/bits_level")
        print(f"  level {i}: {metrics[key]:+.4f} bits/dim = prior "
              f"{metrics[key + '_prior']:+.4f} + log-det {metrics[key + '_logdet']:+.4f}")
    if "test/bits_quantisation" in metrics:
        print(f"  quantisation: {metrics['test/bits_quantisation']:+.4f} bits/dim")
    return 0
