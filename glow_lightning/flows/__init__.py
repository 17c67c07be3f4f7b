"""Pure-PyTorch normalizing flows on images: Glow and RealNVP. Never imports Lightning.

Direction is data → noise: every layer has ``forward(x, cond=None) -> (z, logabsdet)`` with
``logabsdet`` of shape (B,) and ``inverse(z, cond=None) -> x``.
"""

from glow_lightning.flows.actnorm import ActNorm, data_init
from glow_lightning.flows.builder import build_flow, validate
from glow_lightning.flows.compile import compile_flow
from glow_lightning.flows.coupling import AdditiveCoupling, AffineCoupling
from glow_lightning.flows.glow import Glow
from glow_lightning.flows.masked_coupling import ChannelCoupling, CheckerboardCoupling
from glow_lightning.flows.multiscale import FlowOutput, MultiScaleFlow, Split
from glow_lightning.flows.permutations import InvConv1x1, InvConv1x1LU, Reverse, Shuffle
from glow_lightning.flows.realnvp import RealNVP
from glow_lightning.flows.sequential import FlowSequence
from glow_lightning.flows.squeeze import Squeeze

__all__ = [
    "ActNorm", "AdditiveCoupling", "AffineCoupling", "ChannelCoupling", "CheckerboardCoupling",
    "FlowOutput", "FlowSequence", "Glow", "InvConv1x1", "InvConv1x1LU", "MultiScaleFlow",
    "RealNVP", "Reverse", "Shuffle", "Split", "Squeeze", "build_flow", "compile_flow", "data_init",
    "validate",
]
