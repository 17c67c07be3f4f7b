"""RealNVP (Dinh et al. 2016, Sec. 3.6 and 4.1): per scale, 3 checkerboard couplings → squeeze →
3 channel-wise couplings → factor out half; at the last scale 4 checkerboard couplings.

``steps`` is the number of couplings per mask type (the paper uses 3, and ``steps + 1`` at the
last scale). Masks alternate between consecutive couplings.
"""

from __future__ import annotations

from torch import nn

from glow_lightning.flows.actnorm import ActNorm
from glow_lightning.flows.masked_coupling import ChannelCoupling, CheckerboardCoupling
from glow_lightning.flows.multiscale import MultiScaleFlow, Split
from glow_lightning.flows.sequential import FlowSequence
from glow_lightning.flows.squeeze import Squeeze


def _checkerboards(c: int, h: int, w: int, n: int, hidden: int) -> list[nn.Module]:
    return [m for i in range(n) for m in (CheckerboardCoupling(c, h, w, i % 2, hidden),
                                          ActNorm(c))]


def _channelwise(c: int, n: int, hidden: int) -> list[nn.Module]:
    return [m for i in range(n) for m in (ChannelCoupling(c, bool(i % 2), hidden), ActNorm(c))]


class RealNVP(MultiScaleFlow):
    """Multi-scale RealNVP; ActNorm stands in for the paper's batch-norm layers so that train and
    eval compute the same density."""

    def __init__(self, image_shape: tuple[int, int, int], levels: int, steps: int,
                 hidden_channels: int, learn_top: bool = False, split_prior: bool = False,
                 num_classes: int = 0, memory_saving: bool = False) -> None:
        c, h, w = image_shape
        flows: list[FlowSequence] = []
        splits: list[Split | None] = []
        for _ in range(levels - 1):
            layers = _checkerboards(c, h, w, steps, hidden_channels)
            c, h, w = c * 4, h // 2, w // 2
            layers += [Squeeze(), *_channelwise(c, steps, hidden_channels)]
            flows.append(FlowSequence(layers, memory_saving))
            splits.append(Split(c, split_prior))
            c = c // 2
        flows.append(FlowSequence(_checkerboards(c, h, w, steps + 1, hidden_channels),
                                  memory_saving))
        splits.append(None)
        super().__init__(image_shape, flows, splits, (c, h, w), learn_top, num_classes)
