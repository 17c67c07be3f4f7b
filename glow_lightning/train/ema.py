"""Polyak (exponential moving) averaging of a flow's weights, used for evaluation and sampling."""

from __future__ import annotations

import copy

import torch
from torch import nn

WARMUP = 10  # the decay's warm-up constant: (1 + t) / (WARMUP + t)


def warm_decay(decay: float, updates: int) -> float:
    """The decay of update number ``updates`` (0-based): ``min(decay, (1 + t) / (10 + t))``
    (the warm-up of TensorFlow's ``ExponentialMovingAverage(num_updates=t)``). A fixed
    0.999 from the first step keeps 0.999^1400 ≈ 25% of the first weights after 1,400 steps;
    warmed up, the average forgets them within a few hundred steps and reaches ``decay`` at
    ``t = (10·decay − 1) / (1 − decay)`` (8,990 for 0.999).

    >>> [round(warm_decay(0.999, t), 4) for t in (0, 1, 10, 100, 8991, 20000)]
    [0.1, 0.1818, 0.55, 0.9182, 0.999, 0.999]
    """
    return min(decay, (1 + updates) / (WARMUP + updates))


def update_weight(decay: float, updates: int, lr_scale: float = 1.0) -> float:
    """The weight of the new weights in update ``updates``: ``1 − warm_decay`` divided by
    ``lr_scale``, the learning rate over its peak (at most 1: a copy). With ``lr_scale`` 1 this
    is the plain warmed-up EMA. Following the rate, the average's horizon shrinks as a schedule
    anneals: the iterates' noise, which the average is there to remove, shrinks with the rate,
    while the average's lag behind the still-improving weights does not; at a rate of 0 the
    average is the raw weights.

    >>> [round(update_weight(0.999, 20000, s), 4) for s in (1.0, 0.5, 0.01, 0.0)]
    [0.001, 0.002, 0.1, 1.0]
    """
    step = 1.0 - warm_decay(decay, updates)
    return 1.0 if lr_scale <= step else step / lr_scale


class EMA(nn.Module):
    """Holds ``shadow``, a copy of the model whose parameters track ``decay``-averages, the decay
    warmed up by :func:`warm_decay` and, with ``follow_lr``, its horizon scaled by the learning
    rate's schedule (:func:`update_weight`).

    It is a submodule of the LightningModule, so checkpoints carry the shadow and the update
    count, and a resumed run continues the same average. Buffers (e.g. ActNorm's
    ``initialized``) are copied, not averaged. The first update copies the weights exactly: the
    shadow is built before ActNorm's data-dependent init and must not keep any of the random one.
    """

    num_updates: torch.Tensor

    def __init__(self, model: nn.Module, decay: float, follow_lr: bool = False) -> None:
        super().__init__()
        self.decay = decay
        self.follow_lr = follow_lr
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)
        self.register_buffer("num_updates", torch.tensor(0, dtype=torch.long))

    @torch.no_grad()
    def update(self, model: nn.Module, lr_scale: float = 1.0) -> None:
        """One step of the average; ``lr_scale`` (the step's rate over its peak) counts only
        with ``follow_lr`` (:func:`update_weight`)."""
        t = int(self.num_updates)
        weight = 1.0 if t == 0 else self.weight(t, lr_scale)
        for shadow, live in zip(self.shadow.parameters(), model.parameters(), strict=True):
            shadow.lerp_(live.detach(), weight)
        for shadow_b, live_b in zip(self.shadow.buffers(), model.buffers(), strict=True):
            shadow_b.copy_(live_b)
        self.num_updates += 1

    def weight(self, updates: int, lr_scale: float) -> float:
        """The new weights' share in update ``updates`` (> 0): :func:`update_weight`."""
        return update_weight(self.decay, updates, lr_scale if self.follow_lr else 1.0)

    def store_as_copy(self, state: dict[str, torch.Tensor], model: nn.Module, prefix: str) -> None:
        """Write ``model``'s weights as the shadow's into ``state`` (a state dict in which this
        EMA's keys start with ``prefix``): what the average is before its first update, whose
        decay is 0 (a copy). A checkpoint saved then evaluates the weights it holds, not the
        shadow's stale pre-initialisation copy."""
        live = model.state_dict().values()
        for name, value in zip(self.shadow.state_dict(), live, strict=True):
            state[f"{prefix}shadow.{name}"] = value.detach().clone()
