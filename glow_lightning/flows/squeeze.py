"""Space-to-depth squeeze (RealNVP Sec. 3.6; Glow Figure 2): (B, C, H, W) → (B, 4C, H/2, W/2)."""

from __future__ import annotations

from torch import Tensor, nn


def squeeze(x: Tensor) -> Tensor:
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // 2, 2, w // 2, 2)
    return x.permute(0, 1, 3, 5, 2, 4).reshape(b, c * 4, h // 2, w // 2)  # (B, 4C, H/2, W/2)


def unsqueeze(z: Tensor) -> Tensor:
    b, c, h, w = z.shape
    z = z.reshape(b, c // 4, 2, 2, h, w)
    return z.permute(0, 1, 4, 2, 5, 3).reshape(b, c // 4, h * 2, w * 2)  # (B, C/4, 2H, 2W)


class Squeeze(nn.Module):
    """Volume-preserving reshape; log-det 0."""

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return squeeze(x), x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        return unsqueeze(z)
