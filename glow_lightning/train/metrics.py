"""A torchmetrics metric for a mean with its standard error, exact under DDP."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from glow_lightning.evaluate import mean_and_sem

STATES = ("total", "total_sq", "count")


class MeanAndError(Metric):
    """Mean and standard error of per-image values (B,): float64 sums of the values, their
    squares and their count, summed over ranks (each image counted once by the eval sampler),
    then :func:`~glow_lightning.evaluate.mean_and_sem`. The sums stay float64 whatever dtype
    the module is cast to: the variance is a small difference of large sums."""

    full_state_update = False
    total: Tensor
    total_sq: Tensor
    count: Tensor

    def __init__(self) -> None:
        super().__init__()
        for name in STATES:
            self.add_state(name, torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def _apply(self, fn: Callable, exclude_state: Sequence[str] = ()) -> Any:
        """Follow the module's device, never its dtype (``.to(dtype)`` would cast the sums)."""
        this = super()._apply(fn, exclude_state=[*exclude_state, *STATES])  # this is self
        for name in STATES:
            setattr(self, name, getattr(self, name).to(self.device))
            default = self._defaults[name]
            assert isinstance(default, Tensor)
            self._defaults[name] = default.to(self.device)
        return this

    def update(self, values: Tensor) -> None:
        v = values.detach().to(torch.float64)
        self.total += v.sum()
        self.total_sq += (v**2).sum()
        self.count += v.numel()

    def compute(self) -> tuple[Tensor, Tensor]:
        return mean_and_sem(self.total, self.total_sq, self.count)
