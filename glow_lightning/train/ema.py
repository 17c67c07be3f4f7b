"""Polyak (exponential moving) averaging of a flow's weights, used for evaluation and sampling."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA(nn.Module):
    """Holds ``shadow``, a copy of the model whose parameters track ``decay``-averages.

    It is a submodule of the LightningModule, so checkpoints carry it. Buffers (e.g. ActNorm's
    ``initialized``) are copied, not averaged. The first update copies the weights exactly, so the
    average starts from the data-initialised model rather than the random init.
    """

    num_updates: torch.Tensor

    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__()
        self.decay = decay
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)
        self.register_buffer("num_updates", torch.tensor(0, dtype=torch.long))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        weight = 1.0 if int(self.num_updates) == 0 else 1.0 - self.decay
        for shadow, live in zip(self.shadow.parameters(), model.parameters(), strict=True):
            shadow.lerp_(live.detach(), weight)
        for shadow_b, live_b in zip(self.shadow.buffers(), model.buffers(), strict=True):
            shadow_b.copy_(live_b)
        self.num_updates += 1
