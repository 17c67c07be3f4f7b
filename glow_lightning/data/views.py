"""Stored bins (C, S, S) → what the flow sees (C, H, W): crops, shifts and flips.

Training views are random (torch's global generator, which DataLoader workers seed per worker);
evaluation views are deterministic. All functions take and return uint8 tensors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from glow_lightning.data.images import ImageSpec


def random_crop(x: Tensor, side: int) -> Tensor:
    """A random ``side`` × ``side`` window of ``x`` (C, H, W)."""
    top = int(torch.randint(x.shape[-2] - side + 1, ()))
    left = int(torch.randint(x.shape[-1] - side + 1, ()))
    return x[..., top : top + side, left : left + side]


def centre_crop(x: Tensor, side: int) -> Tensor:
    """The centre ``side`` × ``side`` window of ``x`` (C, H, W)."""
    top, left = (x.shape[-2] - side) // 2, (x.shape[-1] - side) // 2
    return x[..., top : top + side, left : left + side]


def random_shift(x: Tensor, max_shift: int) -> Tensor:
    """Shift ``x`` (C, H, W) by up to ``max_shift`` pixels each way, filling with zeros."""
    height, width = x.shape[-2:]
    padded = F.pad(x, (max_shift,) * 4)  # (C, H + 2s, W + 2s)
    top, left = torch.randint(2 * max_shift + 1, (2,)).tolist()
    return padded[..., top : top + height, left : left + width]


def random_flip(x: Tensor) -> Tensor:
    """Mirror ``x`` (C, H, W) left-right with probability 1/2."""
    return x.flip(-1) if bool(torch.rand(()) < 0.5) else x


class View:
    """Callable stored → seen view for one split; picklable, so it works in DataLoader workers."""

    def __init__(self, spec: ImageSpec, train: bool) -> None:
        self.spec, self.train = spec, train

    def __call__(self, x: Tensor) -> Tensor:
        spec = self.spec
        if spec.crop is not None:
            x = random_crop(x, spec.crop) if self.train else centre_crop(x, spec.crop)
        if self.train and spec.shift:
            x = random_shift(x, spec.shift)
        if self.train and spec.flip:
            x = random_flip(x)
        return x.contiguous()
