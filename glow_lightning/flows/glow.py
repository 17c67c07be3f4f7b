"""Glow (Kingma & Dhariwal 2018): L levels of squeeze → K × (ActNorm, 1×1 conv, coupling) → split.
"""

from __future__ import annotations

import torch
from torch import nn

from glow_lightning.flows.actnorm import ActNorm
from glow_lightning.flows.coupling import AdditiveCoupling, AffineCoupling
from glow_lightning.flows.multiscale import MultiScaleFlow, Split
from glow_lightning.flows.permutations import InvConv1x1, InvConv1x1LU, Reverse, Shuffle
from glow_lightning.flows.sequential import FlowSequence
from glow_lightning.flows.squeeze import Squeeze

PERMUTATIONS = {"reverse": Reverse, "shuffle": Shuffle, "invconv": InvConv1x1,
                "invconv_lu": InvConv1x1LU}
COUPLINGS = {"additive": AdditiveCoupling, "affine": AffineCoupling}


def flow_step(channels: int, hidden: int, coupling: str, permutation: str,
              generator: torch.Generator | None, affine_clamp: float = 0.0) -> list[nn.Module]:
    """One step of flow (Glow Figure 2a): ActNorm → permutation → coupling."""
    perm_cls = PERMUTATIONS[permutation]
    perm = perm_cls(channels) if perm_cls is Reverse else perm_cls(channels, generator=generator)
    couple = (AffineCoupling(channels, hidden, affine_clamp) if coupling == "affine"
              else COUPLINGS[coupling](channels, hidden))
    return [ActNorm(channels), perm, couple]


class Glow(MultiScaleFlow):
    """Multi-scale Glow; see :func:`glow_lightning.flows.build_flow` for the arguments."""

    def __init__(self, image_shape: tuple[int, int, int], levels: int, steps: int,
                 hidden_channels: int, coupling: str = "affine", permutation: str = "invconv_lu",
                 learn_top: bool = True, split_prior: bool = True, num_classes: int = 0,
                 memory_saving: bool = False, seed: int = 0, affine_clamp: float = 0.0) -> None:
        gen = torch.Generator().manual_seed(seed)
        c, h, w = image_shape
        flows, splits = [], []
        for level in range(levels):
            c, h, w = c * 4, h // 2, w // 2
            layers: list[nn.Module] = [Squeeze()]
            for _ in range(steps):
                layers += flow_step(c, hidden_channels, coupling, permutation, gen, affine_clamp)
            flows.append(FlowSequence(layers, memory_saving))
            last = level == levels - 1
            splits.append(None if last else Split(c, split_prior))
            c = c if last else c // 2
        super().__init__(image_shape, flows, splits, (c, h, w), learn_top, num_classes)
