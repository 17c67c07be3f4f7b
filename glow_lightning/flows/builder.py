"""Build a Glow or RealNVP model from a :class:`~glow_lightning.flows.spec.FlowConfig`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn

from glow_lightning.flows.coupling import TanhScale
from glow_lightning.flows.glow import Glow
from glow_lightning.flows.multiscale import MultiScaleFlow
from glow_lightning.flows.nets import WNConv2d, set_net_dtype
from glow_lightning.flows.priors import set_prior_clamp
from glow_lightning.flows.realnvp import RealNVP
from glow_lightning.flows.spec import FlowConfig, NetDType, check, replace


def build_flow(image_shape: Sequence[int], cfg: FlowConfig | None = None, *,
               num_classes: int = 0, seed: int = 0, **fields: Any) -> MultiScaleFlow:
    """Build a flow for images of ``image_shape`` (C, H, W) from ``cfg`` (default: the paper's
    CIFAR-10 Glow, L=3, K=32, width 512, affine, LU 1×1 conv) with ``fields`` replaced, e.g.
    ``build_flow((3, 32, 32), levels=2, coupling="additive")``. ``seed`` draws the fixed
    permutations and 1×1 conv initialisations; ``num_classes > 0`` adds a class-conditional top
    prior and an auxiliary classifier. Invalid settings raise a ValueError naming the key."""
    cfg = replace(cfg if cfg is not None else FlowConfig(), **fields)
    check(cfg, image_shape, num_classes)
    shape = cast(tuple[int, int, int], tuple(int(s) for s in image_shape))
    if cfg.architecture == "realnvp":
        flow: MultiScaleFlow = RealNVP(shape, cfg, num_classes)
    else:
        flow = Glow(shape, cfg, num_classes, seed)
    set_net_dtype(flow, cast(NetDType, cfg.net_dtype))
    set_prior_clamp(flow, cfg.prior_clamp if cfg.prior_scale == "softclamp" else 0.0)
    return channels_last_weights(flow)


def scale_parameters(flow: nn.Module) -> list[nn.Parameter]:
    """The parameters RealNVP's L2 penalty acts on (Dinh et al. 2017, Sec. 4.1): the scales ``g``
    of weight-normalised convolutions and the per-channel scales of ``scale·tanh`` couplings."""
    out: list[nn.Parameter] = []
    for module in flow.modules():
        if isinstance(module, WNConv2d):
            out.append(module.g)
        elif isinstance(module, TanhScale):
            out.append(module.scale)
    return out


def channels_last_weights(flow: MultiScaleFlow) -> MultiScaleFlow:
    """Store conv weights channels-last, the layout in which the NHWC convolutions produce their
    weight gradients: gradients then match their parameters' strides (DDP can use them as bucket
    views, no copy) and the optimiser walks matching memory."""
    for module in flow.modules():
        if isinstance(module, torch.nn.Conv2d):
            p = module.weight
            o, i, h, w = p.shape  # explicit strides: for 1×1 kernels .contiguous() keeps NCHW's
            p.data = torch.empty_strided(p.shape, (i * h * w, 1, w * i, i),
                                         dtype=p.dtype, device=p.device).copy_(p.data)
    return flow
