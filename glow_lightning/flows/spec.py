"""What a flow is made of, as data: :class:`FlowConfig` (and RealNVP's own :class:`RealNVPConfig`).

Plain dataclasses with plain defaults (the paper's CIFAR-10 Glow); ``glow_lightning.config`` uses
them as the ``model`` section of an experiment, and :func:`~glow_lightning.flows.build_flow`
checks and reads them. Every variant is a named string, one of the names of its registry (beside
the classes it names, e.g. ``permutations.PERMUTATIONS``); :func:`~glow_lightning.flows.check`
rejects anything else with one line naming the key and the allowed values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from glow_lightning.errors import ConfigError

# what an unset (None) coupling setting means for each architecture: Glow's reference coupling
# (x + t)·e^s with s = log sigmoid(h + 2), RealNVP's x·e^s + t with s = scale·tanh(h)
OWN_SETTINGS = {"glow": {"scale_fn": "sigmoid", "affine_form": "shift_scale"},
                "realnvp": {"scale_fn": "tanh", "affine_form": "scale_shift"}}


@dataclass
class RealNVPConfig:
    """RealNVP's own settings (Dinh et al. 2017, Sec. 3-4 and the CIFAR-10 setting of Sec. 4.1).

    ``blocks`` residual blocks of ``hidden_channels`` feature maps per coupling network (the
    maps double after every squeeze); ``weight_norm`` and ``batch_norm`` inside those networks;
    ``flow_norm``: the batch-norm flow layer after every coupling (running statistics in eval
    mode), ActNorm instead, or nothing; ``logit_alpha``: logit preprocessing
    ``logit(α + (1 − 2α)·p)`` of pixels ``p`` in [0, 1] as the first flow layer (0: none).
    The couplings' scale function is the model's ``scale_fn`` (unset: the paper's ``tanh``).
    """

    blocks: int = 8
    weight_norm: bool = True
    batch_norm: bool = True
    flow_norm: str = "batchnorm"  # batchnorm | actnorm | none
    logit_alpha: float = 0.05


@dataclass
class FlowConfig:
    """A Glow or RealNVP model. ``steps`` is K (Glow) or the couplings per mask type per scale
    (RealNVP, 3 in the paper); ``scale_fn`` / ``affine_clamp`` / ``affine_form`` shape both
    architectures' affine couplings (unset: the architecture's own, ``OWN_SETTINGS``; RealNVP
    has only ``scale_shift``), ``net_actnorm`` Glow's nets (see
    :mod:`glow_lightning.flows.coupling`).;
    ``prior_scale`` / ``prior_clamp`` the learned priors' log-scale (see
    :mod:`glow_lightning.flows.priors`)."""

    architecture: str = "glow"  # glow | realnvp
    levels: int = 3
    steps: int = 32
    hidden_channels: int = 512
    coupling: str = "affine"  # additive | affine
    scale_fn: str | None = None  # sigmoid | softclamp | tanh; None: glow sigmoid, realnvp tanh
    affine_clamp: float = 0.0  # sigmoid: soft bound (-clamp, 0), 0 = reference; softclamp: bound
    affine_form: str | None = None  # shift_scale: (x + t)·e^s | scale_shift: x·e^s + t
    net_actnorm: bool = True  # ActNorm after the hidden convs of Glow's coupling nets
    permutation: str = "invconv_lu"  # reverse | shuffle | invconv | invconv_lu
    learn_top: bool = True
    split_prior: bool = True
    prior_scale: str = "free"  # free (reference) | softclamp: clamp·tanh(logs/clamp)
    prior_clamp: float = 3.0  # bound of the learned priors' log-scale under softclamp
    memory_saving: bool = False
    net_dtype: str = "float32"  # float32 | bfloat16: coupling networks only (flow stays exact)
    realnvp: RealNVPConfig = field(default_factory=RealNVPConfig)


def setting(cfg: FlowConfig, key: str, architecture: str) -> str:
    """``cfg``'s ``key`` (``scale_fn`` or ``affine_form``) as ``architecture``'s couplings read
    it: the value, or when unset the architecture's own (``OWN_SETTINGS``)."""
    value = getattr(cfg, key)
    return str(value) if value is not None else OWN_SETTINGS[architecture][key]


def replace(cfg: FlowConfig, **fields: Any) -> FlowConfig:
    """``cfg`` with ``fields`` replaced; ``realnvp`` may be a dict of its fields. Unknown names
    raise a ConfigError listing the known ones."""
    known = {f.name for f in dataclasses.fields(FlowConfig)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ConfigError(f"unknown flow setting(s) {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(known))}")
    nested = fields.get("realnvp")
    if isinstance(nested, dict):
        fields["realnvp"] = dataclasses.replace(cfg.realnvp, **nested)
    return dataclasses.replace(cfg, **fields)


def from_fields(fields: Mapping[str, Any] | None) -> FlowConfig:
    """The :class:`FlowConfig` of plain values (a checkpoint's ``model`` hyperparameters).

    Checkpoints written before ``scale_fn`` became one key for both architectures are upgraded
    (:func:`upgrade_fields`).
    """
    return replace(FlowConfig(), **upgrade_fields(fields or {}))


def upgrade_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Model fields as written before ``scale_fn`` was one key for both architectures: those
    carry ``realnvp.scale_fn``, and RealNVP ignored the Glow ``scale_fn`` and ``affine_form``;
    RealNVP's own value moves to ``scale_fn`` and the ignored ones are dropped."""
    fields = dict(fields)
    nested = dict(fields.get("realnvp") or {})
    if "scale_fn" not in nested:
        return fields
    legacy = nested.pop("scale_fn")
    fields["realnvp"] = nested
    if fields.get("architecture") == "realnvp":
        fields.update(scale_fn=legacy, affine_form=None)
    return fields


def to_fields(cfg: FlowConfig) -> dict[str, Any]:
    """``cfg``'s :class:`FlowConfig` fields as plain values (what a checkpoint stores); the
    fields of a subclass (the experiment's ``ModelConfig``) are left out."""
    values = dataclasses.asdict(cfg)
    return {f.name: values[f.name] for f in dataclasses.fields(FlowConfig)}
