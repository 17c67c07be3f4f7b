"""What a flow is made of, as data: :class:`FlowConfig` (and RealNVP's own :class:`RealNVPConfig`).

Plain dataclasses with plain defaults (the paper's CIFAR-10 Glow); ``glow_lightning.config`` uses
them as the ``model`` section of an experiment, and :func:`~glow_lightning.flows.build_flow` reads
them. Every variant is a named string; :func:`check` rejects anything else with one line naming
the key and the allowed values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Architecture = Literal["glow", "realnvp"]
CouplingKind = Literal["additive", "affine"]
Permutation = Literal["reverse", "shuffle", "invconv", "invconv_lu"]
ScaleFn = Literal["sigmoid", "softclamp", "tanh"]
AffineForm = Literal["shift_scale", "scale_shift"]
FlowNorm = Literal["batchnorm", "actnorm", "none"]
NetDType = Literal["float32", "bfloat16"]
PriorScale = Literal["free", "softclamp"]

ARCHITECTURES = ("glow", "realnvp")
COUPLINGS = ("additive", "affine")
PERMUTATIONS = ("reverse", "shuffle", "invconv", "invconv_lu")
SCALE_FNS = ("sigmoid", "softclamp", "tanh")
AFFINE_FORMS = ("shift_scale", "scale_shift")
FLOW_NORMS = ("batchnorm", "actnorm", "none")
NET_DTYPES = ("float32", "bfloat16")
PRIOR_SCALES = ("free", "softclamp")


@dataclass
class RealNVPConfig:
    """RealNVP's own settings (Dinh et al. 2017, Sec. 3-4 and the CIFAR-10 setting of Sec. 4.1).

    ``blocks`` residual blocks of ``hidden_channels`` feature maps per coupling network (the
    maps double after every squeeze); ``weight_norm`` and ``batch_norm`` inside those networks;
    ``flow_norm``: the batch-norm flow layer after every coupling (running statistics in eval
    mode), ActNorm instead, or nothing; ``logit_alpha``: logit preprocessing
    ``logit(α + (1 − 2α)·p)`` of pixels ``p`` in [0, 1] as the first flow layer (0: none);
    ``scale_fn`` of the affine couplings (``tanh``: the paper's ``scale·tanh``).
    """

    blocks: int = 8
    weight_norm: bool = True
    batch_norm: bool = True
    flow_norm: str = "batchnorm"  # batchnorm | actnorm | none
    logit_alpha: float = 0.05
    scale_fn: str = "tanh"  # sigmoid | softclamp | tanh


@dataclass
class FlowConfig:
    """A Glow or RealNVP model. ``steps`` is K (Glow) or the couplings per mask type per scale
    (RealNVP, 3 in the paper); ``scale_fn`` / ``affine_clamp`` / ``affine_form`` /
    ``net_actnorm`` shape Glow's affine couplings (see :mod:`glow_lightning.flows.coupling`);
    ``prior_scale`` / ``prior_clamp`` the learned priors' log-scale (see
    :mod:`glow_lightning.flows.priors`)."""

    architecture: str = "glow"  # glow | realnvp
    levels: int = 3
    steps: int = 32
    hidden_channels: int = 512
    coupling: str = "affine"  # additive | affine
    scale_fn: str = "sigmoid"  # sigmoid (reference) | softclamp | tanh
    affine_clamp: float = 0.0  # sigmoid: soft bound (-clamp, 0), 0 = reference; softclamp: bound
    affine_form: str = "shift_scale"  # (x + t)·e^s (reference) | scale_shift: x·e^s + t
    net_actnorm: bool = True  # ActNorm after the hidden convs of Glow's coupling nets
    permutation: str = "invconv_lu"  # reverse | shuffle | invconv | invconv_lu
    learn_top: bool = True
    split_prior: bool = True
    prior_scale: str = "free"  # free (reference) | softclamp: clamp·tanh(logs/clamp)
    prior_clamp: float = 3.0  # bound of the learned priors' log-scale under softclamp
    memory_saving: bool = False
    net_dtype: str = "float32"  # float32 | bfloat16: coupling networks only (flow stays exact)
    realnvp: RealNVPConfig = field(default_factory=RealNVPConfig)


def _choice(name: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; allowed values: {', '.join(allowed)}")


def _positive(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _number(name: str, value: Any, low: float, high: float = float("inf")) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value < high:
        bound = f">= {low:g}" if high == float("inf") else f"in [{low:g}, {high:g})"
        raise ValueError(f"{name} must be a number {bound}, got {value!r}")


def check(cfg: FlowConfig, image_shape: Sequence[int], num_classes: int = 0) -> None:
    """Raise a ValueError naming the offending key and the allowed values."""
    _choice("architecture", cfg.architecture, ARCHITECTURES)
    _choice("coupling", cfg.coupling, COUPLINGS)
    _choice("permutation", cfg.permutation, PERMUTATIONS)
    _choice("scale_fn", cfg.scale_fn, SCALE_FNS)
    _choice("affine_form", cfg.affine_form, AFFINE_FORMS)
    _choice("net_dtype", cfg.net_dtype, NET_DTYPES)
    _choice("prior_scale", cfg.prior_scale, PRIOR_SCALES)
    _choice("realnvp.flow_norm", cfg.realnvp.flow_norm, FLOW_NORMS)
    _choice("realnvp.scale_fn", cfg.realnvp.scale_fn, SCALE_FNS)
    for name in ("levels", "steps", "hidden_channels"):
        _positive(name, getattr(cfg, name))
    _positive("realnvp.blocks", cfg.realnvp.blocks)
    _number("affine_clamp", cfg.affine_clamp, 0.0)
    _number("prior_clamp", cfg.prior_clamp, 0.0)
    _number("realnvp.logit_alpha", cfg.realnvp.logit_alpha, 0.0, 0.5)
    if cfg.scale_fn == "softclamp" and not cfg.affine_clamp:
        raise ValueError("scale_fn=softclamp needs affine_clamp > 0 (the bound of the log-scale, "
                         "e.g. 2)")
    if cfg.prior_scale == "softclamp" and not cfg.prior_clamp:
        raise ValueError("prior_scale=softclamp needs prior_clamp > 0 (the bound of the priors' "
                         "log-scale, e.g. 3)")
    if not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError("num_classes must be 0 (unconditional) or a positive int, "
                         f"got {num_classes!r}")
    _check_shape(cfg, image_shape)


def _check_shape(cfg: FlowConfig, image_shape: Sequence[int]) -> None:
    if len(image_shape) != 3 or any(int(s) < 1 for s in image_shape):
        raise ValueError(f"image_shape must be (C, H, W) with positive sizes, got "
                         f"{tuple(image_shape)!r}")
    glow = cfg.architecture == "glow"
    factor = 2 ** (cfg.levels if glow else cfg.levels - 1)
    c, h, w = (int(s) for s in image_shape)
    if h % factor or w % factor:
        raise ValueError(f"image_shape spatial size {h}x{w} must be divisible by {factor} "
                         f"(2^levels for {cfg.architecture}) with levels={cfg.levels}; "
                         "pad or resize the images, or use fewer levels")


def replace(cfg: FlowConfig, **fields: Any) -> FlowConfig:
    """``cfg`` with ``fields`` replaced; ``realnvp`` may be a dict of its fields. Unknown names
    raise a ValueError listing the known ones."""
    known = {f.name for f in dataclasses.fields(FlowConfig)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"unknown flow setting(s) {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(known))}")
    nested = fields.get("realnvp")
    if isinstance(nested, dict):
        fields["realnvp"] = dataclasses.replace(cfg.realnvp, **nested)
    return dataclasses.replace(cfg, **fields)
