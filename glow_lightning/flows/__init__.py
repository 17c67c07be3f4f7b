"""Pure-PyTorch normalizing flows on images: Glow and RealNVP. Never imports Lightning.

Direction is data → noise: every layer is an :class:`InvertibleLayer` with
``forward(x) -> (y, logdet)`` and ``inverse(y) -> (x, logdet)``, each ``logdet`` of shape (B,)
and of its own direction. A model is described by a
:class:`~glow_lightning.flows.spec.FlowConfig`, checked by :func:`check` and built by
:func:`build_flow`.
"""

from glow_lightning.flows.actnorm import ActNorm, data_init, is_initialised
from glow_lightning.flows.base import InvertibleLayer
from glow_lightning.flows.builder import build_flow, check, parameter_count, scale_parameters
from glow_lightning.flows.compile import compile_flow
from glow_lightning.flows.coupling import (
    ChannelMask,
    CheckerboardMask,
    Coupling,
    SigmoidScale,
    SoftClampScale,
    TanhScale,
)
from glow_lightning.flows.glow import Glow, GlowStep, glow_coupling
from glow_lightning.flows.multiscale import FlowOutput, MultiScaleFlow, Split
from glow_lightning.flows.normalization import BatchNormFlow, Logit
from glow_lightning.flows.permutations import InvConv1x1, InvConv1x1LU, Reverse, Shuffle
from glow_lightning.flows.realnvp import RealNVP, realnvp_coupling
from glow_lightning.flows.sequential import FlowSequence
from glow_lightning.flows.spec import FlowConfig, RealNVPConfig
from glow_lightning.flows.squeeze import Squeeze

__all__ = [
    "ActNorm", "BatchNormFlow", "ChannelMask", "CheckerboardMask", "Coupling", "FlowConfig",
    "FlowOutput", "FlowSequence", "Glow", "GlowStep", "InvConv1x1", "InvConv1x1LU",
    "InvertibleLayer", "Logit",
    "MultiScaleFlow", "RealNVP", "RealNVPConfig", "Reverse", "Shuffle", "SigmoidScale",
    "SoftClampScale", "Split", "Squeeze", "TanhScale", "build_flow", "check", "compile_flow",
    "data_init", "glow_coupling", "is_initialised", "parameter_count", "realnvp_coupling",
    "scale_parameters",
]
