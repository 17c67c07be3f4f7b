"""Validation bits/dim of checkpoints with their raw and their EMA weights, on the held-out
images and evaluation noise the run's own validations use (``val/bpd_raw``, ``val/bpd_ema``): a
run that ends between two validations (every 5 epochs) is read here at its last step.

    python -m benchmarks.ema_check runs/<run>/checkpoints/last.ckpt [more.ckpt ...]

Prints one row per checkpoint: step, the two figures, EMA − raw. Used for
benchmarks/RESULTS.md, "EMA with a warmed-up decay".
"""

from __future__ import annotations

import argparse

import lightning as L

from glow_lightning.commands.checkpoint import experiment_of, load_module
from glow_lightning.train.module import GlowModule
from glow_lightning.train.run import build_datamodule
from glow_lightning.train.safe_load import load_checkpoint


def validate(ckpt: str) -> tuple[int, float, float]:
    """(global step, val/bpd_raw, val/bpd_ema) of one checkpoint."""
    module = load_module(ckpt)
    if module.ema is None:
        raise SystemExit(f"{ckpt}: trained without EMA (optim.ema_decay=0)")
    step = int(load_checkpoint(ckpt)["global_step"])
    return step, *validate_module(module)


def validate_module(module: GlowModule) -> tuple[float, float]:
    """(val/bpd_raw, val/bpd_ema) of ``module`` on its run's validation images and noise."""
    datamodule = build_datamodule(experiment_of(module, []))
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        use_distributed_sampler=False, enable_progress_bar=False,
                        enable_model_summary=False)
    metrics = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    return float(metrics["val/bpd_raw"]), float(metrics["val/bpd_ema"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpts", nargs="+")
    args = parser.parse_args()
    print("| checkpoint | step | val bpd, raw | val bpd, EMA | EMA − raw |")
    print("|---|---|---|---|---|")
    for ckpt in args.ckpts:
        step, raw, ema = validate(ckpt)
        print(f"| {ckpt} | {step} | {raw:.4f} | {ema:.4f} | {ema - raw:+.4f} |", flush=True)


if __name__ == "__main__":
    main()
