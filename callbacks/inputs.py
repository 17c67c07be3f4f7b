"""What the callbacks feed the flow: fixed real test images, fixed noise, a readiness check."""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor

from glow_lightning.flows import ActNorm
from glow_lightning.module import GlowModule
from glow_lightning.ops import bins_to_float


def as_glow(pl_module: L.LightningModule) -> GlowModule:
    """The module as a :class:`GlowModule` (the callbacks need its evaluation flow and n_bits)."""
    if not isinstance(pl_module, GlowModule):
        raise TypeError(f"glow_lightning callbacks observe a GlowModule, got {type(pl_module)}")
    return pl_module


def flow_ready(flow: torch.nn.Module) -> bool:
    """True once every ActNorm holds its data-dependent init. Before that, a forward pass would
    initialise ActNorm from the callback's images, so callbacks leave the flow alone."""
    return all(bool(m.initialized) for m in flow.modules() if isinstance(m, ActNorm))


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
    ref = next(flow.parameters())
    x = bins_to_float(bins, n_bits, dtype=ref.dtype) + 0.5 / 2**n_bits  # (B, C, H, W)
    return x.to(ref.device)
