"""Diagonal Gaussian priors: split priors, the (learned, class-conditional) top prior.

Temperature ``T`` scales every prior's standard deviation when sampling (Glow Sec. 5.3); ``T = 0``
returns the mean (the mode).

The learned priors predict a log-scale per latent dimension that is unbounded in the paper (Glow
Sec. 3, ``split2d``). ``clamp > 0`` (``model.prior_scale=softclamp``) passes it through
``clamp · tanh(logs / clamp)`` inside ``params``, so the log-density and sampling read the same
bounded log-scale and the model stays an exact density: a held-out latent
far from the predicted mean then costs at most ``e^(2·clamp)·d²/2`` nats per dimension, not the
``e^53·d²/2`` of a log-scale of −26.6 (benchmarks/RESULTS.md, "Why the run blew up").
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from glow_lightning.flows.nets import ZeroConv2d

LOG_2PI = math.log(2 * math.pi)


def bound_logs(logs: Tensor, clamp: float) -> Tensor:
    """The prior's log-scale (any shape) softly bounded: ``clamp · tanh(logs / clamp)`` in
    ``(-clamp, clamp)``, slope 1 at 0 (``logs − logs³/(3·clamp²)`` near it), so where the free
    log-scale is small the bounded prior is the reference's; ``clamp = 0``: unchanged.

    >>> bound_logs(torch.tensor([-26.6, -0.2, 0.0]), 3.0)
    tensor([-3.0000, -0.1997,  0.0000])
    """
    return clamp * torch.tanh(logs / clamp) if clamp else logs


def gaussian_log_prob(z: Tensor, mean: Tensor, logs: Tensor) -> Tensor:
    """Σ over non-batch dims of log N(z; mean, exp(logs)²). Returns (B,)."""
    lp = -0.5 * (LOG_2PI + 2.0 * logs + (z - mean) ** 2 * torch.exp(-2.0 * logs))
    return lp.sum(dim=tuple(range(1, lp.dim())))  # no flatten: latents may be strided views


def gaussian_sample(mean: Tensor, logs: Tensor, temperature: float,
                    generator: torch.Generator | None = None) -> Tensor:
    eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
    return mean + temperature * torch.exp(logs) * eps


class TopPrior(nn.Module):
    """Prior of the top latent (C, H, W): zero-mean unit Gaussian, optionally learned per channel
    (``learn_top``: the reference code's zero conv on a zero input reduces to a per-channel mean and
    log-std, kept here as that one parameter) and optionally shifted by a zero-initialised linear
    map of a one-hot label (``num_classes``). ``clamp > 0`` bounds the log-scale
    (:func:`bound_logs`).
    """

    def __init__(self, shape: tuple[int, int, int], learn_top: bool, num_classes: int = 0,
                 clamp: float = 0.0) -> None:
        super().__init__()
        c = shape[0]
        self.clamp = float(clamp)
        self.shape = shape
        self.learn = nn.Parameter(torch.zeros(1, 2 * c, 1, 1)) if learn_top else None
        self.embed = nn.Linear(num_classes, 2 * c) if num_classes else None
        if self.embed is not None:
            self.embed.weight.data.zero_()
            self.embed.bias.data.zero_()
        self.num_classes = num_classes

    def params(self, batch: int, y: Tensor | None, ref: Tensor) -> tuple[Tensor, Tensor]:
        c, h, w = self.shape
        out = ref.new_zeros(batch, 2 * c, h, w)
        if self.learn is not None:
            out = out + self.learn
        if self.embed is not None and y is not None:
            onehot = nn.functional.one_hot(y.long(), self.num_classes).to(ref.dtype)
            out = out + self.embed(onehot).view(batch, 2 * c, 1, 1)
        return out[:, 0::2], bound_logs(out[:, 1::2], self.clamp)


class SplitPrior(nn.Module):
    """Conditional prior of the factored-out half given the kept half (Glow ``split2d``).

    With ``learned=False`` the factored-out half has a standard normal prior (RealNVP).
    ``clamp > 0`` bounds the predicted log-scale (:func:`bound_logs`).
    """

    def __init__(self, kept_channels: int, out_channels: int, learned: bool = True,
                 clamp: float = 0.0) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.clamp = float(clamp)
        self.conv = ZeroConv2d(kept_channels, 2 * out_channels) if learned else None

    def params(self, kept: Tensor) -> tuple[Tensor, Tensor]:
        if self.conv is None:
            b, _, h, w = kept.shape
            zeros = kept.new_zeros(b, self.out_channels, h, w)
            return zeros, zeros
        mean, logs = self.conv.halves(kept)  # channels 0::2 and 1::2
        return mean, bound_logs(logs, self.clamp)


def set_prior_clamp(flow: nn.Module, clamp: float) -> None:
    """Bound the log-scale of every learned prior inside ``flow`` (0: free, the reference)."""
    for module in flow.modules():
        if isinstance(module, (SplitPrior, TopPrior)):
            module.clamp = float(clamp)


# prior_scale → the bound the learned priors' log-scale gets, from ``prior_clamp``
PRIOR_SCALES: dict[str, object] = {"free": None, "softclamp": bound_logs}
