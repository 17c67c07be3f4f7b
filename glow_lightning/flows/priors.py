"""Diagonal Gaussian priors: split priors, the (learned, class-conditional) top prior.

Temperature ``T`` scales every prior's standard deviation when sampling (Glow Sec. 5.3); ``T = 0``
returns the mean (the mode).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from glow_lightning.flows.nets import ZeroConv2d

LOG_2PI = math.log(2 * math.pi)


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
    map of a one-hot label (``num_classes``).
    """

    def __init__(self, shape: tuple[int, int, int], learn_top: bool, num_classes: int = 0) -> None:
        super().__init__()
        c = shape[0]
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
        return out[:, 0::2], out[:, 1::2]


class SplitPrior(nn.Module):
    """Conditional prior of the factored-out half given the kept half (Glow ``split2d``).

    With ``learned=False`` the factored-out half has a standard normal prior (RealNVP).
    """

    def __init__(self, kept_channels: int, out_channels: int, learned: bool = True) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.conv = ZeroConv2d(kept_channels, 2 * out_channels) if learned else None

    def params(self, kept: Tensor) -> tuple[Tensor, Tensor]:
        if self.conv is None:
            b, _, h, w = kept.shape
            zeros = kept.new_zeros(b, self.out_channels, h, w)
            return zeros, zeros
        return self.conv.halves(kept)  # channels 0::2 and 1::2
