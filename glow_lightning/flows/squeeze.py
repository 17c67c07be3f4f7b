"""Space-to-depth squeeze (RealNVP Sec. 3.6; Glow Figure 2): (B, C, H, W) → (B, 4C, H/2, W/2).

Output channel ``4c + 2i + j`` holds pixel ``(2y + i, 2x + j)`` of input channel ``c``. The squeezed
tensor is written once, directly in channels-last memory order: every convolution after it then runs
oneDNN's NHWC kernels with no layout reorders (values and shapes are those of the plain layout).
A permutation of the entries: log-det 0 both ways.

>>> x = torch.arange(8.0).view(1, 2, 2, 2)
>>> y, logdet = Squeeze()(x)
>>> y.shape, y[0, :4].flatten().tolist(), logdet.tolist()
(torch.Size([1, 8, 1, 1]), [0.0, 1.0, 2.0, 3.0], [0.0])
>>> torch.equal(Squeeze().inverse(y)[0], x)
True
"""

from __future__ import annotations

import torch
from torch import Tensor

from glow_lightning.flows.base import InvertibleLayer, zero_logdet


def squeeze(x: Tensor) -> Tensor:
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)  # (B, H/2, W/2, C, 2, 2)
    return x.contiguous().view(b, h // 2, w // 2, c * 4).permute(0, 3, 1, 2)  # (B, 4C, H/2, W/2)


def unsqueeze(z: Tensor) -> Tensor:
    b, c, h, w = z.shape
    z = z.permute(0, 2, 3, 1).reshape(b, h, w, c // 4, 2, 2).permute(0, 1, 4, 2, 5, 3)
    # (B, H, 2, W, 2, C/4) in memory, i.e. channels-last (B, C/4, 2H, 2W)
    return z.contiguous().view(b, h * 2, w * 2, c // 4).permute(0, 3, 1, 2)


class Squeeze(InvertibleLayer):
    """Volume-preserving reshape; log-det 0."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return squeeze(x), zero_logdet(x)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return unsqueeze(y), zero_logdet(y)


def is_channels_last(x: Tensor) -> bool:
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
