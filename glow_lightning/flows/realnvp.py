"""RealNVP (Dinh et al. 2017, Sec. 3.6 and 4.1): per scale, 3 checkerboard couplings → squeeze →
3 channel-wise couplings → factor out half; at the last scale 4 checkerboard couplings.

``steps`` is the number of couplings per mask type (the paper uses 3, and ``steps + 1`` at the
last scale); masks alternate between consecutive couplings. Each coupling is affine,
``z_b = x_b · e^s + t`` with ``s = scale · tanh(·)``, its ``s`` and ``t`` from a residual network
(``realnvp.blocks`` blocks, weight and batch normalisation) whose feature maps double after every
squeeze, as in the widely used PyTorch port of the paper (chrischute/real-nvp). Every coupling is
followed by the batch-norm flow layer (or ActNorm, or nothing: ``realnvp.flow_norm``); the first
layer is the logit preprocessing (``realnvp.logit_alpha``). Split latents have N(0, I) priors
unless ``split_prior``.
"""

from __future__ import annotations

from glow_lightning.flows.base import InvertibleLayer
from glow_lightning.flows.coupling import (
    ChannelMask,
    CheckerboardMask,
    Coupling,
    Mask,
    scale_function,
)
from glow_lightning.flows.multiscale import MultiScaleFlow, Split
from glow_lightning.flows.nets import ResNet
from glow_lightning.flows.normalization import FLOW_NORMS, Logit
from glow_lightning.flows.registry import pick
from glow_lightning.flows.sequential import FlowSequence
from glow_lightning.flows.spec import FlowConfig, setting
from glow_lightning.flows.squeeze import Squeeze


def realnvp_coupling(mask: Mask, hidden: int, cfg: FlowConfig) -> Coupling:
    """An affine coupling ``y_b = x_b·e^s + t`` with RealNVP's residual net and scale function
    (``cfg.scale_fn``, by default ``tanh``)."""
    r = cfg.realnvp
    net = ResNet(mask.net_channels, mask.n_change, hidden, r.blocks, parts=2,
                 weight_norm=r.weight_norm, batch_norm=r.batch_norm)
    scale = scale_function(setting(cfg, "scale_fn", "realnvp"), mask.n_change, cfg.affine_clamp)
    return Coupling(mask, net, scale, shift_first=False)


def _normed(coupling: Coupling, channels: int, flow_norm: str) -> list[InvertibleLayer]:
    return [coupling, *pick("realnvp.flow_norm", flow_norm, FLOW_NORMS)(channels)]


def checkerboards(shape: tuple[int, int, int], n: int, hidden: int, cfg: FlowConfig
                  ) -> list[InvertibleLayer]:
    c, h, w = shape
    return [m for i in range(n) for m in _normed(
        realnvp_coupling(CheckerboardMask(c, h, w, i % 2), hidden, cfg), c, cfg.realnvp.flow_norm)]


def channelwise(c: int, n: int, hidden: int, cfg: FlowConfig) -> list[InvertibleLayer]:
    return [m for i in range(n) for m in _normed(
        realnvp_coupling(ChannelMask(c, bool(i % 2)), hidden, cfg), c, cfg.realnvp.flow_norm)]


class RealNVP(MultiScaleFlow):
    """Multi-scale RealNVP built from ``cfg`` (see :class:`~glow_lightning.flows.spec.FlowConfig`
    and its ``realnvp`` section)."""

    def __init__(self, image_shape: tuple[int, int, int], cfg: FlowConfig,
                 num_classes: int = 0) -> None:
        c, h, w = image_shape
        hidden, alpha = cfg.hidden_channels, cfg.realnvp.logit_alpha
        flows: list[FlowSequence] = []
        splits: list[Split | None] = []
        for level in range(cfg.levels):
            last = level == cfg.levels - 1
            layers: list[InvertibleLayer] = [Logit(alpha)] if level == 0 and alpha else []
            layers += checkerboards((c, h, w), cfg.steps + 1 if last else cfg.steps, hidden, cfg)
            if not last:
                c, h, w, hidden = c * 4, h // 2, w // 2, hidden * 2  # (B, 4C, H/2, W/2)
                layers += [Squeeze(), *channelwise(c, cfg.steps, hidden, cfg)]
            flows.append(FlowSequence(layers, cfg.memory_saving))
            splits.append(None if last else Split(c, cfg.split_prior))
            c = c if last else c // 2
        super().__init__(image_shape, flows, splits, (c, h, w), cfg.learn_top, num_classes)
