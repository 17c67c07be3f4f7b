"""The module's torchmetrics (:func:`metric_names`), and a mean with its standard error,
exact under DDP (:class:`MeanAndError`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import MaxMetric, MeanMetric, Metric

from glow_lightning.evaluate import mean_and_sem
from glow_lightning.ops import level_bit_names

STAGES = ("train", "val", "test")
STATES = ("total", "total_sq", "count")


def metric_names(levels: int, num_classes: int, ema: bool = False) -> dict[str, Metric]:
    """The module's metrics: the mean bpd per stage, the per-level terms for val and test, the
    class loss and accuracy of class-conditional flows, the validation bpd of the raw and the EMA
    weights when ``ema`` (``MeanMetric``); the worst image's bpd for val and test (``MaxMetric``:
    a mean carried by one image shows there)."""
    names = [f"{stage}_bpd" for stage in STAGES]
    names += ["val_bpd_raw", "val_bpd_ema"] if ema else []
    for stage in ("val", "test"):
        names += [f"{stage}_{name}" for name in level_bit_names(levels)]
    if num_classes:
        names += [f"{stage}_{m}" for stage in STAGES for m in ("class_loss", "accuracy")]
    metrics: dict[str, Metric] = {name: MeanMetric() for name in names}
    for stage in ("val", "test"):
        metrics[f"{stage}_bpd_worst"] = MaxMetric(nan_strategy="ignore")
    metrics["test_bpd_iw"] = MeanAndError()  # the importance-weighted bound (iw_samples)
    return metrics


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
