"""Coupling layers: one contract for Glow's and RealNVP's (Kingma & Dhariwal 2018, Sec. 3.3;
Dinh et al. 2017, Sec. 3.3-3.4).

A :class:`Coupling` is three parts:

* a **mask** splits ``x`` into a kept part ``a`` and a changed part ``b`` and joins them back:
  :class:`ChannelMask` (channel halves; ``flip`` swaps which half changes) or
  :class:`CheckerboardMask` (a spatial checkerboard; ``parity`` alternates between layers);
* a **net** maps ``a`` to the transform's parameters (one tensor for additive, two for affine);
* a **scale function** turns the net's raw output into the log-scale (affine only):
  ``sigmoid``, the reference ``log sigmoid(h + 2)`` (optionally softly bounded to
  ``(-clamp, 0)``); ``softclamp``, a symmetric ``clamp · (2/π) · atan(h / clamp)`` that can
  expand as well as shrink; ``tanh``, RealNVP's ``scale · tanh(h)`` with a learned per-channel
  scale.

Glow's affine form is ``z_b = (x_b + t) · e^s`` (the reference code), RealNVP's is
``z_b = x_b · e^s + t``. ``a`` passes unchanged, so the inverse evaluates the net on the same
input and the log-det is ``Σ s`` (the inverse's ``−Σ s``). :meth:`Coupling.rebuild` serves
memory-saving backprop with one net evaluation. ``SCALE_FNS`` and ``AFFINE_FORMS`` name the
choices for the config (``scale_fn``, ``affine_form``).

>>> from glow_lightning.flows.nets import GlowNet
>>> torch.manual_seed(0) and None
>>> layer = Coupling(ChannelMask(4), GlowNet(2, 2, 8, parts=2), SigmoidScale())
>>> x = torch.randn(2, 4, 3, 3)
>>> (y, logdet), (back, inv_logdet) = layer(x), layer.inverse(layer(x)[0])
>>> torch.allclose(back, x, atol=1e-6), torch.allclose(inv_logdet, -logdet)
(True, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from glow_lightning.flows.base import InvertibleLayer, Rebuilt
from glow_lightning.flows.registry import pick


class ChannelMask(nn.Module):
    """Keep the first ``n_keep`` channels (the last ones with ``flip``), change the rest."""

    def __init__(self, num_channels: int, flip: bool = False) -> None:
        super().__init__()
        self.flip = flip
        # n_keep, not half: nn.Module.half() must stay callable
        self.n_keep = num_channels - num_channels // 2 if flip else num_channels // 2
        self.n_change = num_channels - self.n_keep
        self.net_channels = self.n_keep  # channels of the net's input

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        # torch.split rather than two slices: its backward is one cat, not two zero-filled
        # full-size tensors added together
        sizes = [self.n_change, self.n_keep] if self.flip else [self.n_keep, self.n_change]
        first, second = torch.split(x, sizes, dim=1)
        return (second, first) if self.flip else (first, second)

    def join(self, a: Tensor, b: Tensor) -> Tensor:
        """Inverse of :meth:`split`; also joins the gradients of the two parts."""
        return torch.cat([b, a] if self.flip else [a, b], dim=1)

    def net_input(self, a: Tensor) -> Tensor:
        return a

    def restrict(self, p: Tensor) -> Tensor:
        return p


class CheckerboardMask(nn.Module):
    """Keep the pixels where ``(i + j) % 2 == parity``, change the others; both parts keep the
    full shape (zeros where they do not apply). The net also sees the mask as one channel."""

    mask: Tensor

    def __init__(self, num_channels: int, height: int, width: int, parity: int) -> None:
        super().__init__()
        self.n_keep = self.n_change = num_channels
        self.net_channels = num_channels + 1  # the kept pixels and the mask
        i, j = torch.arange(height).view(-1, 1), torch.arange(width).view(1, -1)
        self.register_buffer("mask", ((i + j) % 2 == parity).float().view(1, 1, height, width))

    def _mask(self, x: Tensor) -> Tensor:
        return self.mask.to(x.dtype)

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        m = self._mask(x)
        return x * m, x * (1 - m)

    def join(self, a: Tensor, b: Tensor) -> Tensor:
        """Inverse of :meth:`split`; the same formula joins the parts' gradients
        (∂L/∂x = m·∂L/∂a + (1 − m)·∂L/∂b)."""
        m = self._mask(a)
        return a * m + b * (1 - m)

    def net_input(self, a: Tensor) -> Tensor:
        return torch.cat([a, self._mask(a).expand(a.shape[0], 1, -1, -1)], dim=1)

    def restrict(self, p: Tensor) -> Tensor:
        return p * (1 - self._mask(p))


Mask = ChannelMask | CheckerboardMask


class SigmoidScale(nn.Module):
    """``log sigmoid(h + 2)`` (openai/glow); ``clamp > 0``: ``clamp · tanh(· / clamp)``, a soft
    bound to ``(-clamp, 0)`` equal to the reference near the identity. The inverse then divides
    by at most ``e^clamp``, so latents outside the training distribution cannot be amplified
    without bound layer after layer."""

    def __init__(self, clamp: float = 0.0) -> None:
        super().__init__()
        self.clamp = float(clamp)

    def forward(self, h: Tensor) -> Tensor:
        s = F.logsigmoid(h + 2.0)
        return self.clamp * torch.tanh(s / self.clamp) if self.clamp else s


class SoftClampScale(nn.Module):
    """``clamp · (2/π) · atan(h / clamp)``: zero at ``h = 0``, slope 1 there, bounded to
    ``(-clamp, clamp)``, so a coupling can expand as well as shrink (FrEIA's soft clamp)."""

    def __init__(self, clamp: float) -> None:
        super().__init__()
        self.clamp = float(clamp)

    def forward(self, h: Tensor) -> Tensor:
        return self.clamp * (2 / math.pi) * torch.atan(h / self.clamp)


class TanhScale(nn.Module):
    """``scale · tanh(h)`` with a learned per-channel ``scale`` (RealNVP)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1, channels, 1, 1))

    def forward(self, h: Tensor) -> Tensor:
        return self.scale * torch.tanh(h)


# scale_fn → its module for (changed channels, clamp)
SCALE_FNS: dict[str, Callable[[int, float], nn.Module]] = {
    "sigmoid": lambda channels, clamp: SigmoidScale(clamp),
    "softclamp": lambda channels, clamp: SoftClampScale(clamp),
    "tanh": lambda channels, clamp: TanhScale(channels),
}
# affine_form → Coupling's ``shift_first``: (x + t)·e^s (the reference) or x·e^s + t
AFFINE_FORMS = {"shift_scale": True, "scale_shift": False}


def scale_function(name: str, channels: int, clamp: float) -> nn.Module:
    """The scale function named ``name`` (one of ``SCALE_FNS``) for ``channels`` changed
    channels; an unknown name raises ConfigError."""
    return pick("scale_fn", name, SCALE_FNS)(channels, clamp)


class Coupling(InvertibleLayer):
    """``z = join(a, f(b))`` with ``(a, b) = mask.split(x)`` and ``f`` parameterised by
    ``net(a)``: additive ``f(b) = b + t`` when ``scale`` is None, else affine (see the module
    docstring). ``net`` returns one tensor (additive) or two (shift, raw log-scale)."""

    def __init__(self, mask: Mask, net: nn.Module, scale: nn.Module | None = None,
                 shift_first: bool = True) -> None:
        super().__init__()
        self.mask, self.net, self.scale = mask, net, scale
        self.shift_first = shift_first

    def _params(self, a: Tensor) -> tuple[Tensor, Tensor | None]:  # (shift, log-scale or None)
        out = self.net(self.mask.net_input(a))
        shift = self.mask.restrict(out[0])
        if self.scale is None:
            return shift, None
        return shift, self.mask.restrict(self.scale(out[1]))

    def _transform(self, b: Tensor, shift: Tensor, logscale: Tensor | None) -> Tensor:
        if logscale is None:
            return b + shift
        if self.shift_first:
            return (b + shift) * torch.exp(logscale)
        return b * torch.exp(logscale) + shift

    def _untransform(self, c: Tensor, shift: Tensor, logscale: Tensor | None) -> Tensor:
        if logscale is None:
            return c - shift
        if self.shift_first:
            return c * torch.exp(-logscale) - shift
        return (c - shift) * torch.exp(-logscale)

    def _out(self, a: Tensor, c: Tensor, logscale: Tensor | None) -> tuple[Tensor, Tensor]:
        logdet = (logscale.sum(dim=(1, 2, 3)) if logscale is not None
                  else a.new_zeros(a.shape[0]))
        return self.mask.join(a, c), logdet

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        a, b = self.mask.split(x)
        shift, logscale = self._params(a)
        return self._out(a, self._transform(b, shift, logscale), logscale)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        a, c = self.mask.split(y)
        shift, logscale = self._params(a)
        x, logdet = self._out(a, self._untransform(c, shift, logscale), logscale)
        return x, -logdet

    def rebuild(self, z: Tensor) -> Rebuilt:
        """For memory-saving backprop: the input leaves ``(a, b)`` of output ``z`` and the
        forward recomputed from them under autograd. The net runs once, not twice (inverse then
        forward), because its input ``a`` is the same in ``x`` and ``z``."""
        a_z, c = self.mask.split(z)
        a = a_z.detach().requires_grad_(True)
        shift, logscale = self._params(a)
        with torch.no_grad():
            b = self._untransform(c, shift, logscale)
        b.requires_grad_(True)
        z_again, logdet = self._out(a, self._transform(b, shift, logscale), logscale)
        return Rebuilt((a, b), self.mask.join, z_again, logdet)
