"""What the callbacks feed the flow: fixed real test images, fixed noise, a readiness check."""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor

from glow_lightning.flows import is_initialised
from glow_lightning.module import GlowModule
from glow_lightning.ops import bin_centres


def as_glow(pl_module: L.LightningModule) -> GlowModule:
    """The module as a :class:`GlowModule` (the callbacks need its evaluation flow and n_bits)."""
    if not isinstance(pl_module, GlowModule):
        raise TypeError(f"glow_lightning callbacks observe a GlowModule, got {type(pl_module)}")
    return pl_module


def flow_ready(flow: torch.nn.Module) -> bool:
    """True once every ActNorm holds its data-dependent init. Before that, a forward pass would
    initialise ActNorm from the callback's images, so callbacks leave the flow alone."""
    return is_initialised(flow)


def fixed_generator(flow: torch.nn.Module, seed: int) -> torch.Generator:
    """A fresh generator on the flow's device seeded with ``seed``: the same noise every call."""
    device = next(flow.parameters()).device
    return torch.Generator(device=device).manual_seed(seed)


def example_inputs(trainer: L.Trainer, flow: torch.nn.Module, n_bits: int, n: int) -> Tensor | None:
    """The first ``n`` test images in flow space (B, C, H, W) at bin centres (deterministic), on
    the flow's device and dtype; None when the datamodule offers no ``example_images``."""
    datamodule = getattr(trainer, "datamodule", None)
    if datamodule is None or not hasattr(datamodule, "example_images"):
        return None
    bins, _ = datamodule.example_images(n, split="test")
    return bin_centres(bins, n_bits, like=next(flow.parameters()))  # (B, C, H, W)
