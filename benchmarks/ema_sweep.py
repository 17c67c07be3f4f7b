"""Several weight averages of one training run, each scored on validation at its end.

One run of the default recipe keeps, beside its own EMA (``optim.ema_decay``), shadow averages
of the same applied steps: warmed-up EMAs of other decays and power-function EMAs (Karras et
al. 2024, "Analyzing and Improving the Training Dynamics of Diffusion Models": decay
``(1 - 1/t)^(γ+1)`` at update t, an average whose width is a fixed fraction σ_rel of the run so
far). At the end each is scored on the held-out images and evaluation noise the run's own
validations use, beside the raw weights: which average, if any, is no worse than raw at the
end of a cosine-annealed run.

    python -m benchmarks.ema_sweep --steps 4000 --seed 0 --out runs/ema_sweep \\
        trainer.devices=2 trainer.strategy=ddp trainer.num_threads=1

Prints one row per average (validation bits/dim, and its difference to raw); the run's own final
test is left as it is and not reported here. Used for benchmarks/RESULTS.md, "EMA at the end
of an annealed run".
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from benchmarks.ema_check import validate_module
from glow_lightning.commands.checkpoint import load_module
from glow_lightning.config import load_config
from glow_lightning.train.ema import EMA
from glow_lightning.train.optim import lr_scale
from glow_lightning.train.run import train

DECAYS = (0.95, 0.99, 0.995, 0.999)  # warmed up, fixed horizon
FOLLOWING = (0.99, 0.995, 0.998)  # warmed up, horizon following the rate (ema_follow_lr)
SIGMA_RELS = (0.02, 0.05)


def power_gamma(sigma_rel: float) -> float:
    """γ of the power-function EMA whose relative width is ``sigma_rel``: the root of
    σ_rel² = (γ+1) / ((γ+2)² (γ+3)) (Karras et al. 2024, eq. 3), by bisection.

    >>> round(power_gamma(0.05), 2), round(power_gamma(0.10), 2)
    (16.97, 6.94)
    """
    low, high = 0.0, 1e4
    for _ in range(200):
        mid = (low + high) / 2
        width = math.sqrt((mid + 1) / ((mid + 2) ** 2 * (mid + 3)))
        low, high = (mid, high) if width > sigma_rel else (low, mid)
    return (low + high) / 2


class PowerEMA(EMA):
    """An EMA whose update t (0-based) keeps ``(1 - 1/(t+1))^(γ+1)`` of the average."""

    def __init__(self, model: torch.nn.Module, gamma: float) -> None:
        super().__init__(model, decay=0.0)
        self.gamma = gamma

    def weight(self, updates: int, lr_scale: float) -> float:
        return 1.0 - (1.0 - 1.0 / (updates + 1)) ** (self.gamma + 1)


class ShadowAverages(Callback):
    """Updates every shadow after each step the module's own EMA took (applied steps only);
    rank 0 saves their weights to ``path`` when training ends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.averages: dict[str, EMA] = {}
        self.scale = 1.0

    def on_fit_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        if pl_module.ema is None:
            raise SystemExit("ema_sweep needs the run's own EMA on (optim.ema_decay > 0)")
        flow = pl_module.flow
        self.averages = {f"EMA {d}": EMA(flow, d) for d in DECAYS}
        self.averages |= {f"EMA {d}, following the rate": EMA(flow, d, follow_lr=True)
                          for d in FOLLOWING}
        self.averages |= {f"power σ_rel={s}": PowerEMA(flow, power_gamma(s)) for s in SIGMA_RELS}
        for average in self.averages.values():
            average.to(pl_module.device)

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: Any, optimizer: Any) -> None:
        self.scale = lr_scale(optimizer)  # the rate of this step (the schedule steps after it)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        own = int(pl_module.ema.num_updates)
        for average in self.averages.values():
            if int(average.num_updates) < own:
                average.update(pl_module.flow, self.scale)

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if trainer.global_rank == 0:
            torch.save({name: a.shadow.state_dict() for name, a in self.averages.items()},
                       self.path)


def score(run_dir: Path, shadows: dict[str, dict[str, torch.Tensor]]) -> dict[str, float]:
    """Validation bits/dim of the raw weights, the run's own EMA and every shadow."""
    module = load_module(run_dir / "checkpoints" / "last.ckpt")
    decay, follow = module.optim_cfg.ema_decay, module.optim_cfg.ema_follow_lr
    raw, own = validate_module(module)
    scores = {"raw": raw, f"EMA {decay}{', following the rate' if follow else ''} (run's own)": own}
    for name, state in shadows.items():
        module.ema.shadow.load_state_dict(state)
        scores[name] = validate_module(module)[1]
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/ema_sweep")
    parser.add_argument("--ema", type=float, default=0.999,
                        help="the run's own EMA decay (it follows the rate; its validations "
                             "during the run are in the run's metrics.csv)")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    name = f"steps{args.steps}_seed{args.seed}"
    cfg = load_config([
        "trainer.budget_minutes=null", "trainer.max_time=null", f"trainer.max_steps={args.steps}",
        f"optim.decay_steps={args.steps}", f"seed={args.seed}", f"optim.ema_decay={args.ema}",
        "optim.ema_eval=raw", "optim.ema_follow_lr=true", "logger.kind=csv",
        "callbacks.enabled=false", f"out_dir={args.out}", f"run_name={name}", *args.overrides])
    run_dir = Path(args.out) / name
    path = Path(args.out) / f"{name}_shadows.pt"
    train(cfg, extra_callbacks=[ShadowAverages(path)])
    if int(os.environ.get("LOCAL_RANK", "0")):
        return
    scores = score(run_dir, torch.load(path, weights_only=True))
    raw = scores["raw"]
    print(f"| average | val bpd at step {args.steps} (seed {args.seed}) | − raw |")
    print("|---|---|---|")
    for key, value in scores.items():
        print(f"| {key} | {value:.4f} | {value - raw:+.4f} |")
    (Path(args.out) / f"{name}.json").write_text(json.dumps(scores, indent=1))


if __name__ == "__main__":
    main()
