"""The optimiser and learning-rate schedule of a flow: Adam or Adamax with linear warmup and an
optional cosine decay, L2 on every parameter or on the scale parameters only (RealNVP)."""

from __future__ import annotations

import math
from typing import Any

import torch

from glow_lightning.config import OptimConfig
from glow_lightning.flows import scale_parameters


def parameter_groups(cfg: OptimConfig, flow: torch.nn.Module) -> list[dict[str, Any]]:
    """One group with ``weight_decay``; with ``scale_l2 > 0`` the scale parameters
    (:func:`~glow_lightning.flows.scale_parameters`) in a second group with that L2 instead."""
    params = list(flow.parameters())
    if not cfg.scale_l2:
        return [{"params": params}]
    scales = {id(p) for p in scale_parameters(flow)}
    return [{"params": [p for p in params if id(p) not in scales]},
            {"params": [p for p in params if id(p) in scales], "weight_decay": cfg.scale_l2}]


def make_optimizer(cfg: OptimConfig, flow: torch.nn.Module) -> torch.optim.Optimizer:
    """Adam with the fused kernel (one op for all parameters: a flow has hundreds of small
    tensors, and the per-tensor loop costs more than the maths), Adamax with the multi-tensor
    (``foreach``) path. Same update rule as the plain implementations."""
    groups = parameter_groups(cfg, flow)
    kwargs: dict[str, Any] = dict(lr=cfg.lr, betas=tuple(cfg.betas),
                                  weight_decay=cfg.weight_decay)
    on_device = all(p.device.type in ("cpu", "cuda") for p in flow.parameters())
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, fused=on_device or None, **kwargs)
    return torch.optim.Adamax(groups, foreach=True, **kwargs)


class Schedule:
    """:func:`lr_factor` as an object, so the scheduler's state dict stores ``decay_steps`` (a
    plan made by :class:`~glow_lightning.train.budget.TimeBudget` survives a resume)."""

    def __init__(self, warmup: int, decay_steps: int = 0, decay_fraction: float = 1.0) -> None:
        self.warmup = warmup
        self.decay_steps = decay_steps
        self.decay_fraction = decay_fraction

    def __call__(self, step: int) -> float:
        return lr_factor(step, self.warmup, self.decay_steps, fraction=self.decay_fraction)


def lr_scale(optimizer: Any) -> float:
    """The learning rate of ``optimizer``'s first group over its scheduled peak (``initial_lr``,
    set by the schedule); 1 without a schedule."""
    group = optimizer.param_groups[0]
    peak = group.get("initial_lr") or group["lr"]
    return float(group["lr"] / peak) if peak else 1.0


def lr_factor(step: int, warmup: int, decay_steps: int = 0, floor: float = 0.0,
              fraction: float = 1.0) -> float:
    """Linear warmup over ``warmup`` steps, then constant, or (``decay_steps > 0``) a cosine decay
    reaching ``floor`` at step ``decay_steps``. The decay spans the last ``fraction`` of the
    steps after warmup (1: all of them; 0.3: constant, then a cosine over the last 30%).

    >>> [round(lr_factor(s, warmup=2, decay_steps=6), 3) for s in (0, 1, 2, 4, 6, 9)]
    [0.5, 1.0, 1.0, 0.5, 0.0, 0.0]
    >>> [round(lr_factor(s, warmup=2, decay_steps=10, fraction=0.5), 3) for s in (5, 6, 8, 10)]
    [1.0, 1.0, 0.5, 0.0]
    """
    if step < warmup:
        return (step + 1) / warmup
    if decay_steps <= warmup:
        return 1.0
    start = decay_steps - fraction * (decay_steps - warmup)
    progress = min(1.0, max(0.0, step - start) / (decay_steps - start))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


SCHEDULE_KEYS = {"optim.warmup_steps": "warmup", "optim.decay_steps": "decay_steps",
                 "optim.decay_fraction": "decay_fraction"}


def apply_allowed(trainer: Any, cfg: OptimConfig, allowed: set[str]) -> None:
    """After a resume restored the checkpoint's optimiser and schedule, put back the settings
    ``resume_allow`` names (``optim.lr``, ``optim.warmup_steps``, ``optim.decay_steps``,
    ``optim.decay_fraction``) so a deliberate change takes effect from the first resumed step;
    everything else (the time budget's planned decay included) stays as restored."""
    for conf in trainer.lr_scheduler_configs:
        sched = conf.scheduler
        if "optim.lr" in allowed:
            sched.base_lrs = [cfg.lr for _ in sched.base_lrs]
        for fn in getattr(sched, "lr_lambdas", []):
            for key, field in SCHEDULE_KEYS.items():
                if key in allowed and isinstance(fn, Schedule):
                    setattr(fn, field, getattr(cfg, key.removeprefix("optim.")))
        for group, base, fn in zip(sched.optimizer.param_groups, sched.base_lrs,
                                   getattr(sched, "lr_lambdas", []), strict=False):
            group["initial_lr"], group["lr"] = base, base * fn(sched.last_epoch)
