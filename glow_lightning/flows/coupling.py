"""Glow's additive and affine coupling layers (Kingma & Dhariwal 2018, Sec. 3.3, Table 1).

The first half of the channels passes unchanged and parameterises the transform of the second
half. Affine scale is ``sigmoid(h + 2)`` as in the reference code, so the layer starts close to the
identity (the last conv of the net is zero-initialised).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from glow_lightning.flows.nets import GlowNet


class AdditiveCoupling(nn.Module):
    """``z2 = x2 + NN(x1)``; log-det 0 (NICE / Glow additive)."""

    def __init__(self, num_channels: int, hidden_channels: int) -> None:
        super().__init__()
        self.half = num_channels // 2
        self.net = GlowNet(self.half, num_channels - self.half, hidden_channels)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x1, x2 = x[:, : self.half], x[:, self.half :]
        z2 = x2 + self.net(x1)
        return torch.cat([x1, z2], dim=1), x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        z1, z2 = z[:, : self.half], z[:, self.half :]
        return torch.cat([z1, z2 - self.net(z1)], dim=1)


class AffineCoupling(nn.Module):
    """``z2 = (x2 + t) · sigmoid(h + 2)`` with ``(t, h) = NN(x1)``; log-det Σ log-scale."""

    def __init__(self, num_channels: int, hidden_channels: int) -> None:
        super().__init__()
        self.half = num_channels // 2
        self.net = GlowNet(self.half, 2 * (num_channels - self.half), hidden_channels)

    def _shift_logscale(self, x1: Tensor) -> tuple[Tensor, Tensor]:
        shift, raw = self.net.halves(x1)  # channels 0::2 and 1::2, as in the reference code
        return shift, torch.nn.functional.logsigmoid(raw + 2.0)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x1, x2 = x[:, : self.half], x[:, self.half :]
        shift, logscale = self._shift_logscale(x1)
        z2 = (x2 + shift) * torch.exp(logscale)
        return torch.cat([x1, z2], dim=1), logscale.sum(dim=(1, 2, 3))

    def inverse(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        z1, z2 = z[:, : self.half], z[:, self.half :]
        shift, logscale = self._shift_logscale(z1)
        return torch.cat([z1, z2 * torch.exp(-logscale) - shift], dim=1)
