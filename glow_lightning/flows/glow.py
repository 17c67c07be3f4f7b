"""Glow (Kingma & Dhariwal 2018): L levels of squeeze → K steps of flow → split.

A step (Figure 2a) is ActNorm → channel permutation → coupling. :class:`GlowStep` owns the
three and the step's fast path: once ActNorm is initialised, ActNorm and a learned 1×1 conv run
as one folded affine map (:mod:`glow_lightning.flows.fused`), the same function with fewer passes
over the activations.
"""

from __future__ import annotations

import torch
from torch import Tensor

from glow_lightning.flows import fused
from glow_lightning.flows.actnorm import ActNorm
from glow_lightning.flows.base import InvertibleLayer
from glow_lightning.flows.coupling import AFFINE_FORMS, ChannelMask, Coupling, scale_function
from glow_lightning.flows.multiscale import MultiScaleFlow, Split
from glow_lightning.flows.nets import GlowNet
from glow_lightning.flows.permutations import PERMUTATIONS, InvConv
from glow_lightning.flows.registry import pick
from glow_lightning.flows.sequential import FlowSequence
from glow_lightning.flows.spec import FlowConfig, setting
from glow_lightning.flows.squeeze import Squeeze


def permutation(name: str, channels: int, generator: torch.Generator | None) -> InvertibleLayer:
    """The channel mixing named ``name`` (one of ``PERMUTATIONS``); unknown names raise."""
    return pick("permutation", name, PERMUTATIONS)(channels, generator)


def _net(mask: ChannelMask, cfg: FlowConfig, parts: int) -> GlowNet:
    return GlowNet(mask.n_keep, mask.n_change, cfg.hidden_channels, parts=parts,
                   actnorm=cfg.net_actnorm)


def additive_coupling(channels: int, cfg: FlowConfig) -> Coupling:
    """``y_b = x_b + t(x_a)`` over channel halves (NICE's coupling; log-det 0)."""
    mask = ChannelMask(channels)
    return Coupling(mask, _net(mask, cfg, 1))


def affine_coupling(channels: int, cfg: FlowConfig) -> Coupling:
    """``y_b = (x_b + t)·e^s`` (or ``x_b·e^s + t``: ``cfg.affine_form``) with ``s`` from
    ``cfg.scale_fn`` and ``cfg.affine_clamp``."""
    mask = ChannelMask(channels)
    net = _net(mask, cfg, 2)
    scale = scale_function(setting(cfg, "scale_fn", "glow"), mask.n_change, cfg.affine_clamp)
    form = setting(cfg, "affine_form", "glow")
    return Coupling(mask, net, scale, shift_first=pick("affine_form", form, AFFINE_FORMS))


# coupling → Glow's coupling layer on ``channels`` channels
COUPLINGS = {"additive": additive_coupling, "affine": affine_coupling}


def glow_coupling(channels: int, cfg: FlowConfig) -> Coupling:
    """Glow's coupling over channel halves with the reference net (``cfg.coupling``, one of
    ``COUPLINGS``; ``cfg.net_actnorm``)."""
    return pick("coupling", cfg.coupling, COUPLINGS)(channels, cfg)


def mix(norm: ActNorm, perm: InvertibleLayer, x: Tensor) -> tuple[Tensor, Tensor]:
    """ActNorm then the permutation, with the sum of their log-dets (B,): once ActNorm is
    initialised and the permutation is a learned 1×1 conv, one folded affine map."""
    if isinstance(perm, InvConv) and norm.is_initialized:
        return fused.forward(norm, perm, x)
    y, a = norm(x)
    y, b = perm(y)
    return y, a + b


def unmix(norm: ActNorm, perm: InvertibleLayer, y: Tensor) -> tuple[Tensor, Tensor]:
    """The inverse of :func:`mix` and its log-det (B,)."""
    if isinstance(perm, InvConv) and norm.is_initialized:
        return fused.inverse(norm, perm, y)
    h, b = perm.inverse(y)
    x, a = norm.inverse(h)
    return x, a + b


class Mixing(InvertibleLayer):
    """A step's ActNorm + permutation as one unit for memory-saving backprop (``GlowStep.parts``;
    the step itself owns the two layers, so its ``state_dict`` keys stay ``norm.*``, ``perm.*``).
    """

    def __init__(self, norm: ActNorm, perm: InvertibleLayer) -> None:
        super().__init__()
        self.norm, self.perm = norm, perm

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return mix(self.norm, self.perm, x)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return unmix(self.norm, self.perm, y)


class GlowStep(InvertibleLayer):
    """ActNorm → permutation → coupling (Glow, Figure 2a):
    ``y = coupling(W · ((x + b) ⊙ e^s))``, log-det the sum of the three layers'.

    >>> from glow_lightning.flows.permutations import InvConv1x1LU
    >>> torch.manual_seed(0) and None
    >>> coupling = glow_coupling(4, FlowConfig(hidden_channels=8))
    >>> step = GlowStep(ActNorm(4), InvConv1x1LU(4), coupling)
    >>> x = torch.randn(2, 4, 3, 3)
    >>> (y, logdet), (back, inv_logdet) = step(x), step.inverse(step(x)[0])
    >>> torch.allclose(back, x, atol=1e-5), torch.allclose(inv_logdet, -logdet, atol=1e-5)
    (True, True)
    """

    def __init__(self, norm: ActNorm, perm: InvertibleLayer, coupling: Coupling) -> None:
        super().__init__()
        self.norm, self.perm, self.coupling = norm, perm, coupling

    def mix(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """ActNorm then the permutation, with the sum of their log-dets (B,)."""
        return mix(self.norm, self.perm, x)

    def unmix(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return unmix(self.norm, self.perm, y)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y, a = self.mix(x)
        z, b = self.coupling(y)
        return z, a + b

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        h, b = self.coupling.inverse(y)
        x, a = self.unmix(h)
        return x, a + b

    def parts(self) -> list[InvertibleLayer]:
        """Units memory-saving backprop re-runs one at a time: the coupling rebuilds with one
        net evaluation, ActNorm + permutation by inversion."""
        return [Mixing(self.norm, self.perm), self.coupling]


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
            layers: list[InvertibleLayer] = [Squeeze()]
            layers += [glow_step(c, cfg, gen) for _ in range(cfg.steps)]
            flows.append(FlowSequence(layers, cfg.memory_saving))
            last = level == cfg.levels - 1
            splits.append(None if last else Split(c, cfg.split_prior))
            c = c if last else c // 2
        super().__init__(image_shape, flows, splits, (c, h, w), cfg.learn_top, num_classes)
