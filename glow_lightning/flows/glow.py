"""Glow (Kingma & Dhariwal 2018): L levels of squeeze → K steps of flow → split.

A step (Figure 2a) is ActNorm → channel permutation → coupling. :class:`GlowStep` owns the
three and the step's fast path: once ActNorm is initialised, ActNorm and a learned 1×1 conv run
as one folded affine map (:mod:`glow_lightning.flows.fused`), the same function with fewer passes
over the activations.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import torch
from torch import Tensor, nn

from glow_lightning.flows import fused
from glow_lightning.flows.actnorm import ActNorm
from glow_lightning.flows.coupling import ChannelMask, Coupling, scale_function
from glow_lightning.flows.multiscale import MultiScaleFlow, Split
from glow_lightning.flows.nets import GlowNet
from glow_lightning.flows.permutations import InvConv, InvConv1x1, InvConv1x1LU, Reverse, Shuffle
from glow_lightning.flows.sequential import FlowLayer, FlowSequence
from glow_lightning.flows.spec import FlowConfig
from glow_lightning.flows.squeeze import Squeeze


def permutation(name: str, channels: int, generator: torch.Generator | None) -> nn.Module:
    """The channel mixing named ``name`` (``spec.PERMUTATIONS``)."""
    if name == "reverse":
        return Reverse(channels)
    kinds = {"shuffle": Shuffle, "invconv": InvConv1x1, "invconv_lu": InvConv1x1LU}
    return kinds[name](channels, generator=generator)


def glow_coupling(channels: int, cfg: FlowConfig) -> Coupling:
    """Glow's coupling over channel halves with the reference net (``cfg.coupling``,
    ``cfg.scale_fn``, ``cfg.affine_clamp``, ``cfg.affine_form``, ``cfg.net_actnorm``)."""
    mask = ChannelMask(channels)
    affine = cfg.coupling == "affine"
    net = GlowNet(mask.n_keep, mask.n_change, cfg.hidden_channels, parts=2 if affine else 1,
                  actnorm=cfg.net_actnorm)
    scale = scale_function(cfg.scale_fn, mask.n_change, cfg.affine_clamp) if affine else None
    return Coupling(mask, net, scale, shift_first=cfg.affine_form == "shift_scale")


class _Mixing:
    """A step's ActNorm + permutation as one unit for memory-saving backprop."""

    def __init__(self, step: GlowStep) -> None:
        self.step = step

    def __call__(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.step.mix(x)

    def inverse(self, y: Tensor) -> Tensor:
        return self.step.unmix(y)

    def parameters(self) -> Iterator[nn.Parameter]:
        yield from self.step.norm.parameters()
        yield from self.step.perm.parameters()


class GlowStep(nn.Module):
    """ActNorm → permutation → coupling, ``forward(x) -> (z, logdet)`` and ``inverse``."""

    def __init__(self, norm: ActNorm, perm: nn.Module, coupling: Coupling) -> None:
        super().__init__()
        self.norm, self.perm, self.coupling = norm, perm, coupling
        self.learned_perm = isinstance(perm, InvConv)  # fusable with ActNorm

    def _fused(self) -> bool:
        return self.learned_perm and self.norm.is_initialized

    def mix(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """ActNorm then the permutation, with the sum of their log-dets (B,)."""
        if self._fused():
            return fused.forward(self.norm, cast(InvConv, self.perm), x)
        y, a = self.norm(x)
        y, b = self.perm(y)
        return y, a + b

    def unmix(self, y: Tensor) -> Tensor:
        if self._fused():
            return fused.inverse(self.norm, cast(InvConv, self.perm), y)
        return self.norm.inverse(cast(FlowLayer, self.perm).inverse(y))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y, a = self.mix(x)
        z, b = self.coupling(y)
        return z, a + b

    def inverse(self, z: Tensor) -> Tensor:
        return self.unmix(self.coupling.inverse(z))

    def parts(self) -> list[object]:
        """Units memory-saving backprop re-runs one at a time: the coupling rebuilds with one
        net evaluation, ActNorm + permutation by inversion."""
        return [_Mixing(self), self.coupling]


def glow_step(channels: int, cfg: FlowConfig, generator: torch.Generator | None) -> GlowStep:
    return GlowStep(ActNorm(channels), permutation(cfg.permutation, channels, generator),
                    glow_coupling(channels, cfg))


class Glow(MultiScaleFlow):
    """Multi-scale Glow built from ``cfg`` (see :class:`~glow_lightning.flows.spec.FlowConfig`);
    ``seed`` draws the permutations and 1×1 conv initialisations."""

    def __init__(self, image_shape: tuple[int, int, int], cfg: FlowConfig, num_classes: int = 0,
                 seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        c, h, w = image_shape
        flows, splits = [], []
        for level in range(cfg.levels):
            c, h, w = c * 4, h // 2, w // 2
            layers: list[nn.Module] = [Squeeze()]
            layers += [glow_step(c, cfg, gen) for _ in range(cfg.steps)]
            flows.append(FlowSequence(layers, cfg.memory_saving))
            last = level == cfg.levels - 1
            splits.append(None if last else Split(c, cfg.split_prior))
            c = c if last else c // 2
        super().__init__(image_shape, flows, splits, (c, h, w), cfg.learn_top, num_classes)
