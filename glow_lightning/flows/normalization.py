"""RealNVP's batch normalisation of coupling outputs and its logit preprocessing
(Dinh et al. 2017, Sec. 3.7 and 4.1), both as exact flow layers.

:class:`BatchNormFlow` normalises each channel with the batch's statistics in training mode and
with running averages in eval mode, ``z = (x − μ) / √(σ² + ε)``, log-det
``−½ Σ_c log(σ_c² + ε) · H · W``. In eval mode it is a fixed affine map: exactly invertible with
an exact log-det, so test bits/dim are a proper density. :class:`Logit` maps pixels to logit
space, ``y = logit(α + (1 − 2α)·p)`` with ``p = x + ½`` in [0, 1], and counts its Jacobian, so
bits/dim stay in pixel space and compare with Glow's.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from glow_lightning.flows.actnorm import ActNorm
from glow_lightning.flows.base import InvertibleLayer


class BatchNormFlow(InvertibleLayer):
    """Per-channel batch normalisation as a flow layer; input (B, C, H, W). Running averages
    (``momentum`` as in ``nn.BatchNorm2d``) are buffers, so a checkpoint keeps them.

    >>> norm = BatchNormFlow(1).eval()  # running statistics: mean 0, variance 1
    >>> y, logdet = norm(torch.full((1, 1, 2, 2), 3.0))
    >>> back, inv_logdet = norm.inverse(y)
    >>> back.flatten().tolist(), torch.equal(inv_logdet, -logdet)
    ([3.0, 3.0, 3.0, 3.0], True)
    """

    running_mean: Tensor
    running_var: Tensor

    def __init__(self, num_channels: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.register_buffer("running_mean", torch.zeros(num_channels))
        self.register_buffer("running_var", torch.ones(num_channels))
        self.momentum, self.eps = momentum, eps
        self._batch: tuple[Tensor, Tensor] | None = None  # the last training batch's statistics

    def _statistics(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if not self.training:
            return self.running_mean, self.running_var
        mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False)
        with torch.no_grad():
            n = x.numel() / x.shape[1]
            unbiased = var * (n / max(n - 1, 1))
            self.running_mean.lerp_(mean.to(self.running_mean.dtype), self.momentum)
            self.running_var.lerp_(unbiased.to(self.running_var.dtype), self.momentum)
        self._batch = (mean.detach(), var.detach())
        return mean, var

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, var = self._statistics(x)
        log_std = 0.5 * torch.log(var + self.eps)
        z = (x - mean.view(1, -1, 1, 1)) * torch.exp(-log_std).view(1, -1, 1, 1)
        return z, (-log_std.sum() * x.shape[2] * x.shape[3]).expand(x.shape[0])

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """In training mode, the inverse of the last forward (its batch's statistics)."""
        batch = self._batch if self.training else None
        mean, var = batch if batch is not None else (self.running_mean, self.running_var)
        x = y * torch.sqrt(var + self.eps).view(1, -1, 1, 1) + mean.view(1, -1, 1, 1)
        log_std = 0.5 * torch.log(var + self.eps)  # as in forward, so the log-dets negate exactly
        return x, (log_std.sum() * y.shape[2] * y.shape[3]).expand(y.shape[0])


@contextlib.contextmanager
def frozen_statistics(module: nn.Module) -> Iterator[None]:
    """Running statistics of every batch norm in ``module`` (flow layers and ``nn.BatchNorm2d``
    inside coupling nets) as they were on entry, once the context exits: memory-saving backprop
    re-runs layers, and a re-run must not count the batch twice."""
    saved = [(buf, buf.clone()) for m in module.modules() if hasattr(m, "running_mean")
             for name, buf in m.named_buffers(recurse=False)
             if name in ("running_mean", "running_var", "num_batches_tracked")]
    try:
        yield
    finally:
        with torch.no_grad():
            for buf, value in saved:
                buf.copy_(value)


class Logit(InvertibleLayer):
    """``y = logit(α + (1 − 2α)(x + ½))`` for flow inputs ``x`` in [−½, ½]; log-det
    ``Σ [log(1 − 2α) + softplus(y) + softplus(−y)]``, the inverse's its negative.

    >>> layer = Logit(0.05)
    >>> y, logdet = layer(torch.zeros(1, 1, 1, 1))
    >>> float(y), round(float(logdet), 4)  # p = 1/2: logit 0, slope 0.9 / 0.25
    (0.0, 1.2809)
    >>> back, inv_logdet = layer.inverse(y)
    >>> float(back), round(float(inv_logdet), 4)
    (0.0, -1.2809)
    """

    def __init__(self, alpha: float = 0.05) -> None:
        super().__init__()
        if not 0 < alpha < 0.5:
            raise ValueError(f"logit alpha must lie in (0, 0.5), got {alpha!r}")
        self.alpha = float(alpha)

    def _logdet(self, y: Tensor) -> Tensor:
        """The forward's log-det (B,), read off its output ``y``."""
        per_dim = F.softplus(y) + F.softplus(-y)  # −log s − log(1 − s)
        return per_dim.sum(dim=(1, 2, 3)) + y[0].numel() * math.log1p(-2 * self.alpha)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        s = self.alpha + (1 - 2 * self.alpha) * (x + 0.5)
        y = torch.log(s) - torch.log1p(-s)
        return y, self._logdet(y)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return (torch.sigmoid(y) - self.alpha) / (1 - 2 * self.alpha) - 0.5, -self._logdet(y)


# realnvp.flow_norm → the layers that follow each RealNVP coupling on ``channels`` channels
FLOW_NORMS: dict[str, Callable[[int], list[InvertibleLayer]]] = {
    "batchnorm": lambda channels: [BatchNormFlow(channels)],
    "actnorm": lambda channels: [ActNorm(channels)],
    "none": lambda channels: [],
}
