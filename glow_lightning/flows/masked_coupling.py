"""RealNVP masked affine couplings (Dinh et al. 2016, Sec. 3.4, Figure 3).

``z = b⊙x + (1−b)⊙(x·exp(s(b⊙x)) + t(b⊙x))`` with a checkerboard mask ``b`` over space or a
channel mask over the first/second half of the channels. ``s = scale · tanh(raw)`` with a learned
per-channel ``scale``, which keeps the log-scale bounded early in training as in the paper's code.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from glow_lightning.flows.nets import ResNet


def checkerboard(height: int, width: int, parity: int) -> Tensor:
    """(1, 1, H, W) mask with ones where ``(i + j) % 2 == parity``."""
    i = torch.arange(height).view(-1, 1)
    j = torch.arange(width).view(1, -1)
    return ((i + j) % 2 == parity).float().view(1, 1, height, width)


class _MaskedAffine(nn.Module):
    def __init__(self, num_channels: int, net_in: int, net_out: int, hidden_channels: int,
                 num_blocks: int) -> None:
        super().__init__()
        self.net = ResNet(net_in, 2 * net_out, hidden_channels, num_blocks)
        self.scale = nn.Parameter(torch.ones(1, net_out, 1, 1))

    def _shift_logscale(self, h: Tensor) -> tuple[Tensor, Tensor]:
        out = self.net(h)
        return out[:, 0::2], self.scale * torch.tanh(out[:, 1::2])


class CheckerboardCoupling(_MaskedAffine):
    """Affine coupling with a spatial checkerboard mask; ``parity`` alternates between layers."""

    mask: Tensor

    def __init__(self, num_channels: int, height: int, width: int, parity: int,
                 hidden_channels: int, num_blocks: int = 2) -> None:
        super().__init__(num_channels, num_channels + 1, num_channels, hidden_channels, num_blocks)
        self.register_buffer("mask", checkerboard(height, width, parity))

    def _params(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mask = self.mask.to(x.dtype)
        inp = torch.cat([x * mask, mask.expand(x.shape[0], 1, -1, -1)], dim=1)
        shift, logscale = self._shift_logscale(inp)
        return shift * (1 - mask), logscale * (1 - mask)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        shift, logscale = self._params(x)
        return x * torch.exp(logscale) + shift, logscale.sum(dim=(1, 2, 3))

    def inverse(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        shift, logscale = self._params(z)
        return (z - shift) * torch.exp(-logscale)


class ChannelCoupling(_MaskedAffine):
    """Affine coupling over channel halves; ``flip`` chooses which half is transformed."""

    def __init__(self, num_channels: int, flip: bool, hidden_channels: int,
                 num_blocks: int = 2) -> None:
        # n_keep, not half: nn.Module.half() must stay callable
        self.n_keep = num_channels // 2
        super().__init__(num_channels, self.n_keep, num_channels - self.n_keep, hidden_channels,
                         num_blocks)
        self.flip = flip

    def _halves(self, x: Tensor) -> tuple[Tensor, Tensor]:
        a, b = x[:, : self.n_keep], x[:, self.n_keep :]
        return (b, a) if self.flip else (a, b)

    def _join(self, keep: Tensor, changed: Tensor) -> Tensor:
        return torch.cat([changed, keep] if self.flip else [keep, changed], dim=1)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        keep, change = self._halves(x)
        shift, logscale = self._shift_logscale(keep)
        return self._join(keep, change * torch.exp(logscale) + shift), logscale.sum(dim=(1, 2, 3))

    def inverse(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        keep, change = self._halves(z)
        shift, logscale = self._shift_logscale(keep)
        return self._join(keep, (change - shift) * torch.exp(-logscale))
