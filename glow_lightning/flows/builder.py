"""Check and build a Glow or RealNVP model from a :class:`~glow_lightning.flows.spec.FlowConfig`.

:func:`check` is the one validation of a flow's settings: every choice is looked up in the
registry beside the classes it names (``ARCHITECTURES`` here, ``glow.COUPLINGS``,
``permutations.PERMUTATIONS``, ``coupling.SCALE_FNS`` and ``AFFINE_FORMS``,
``normalization.FLOW_NORMS``, ``nets.NET_DTYPES``), all of them listed in ``CHOICES``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import torch
from torch import nn

from glow_lightning.errors import ConfigError
from glow_lightning.flows.coupling import AFFINE_FORMS, SCALE_FNS, TanhScale
from glow_lightning.flows.glow import COUPLINGS, Glow
from glow_lightning.flows.multiscale import MultiScaleFlow
from glow_lightning.flows.nets import NET_DTYPES, NetDType, WNConv2d, set_net_dtype
from glow_lightning.flows.normalization import FLOW_NORMS
from glow_lightning.flows.permutations import PERMUTATIONS
from glow_lightning.flows.priors import PRIOR_SCALES, set_prior_clamp
from glow_lightning.flows.realnvp import RealNVP
from glow_lightning.flows.registry import pick
from glow_lightning.flows.spec import FlowConfig, replace

# architecture → the model, built as ``ARCHITECTURES[name](image_shape, cfg, num_classes, seed)``
# (RealNVP draws no fixed permutation, so it takes no seed)
ARCHITECTURES: dict[str, Callable[[tuple[int, int, int], FlowConfig, int, int], MultiScaleFlow]] = {
    "glow": Glow,
    "realnvp": lambda shape, cfg, num_classes, seed: RealNVP(shape, cfg, num_classes),
}
# every named choice of a flow: its key in FlowConfig and its registry (name → what builds it)
CHOICES: dict[str, Mapping[str, object]] = {
    "architecture": ARCHITECTURES, "coupling": COUPLINGS, "permutation": PERMUTATIONS,
    "scale_fn": SCALE_FNS, "affine_form": AFFINE_FORMS, "net_dtype": dict.fromkeys(NET_DTYPES),
    "realnvp.flow_norm": FLOW_NORMS, "prior_scale": PRIOR_SCALES,
}
UNSET_MEANS_OWN = ("scale_fn", "affine_form")  # None: the architecture's own (spec.OWN_SETTINGS)


def build_flow(image_shape: Sequence[int], cfg: FlowConfig | None = None, *,
               num_classes: int = 0, seed: int = 0, **fields: Any) -> MultiScaleFlow:
    """Build a flow for images of ``image_shape`` (C, H, W) from ``cfg`` (default: the paper's
    CIFAR-10 Glow, L=3, K=32, width 512, affine, LU 1×1 conv) with ``fields`` replaced, e.g.
    ``build_flow((3, 32, 32), levels=2, coupling="additive")``. ``seed`` draws the fixed
    permutations and 1×1 conv initialisations; ``num_classes > 0`` adds a class-conditional top
    prior and an auxiliary classifier. Invalid settings raise a ConfigError naming the key."""
    cfg = replace(cfg if cfg is not None else FlowConfig(), **fields)
    check(cfg, image_shape, num_classes)
    shape = cast(tuple[int, int, int], tuple(int(s) for s in image_shape))
    flow = ARCHITECTURES[cfg.architecture](shape, cfg, num_classes, seed)
    set_net_dtype(flow, cast(NetDType, cfg.net_dtype))
    set_prior_clamp(flow, cfg.prior_clamp if cfg.prior_scale == "softclamp" else 0.0)
    return channels_last_weights(flow)


def check(cfg: FlowConfig, image_shape: Sequence[int], num_classes: int = 0) -> None:
    """Raise a ConfigError naming the offending key and the allowed values."""
    for key, registry in CHOICES.items():
        value = functools.reduce(getattr, key.split("."), cfg)
        if value is not None or key not in UNSET_MEANS_OWN:
            pick(key, value, registry)
    for name in ("levels", "steps", "hidden_channels"):
        _positive(name, getattr(cfg, name))
    _positive("realnvp.blocks", cfg.realnvp.blocks)
    _number("affine_clamp", cfg.affine_clamp, 0.0)
    _number("prior_clamp", cfg.prior_clamp, 0.0)
    if cfg.prior_scale == "softclamp" and not cfg.prior_clamp:
        raise ConfigError("prior_scale=softclamp needs prior_clamp > 0 (the bound of the priors' "
                          "log-scale, e.g. 3)")
    _number("realnvp.logit_alpha", cfg.realnvp.logit_alpha, 0.0, 0.5)
    if cfg.scale_fn == "softclamp" and not cfg.affine_clamp:
        raise ConfigError("scale_fn=softclamp needs affine_clamp > 0 (the bound of the "
                          "log-scale, e.g. 2)")
    if cfg.architecture == "realnvp" and cfg.affine_form not in (None, "scale_shift"):
        raise ConfigError(f"affine_form={cfg.affine_form!r}: RealNVP's couplings are x·e^s + t "
                          "only; set affine_form=scale_shift or leave it unset (null)")
    if not isinstance(num_classes, int) or num_classes < 0:
        raise ConfigError("num_classes must be 0 (unconditional) or a positive int, "
                          f"got {num_classes!r}")
    _check_shape(cfg, image_shape)


def _positive(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def _number(name: str, value: Any, low: float, high: float = float("inf")) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value < high:
        bound = f">= {low:g}" if high == float("inf") else f"in [{low:g}, {high:g})"
        raise ConfigError(f"{name} must be a number {bound}, got {value!r}")


def _check_shape(cfg: FlowConfig, image_shape: Sequence[int]) -> None:
    if len(image_shape) != 3 or any(int(s) < 1 for s in image_shape):
        raise ConfigError(f"image_shape must be (C, H, W) with positive sizes, got "
                          f"{tuple(image_shape)!r}")
    glow = cfg.architecture == "glow"
    factor = 2 ** (cfg.levels if glow else cfg.levels - 1)
    c, h, w = (int(s) for s in image_shape)
    if h % factor or w % factor:
        raise ConfigError(f"image_shape spatial size {h}x{w} must be divisible by {factor} "
                          f"(2^levels for {cfg.architecture}) with levels={cfg.levels}; "
                          "pad or resize the images, or use fewer levels")


def parameter_count(module: nn.Module) -> int:
    """How many numbers ``module`` learns.

    >>> parameter_count(nn.Linear(3, 2))
    8
    """
    return sum(p.numel() for p in module.parameters())


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
