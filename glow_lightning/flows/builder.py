"""Build a Glow or RealNVP model from plain keyword values, validating each at construction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, cast

import torch

from glow_lightning.flows.glow import COUPLINGS, PERMUTATIONS, Glow
from glow_lightning.flows.multiscale import MultiScaleFlow
from glow_lightning.flows.nets import NET_DTYPES, NetDType, set_net_dtype
from glow_lightning.flows.realnvp import RealNVP

Architecture = Literal["glow", "realnvp"]
Coupling = Literal["additive", "affine"]
Permutation = Literal["reverse", "shuffle", "invconv", "invconv_lu"]
ARCHITECTURES = ("glow", "realnvp")


def _choice(name: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; allowed values: {', '.join(allowed)}")


def _positive(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def validate(image_shape: Sequence[int], levels: int, steps: int, hidden_channels: int,
             coupling: str, permutation: str, architecture: str, num_classes: int) -> None:
    """Raise a ValueError naming the offending parameter and the allowed values."""
    _choice("architecture", architecture, ARCHITECTURES)
    _choice("coupling", coupling, tuple(COUPLINGS))
    _choice("permutation", permutation, tuple(PERMUTATIONS))
    for name, value in (("levels", levels), ("steps", steps), ("hidden_channels", hidden_channels)):
        _positive(name, value)
    if len(image_shape) != 3 or any(int(s) < 1 for s in image_shape):
        raise ValueError(f"image_shape must be (C, H, W) with positive sizes, got {image_shape!r}")
    if not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError("num_classes must be 0 (unconditional) or a positive int, "
                         f"got {num_classes!r}")
    factor = 2 ** (levels if architecture == "glow" else levels - 1)
    c, h, w = image_shape
    if h % factor or w % factor:
        raise ValueError(f"image_shape spatial size {h}x{w} must be divisible by {factor} "
                         f"(2^levels for {architecture}) with levels={levels}; "
                         "pad or resize the images, or use fewer levels")
    if architecture == "realnvp" and c * 4 % 2:
        raise ValueError(f"image_shape channel count {c} must make 4*C even for realnvp")


def build_flow(image_shape: Sequence[int], levels: int = 3, steps: int = 32,
               hidden_channels: int = 512, coupling: Coupling = "affine",
               permutation: Permutation = "invconv_lu", learn_top: bool = True,
               split_prior: bool = True, num_classes: int = 0,
               architecture: Architecture = "glow", memory_saving: bool = False,
               affine_clamp: float = 0.0, seed: int = 0,
               net_dtype: NetDType = "float32") -> MultiScaleFlow:
    """Build a flow. Defaults are the paper's CIFAR-10 Glow (L=3, K=32, width 512, affine, LU).

    For ``architecture="realnvp"`` ``coupling`` and ``permutation`` are fixed by the architecture
    (masked affine couplings) and ``steps`` counts couplings per mask type per scale.
    ``affine_clamp > 0`` softly bounds each affine coupling's log-scale to ``(-affine_clamp, 0)``
    (see :class:`~glow_lightning.flows.coupling.AffineCoupling`); 0 is the reference layer.
    ``net_dtype="bfloat16"`` runs the coupling networks (only) in bfloat16: faster where the
    hardware has bfloat16 units, still exactly invertible (see :mod:`glow_lightning.flows.nets`).
    """
    image_shape = tuple(int(s) for s in image_shape)
    if not isinstance(affine_clamp, (int, float)) or affine_clamp < 0:
        raise ValueError(f"affine_clamp must be a number >= 0 (0 disables), got {affine_clamp!r}")
    validate(image_shape, levels, steps, hidden_channels, coupling, permutation, architecture,
             num_classes)
    _choice("net_dtype", net_dtype, NET_DTYPES)
    shape = cast(tuple[int, int, int], image_shape)  # validate checked: three positive sizes
    if architecture == "realnvp":
        flow: MultiScaleFlow = RealNVP(shape, levels, steps, hidden_channels,
                                       learn_top=learn_top, split_prior=split_prior,
                                       num_classes=num_classes, memory_saving=memory_saving)
    else:
        flow = Glow(shape, levels, steps, hidden_channels, coupling, permutation, learn_top,
                    split_prior, num_classes, memory_saving, seed, affine_clamp)
    set_net_dtype(flow, net_dtype)
    return channels_last_weights(flow)


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
