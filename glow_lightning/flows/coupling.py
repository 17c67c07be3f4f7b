"""Glow's additive and affine coupling layers (Kingma & Dhariwal 2018, Sec. 3.3, Table 1).

The first half of the channels passes unchanged and parameterises the transform of the second
half. Affine scale is ``sigmoid(h + 2)`` as in the reference code, so the layer starts close to the
identity (the last conv of the net is zero-initialised).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from glow_lightning.flows.nets import GlowNet


class _Coupling(nn.Module):
    """Shared split → transform second half → join; subclasses define the elementwise transform."""

    n_keep: int  # channels passed through unchanged (not ``half``: that is nn.Module.half())

    def _params(self, x1: Tensor) -> tuple[Tensor, Tensor | None]:  # (shift, log-scale or None)
        raise NotImplementedError

    def _transform(self, x2: Tensor, shift: Tensor, logscale: Tensor | None) -> Tensor:
        raise NotImplementedError

    def _untransform(self, z2: Tensor, shift: Tensor, logscale: Tensor | None) -> Tensor:
        raise NotImplementedError

    def _join(self, x1: Tensor, z2: Tensor, logscale: Tensor | None) -> tuple[Tensor, Tensor]:
        logdet = (logscale.sum(dim=(1, 2, 3)) if logscale is not None
                  else x1.new_zeros(x1.shape[0]))
        return torch.cat([x1, z2], dim=1), logdet

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        # torch.split rather than two slices: its backward is one cat, not two zero-filled
        # full-size tensors added together
        x1, x2 = torch.split(x, [self.n_keep, x.shape[1] - self.n_keep], dim=1)
        return x1, x2

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x1, x2 = self._split(x)
        shift, logscale = self._params(x1)
        return self._join(x1, self._transform(x2, shift, logscale), logscale)

    def inverse(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        z1, z2 = self._split(z)
        return torch.cat([z1, self._untransform(z2, *self._params(z1))], dim=1)

    def rebuild(self, z: Tensor) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
        """For memory-saving backprop: input leaves ``(x1, x2)`` of output ``z`` and the forward
        ``(z, logdet)`` recomputed from them under autograd. The net runs once, not twice (inverse
        then forward), because its input half is the same in ``x`` and ``z``."""
        z1, z2 = self._split(z)
        x1 = z1.detach().requires_grad_(True)
        shift, logscale = self._params(x1)
        with torch.no_grad():
            x2 = self._untransform(z2, shift, logscale)
        x2.requires_grad_(True)
        return (x1, x2), self._join(x1, self._transform(x2, shift, logscale), logscale)


class AdditiveCoupling(_Coupling):
    """``z2 = x2 + NN(x1)``; log-det 0 (NICE / Glow additive)."""

    def __init__(self, num_channels: int, hidden_channels: int) -> None:
        super().__init__()
        self.n_keep = num_channels // 2
        self.net = GlowNet(self.n_keep, num_channels - self.n_keep, hidden_channels)

    def _params(self, x1: Tensor) -> tuple[Tensor, None]:
        return self.net(x1), None

    def _transform(self, x2: Tensor, shift: Tensor, logscale: Tensor | None) -> Tensor:
        return x2 + shift

    def _untransform(self, z2: Tensor, shift: Tensor, logscale: Tensor | None) -> Tensor:
        return z2 - shift


class AffineCoupling(_Coupling):
    """``z2 = (x2 + t) · sigmoid(h + 2)`` with ``(t, h) = NN(x1)``; log-det Σ log-scale.

    ``clamp > 0`` bounds the log-scale softly to ``(-clamp, 0)``:
    ``s = clamp · tanh(log sigmoid(h + 2) / clamp)`` (equal to the reference scale near the
    identity). The inverse then divides by at least ``exp(-clamp)``, so a sample whose latents
    leave the training distribution cannot be amplified without bound layer after layer (the
    unbounded ``1 / sigmoid`` overflows to inf within a few layers there). The transform stays
    exactly invertible with an exact log-det; ``clamp = 0`` is the reference layer.
    """

    def __init__(self, num_channels: int, hidden_channels: int, clamp: float = 0.0) -> None:
        super().__init__()
        if clamp < 0:
            raise ValueError(f"clamp must be >= 0 (0 = unbounded reference scale), got {clamp}")
        self.n_keep = num_channels // 2
        self.clamp = float(clamp)
        self.net = GlowNet(self.n_keep, 2 * (num_channels - self.n_keep), hidden_channels)

    def _params(self, x1: Tensor) -> tuple[Tensor, Tensor]:
        shift, raw = self.net.halves(x1)  # channels 0::2 and 1::2, as in the reference code
        logscale = F.logsigmoid(raw + 2.0)
        if self.clamp:
            logscale = self.clamp * torch.tanh(logscale / self.clamp)
        return shift, logscale

    def _transform(self, x2: Tensor, shift: Tensor, logscale: Tensor | None) -> Tensor:
        assert logscale is not None
        return (x2 + shift) * torch.exp(logscale)

    def _untransform(self, z2: Tensor, shift: Tensor, logscale: Tensor | None) -> Tensor:
        assert logscale is not None
        return z2 * torch.exp(-logscale) - shift
