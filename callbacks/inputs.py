"""What the callbacks feed the flow: fixed real test images, fixed noise, a readiness check."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

import lightning as L
import torch
from torch import Tensor

from glow_lightning.flows import MultiScaleFlow, is_initialised
from glow_lightning.ops import bin_centres


@runtime_checkable
class FlowModule(Protocol):
    """What the callbacks read of the module they observe (``glow_lightning.train.GlowModule``):
    the bits per pixel, the evaluation flow (EMA weights when enabled) and a context that yields
    it in eval mode. Callbacks depend on this, not on the training code."""

    n_bits: int

    def eval_flow(self) -> MultiScaleFlow: ...

    def sampling(self) -> AbstractContextManager[MultiScaleFlow]: ...


def as_glow(pl_module: L.LightningModule) -> FlowModule:
    """The module as a :class:`FlowModule` (the callbacks need its evaluation flow and n_bits)."""
    if not isinstance(pl_module, FlowModule):
        raise TypeError(f"glow_lightning callbacks observe a flow module (n_bits, eval_flow, "
                        f"sampling), got {type(pl_module).__name__}")
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
