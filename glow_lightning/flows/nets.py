"""Coupling networks: the Glow net of the reference code and RealNVP's residual net."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from glow_lightning.flows.actnorm import ActNorm


class ZeroConv2d(nn.Module):
    """3×3 conv initialised to zero, output scaled by ``exp(3·logs)`` (openai/glow conv2d_zeros)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.conv.weight.data.zero_()
        self.conv.bias.data.zero_()
        self.logs = nn.Parameter(torch.zeros(1, out_channels, 1, 1))
        self.logscale_factor = 3.0

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x) * torch.exp(self.logs * self.logscale_factor)


class ConvActNorm(nn.Module):
    """Bias-free convolution followed by ActNorm (the reference code's ``conv2d``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                              bias=False)
        nn.init.normal_(self.conv.weight, std=0.05)
        self.norm = ActNorm(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm.apply_forward(self.conv(x))


class GlowNet(nn.Module):
    """conv3×3 → ReLU → conv1×1 → ReLU → zero conv3×3, as in openai/glow ``f()``."""

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int) -> None:
        super().__init__()
        self.conv1 = ConvActNorm(in_channels, hidden_channels, 3)
        self.conv2 = ConvActNorm(hidden_channels, hidden_channels, 1)
        self.out = ZeroConv2d(hidden_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(F.relu(self.conv2(F.relu(self.conv1(x)))))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class ResNet(nn.Module):
    """RealNVP's residual coupling net (Dinh et al. 2016, Sec. 4.1), zero-initialised output."""

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int,
                 num_blocks: int = 2) -> None:
        super().__init__()
        self.inp = nn.Conv2d(in_channels, hidden_channels, 3, padding=1)
        self.blocks = nn.Sequential(*[ResidualBlock(hidden_channels) for _ in range(num_blocks)])
        self.out = ZeroConv2d(hidden_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(F.relu(self.blocks(self.inp(x))))
