"""Soak: long 2-process CPU DDP (gloo) training on the embedded digits, then exactness checks.

Trains through the real entry point (``glow_lightning.train.run.train``: DDP strategy,
non-finite guard, atomic checkpoints) for ``trainer.max_steps`` optimiser steps (default 2,000),
then, from the final checkpoint loaded weights-only:

* skipped (non-finite) steps, from the guard's count in the checkpoint (should be 0);
* max |decode(encode(x)) − x| over 64 test digits in float32 (should be <= 1e-3);
* the condition number of every 1×1 convolution weight (``W = P L (U + diag(s))``), max and median.

    python benchmarks/soak.py                      # 2,000 steps, 2 ranks, 1 thread each
    python benchmarks/soak.py trainer.max_steps=200 model.hidden_channels=16

Lightning re-launches this script for rank 1; only rank 0 reports. Prints one Markdown row for
benchmarks/RESULTS.md ("Soak").
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time

import torch

from glow_lightning.commands.checkpoint import load_module
from glow_lightning.config import load_config
from glow_lightning.flows.permutations import InvConv1x1, InvConv1x1LU
from glow_lightning.ops import bins_to_float
from glow_lightning.train.checkpointing import LAST
from glow_lightning.train.module import STATE_KEY, GlowModule
from glow_lightning.train.run import build_datamodule, run_dir_for, train
from glow_lightning.train.safe_load import load_checkpoint

SOAK = ["experiment=digits_glow", "model.levels=3", "model.steps=4", "model.hidden_channels=32",
        "data.batch_size=32", "optim.lr=0.002", "optim.warmup_steps=100", "optim.decay_steps=0",
        "trainer.max_steps=2000", "trainer.max_epochs=-1",
        "trainer.max_time=null", "trainer.accelerator=cpu", "trainer.devices=2",
        "trainer.strategy=ddp", "trainer.num_threads=1", "trainer.check_val_every_n_epoch=10",
        "trainer.enable_progress_bar=false", "logger.kind=csv", "callbacks.enabled=false",
        "checkpoint.every_n_steps=500", "out_dir=runs", "run_name=soak"]
TOLERANCE = 1e-3


def recon_error(module: GlowModule, bins: torch.Tensor) -> float:
    """max |decode(encode(x)) − x| in flow space for bins (B, C, H, W) at bin centres."""
    x = bins_to_float(bins, module.n_bits) + 0.5 / 2**module.n_bits
    with module.sampling() as flow, torch.no_grad():
        return float((flow.decode(flow.encode(x)) - x).abs().max())


def conv_conditions(module: GlowModule) -> list[float]:
    """Condition number (2-norm) of every 1×1 convolution weight of the evaluation flow."""
    convs = [m for m in module.eval_flow().modules() if isinstance(m, InvConv1x1 | InvConv1x1LU)]
    with torch.no_grad():
        return [float(torch.linalg.cond(m.weight_and_logdet()[0].double())) for m in convs]


def report(overrides: list[str], wall: float, cpu: float) -> dict[str, float]:
    cfg = load_config(overrides)
    ckpt = run_dir_for(cfg) / "checkpoints" / LAST
    state = load_checkpoint(ckpt)
    module = load_module(ckpt)
    datamodule = build_datamodule(cfg)
    datamodule.setup("test")
    bins, _ = datamodule.example_images(64, split="test")
    conds = conv_conditions(module)
    return {"steps": float(state["global_step"]),
            "skipped": float(state[STATE_KEY]["guard"]["skipped"]),
            "recon": recon_error(module, bins), "cond_max": max(conds),
            "cond_median": statistics.median(conds), "convs": float(len(conds)), "wall": wall,
            "cpu": cpu}


def main(argv: list[str]) -> int:
    overrides = [*SOAK, *argv]
    start, cpu_start = time.perf_counter(), time.process_time()
    results = train(load_config(overrides))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    if int(os.environ.get("LOCAL_RANK", "0")) != 0:
        return 0
    r = report(overrides, wall, cpu)
    ok = r["skipped"] == 0 and r["recon"] <= TOLERANCE
    machine = f"{platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}"
    print(f"\nsoak on {machine}: 2 ranks x 1 thread, overrides {' '.join(argv) or '(none)'}")
    print(f"steps {r['steps']:.0f}  skipped {r['skipped']:.0f}  test/bpd "
          f"{results.get('test/bpd', float('nan')):.4f}  recon max|err| {r['recon']:.2e}  "
          f"1x1 conv cond max {r['cond_max']:.2f} median {r['cond_median']:.2f} "
          f"({r['convs']:.0f} convs)  wall {r['wall'] / 60:.1f} min (rank-0 CPU "
          f"{r['cpu'] / 60:.1f} min; wall grows with other load)  {'PASS' if ok else 'FAIL'}")
    print(f"| {r['steps']:.0f} | {r['skipped']:.0f} | {results.get('test/bpd', float('nan')):.4f} "
          f"| {r['recon']:.2e} | {r['cond_max']:.2f} | {r['wall'] / 60:.1f} min |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
