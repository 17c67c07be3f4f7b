"""Composition of flow layers, with optional memory-saving backprop.

Memory saving (Gomez et al. 2017's reversible-residual trick applied to flows; also used by the
Glow reference code's ``memory_saving_gradients``): the forward pass keeps only the sequence's
output; backward walks the layers in reverse, recomputing each layer's input with its exact
inverse and re-running that single layer under autograd. Activation memory is then constant in the
number of layers instead of linear, at the cost of one extra forward and inverse per layer.

A sequence ``f = f_n ∘ … ∘ f_1`` has ``log|det ∂f/∂x| = Σ_i log|det ∂f_i/∂x_i|`` (the chain rule),
and its inverse runs the layers backwards summing their inverse log-dets.

>>> from glow_lightning.flows.squeeze import Squeeze
>>> from glow_lightning.flows.permutations import Reverse
>>> seq = FlowSequence([Squeeze(), Reverse(4)])
>>> x = torch.arange(4.0).view(1, 1, 2, 2)
>>> y, logdet = seq(x)
>>> y.flatten().tolist(), torch.equal(seq.inverse(y)[0], x), logdet.tolist()
([3.0, 2.0, 1.0, 0.0], True, [0.0])
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from glow_lightning.flows.base import InvertibleLayer
from glow_lightning.flows.normalization import frozen_statistics


class FlowSequence(InvertibleLayer):
    """Layers applied in order: ``forward`` sums log-dets, ``inverse`` runs them backwards."""

    def __init__(self, layers: Sequence[InvertibleLayer], memory_saving: bool = False) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.memory_saving = memory_saving

    def forward_plain(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logdets = []
        for layer in self.layers:
            x, ld = layer(x)
            logdets.append(ld)
        return x, torch.stack(logdets).sum(0)  # one sum, not one add per layer (both passes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.memory_saving and torch.is_grad_enabled() and self.training:
            params = [p for p in self.parameters() if p.requires_grad]
            z, logdet = _InvertibleBackprop.apply(self, x, *params)
            return z, logdet
        return self.forward_plain(x)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        logdets = []
        for layer in reversed(self.invertible()):
            y, ld = layer.inverse(y)
            logdets.append(ld)
        return y, torch.stack(logdets).sum(0)

    def units(self) -> Iterator[InvertibleLayer]:
        """The layers as memory-saving backprop re-runs them, last first."""
        for layer in reversed(self.invertible()):
            yield from reversed(layer.parts())

    def invertible(self) -> list[InvertibleLayer]:
        """The layers, typed as what the constructor took."""
        return cast(list[InvertibleLayer], list(self.layers))


class _InvertibleBackprop(torch.autograd.Function):
    """Backward by reconstruction: see the module docstring."""

    @staticmethod
    def forward(ctx: Any, seq: FlowSequence, x: Tensor, *params: Tensor) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            z, logdet = seq.forward_plain(x)
        ctx.seq = seq
        ctx.params = params
        ctx.save_for_backward(z)
        return z, logdet

    @staticmethod
    def backward(ctx: Any, grad_z: Tensor, grad_logdet: Tensor) -> tuple[Tensor | None, ...]:
        (z,) = ctx.saved_tensors
        index = {id(p): i for i, p in enumerate(ctx.params)}
        param_grads: list[Tensor | None] = [None] * len(ctx.params)
        with frozen_statistics(ctx.seq):  # the forward already counted this batch
            for unit in ctx.seq.units():
                grad_z, z = _unit_backward(unit, z, grad_z, grad_logdet, index, param_grads)
        return (None, grad_z, *param_grads)


def _unit_backward(unit: InvertibleLayer, z: Tensor, grad_z: Tensor, grad_logdet: Tensor,
                   index: dict[int, int],
                   param_grads: list[Tensor | None]) -> tuple[Tensor, Tensor]:
    """Reconstruct one unit's input from its output, re-run it under autograd, backprop it alone.
    Returns the gradient w.r.t. the unit's input and the (detached) input itself."""
    params = [p for p in unit.parameters() if id(p) in index]
    with torch.enable_grad():
        r = unit.rebuild(z)
        pairs = [(t, g) for t, g in ((r.z, grad_z), (r.logdet, grad_logdet)) if t.requires_grad]
        grads = torch.autograd.grad([t for t, _ in pairs], (*r.leaves, *params),
                                    [g for _, g in pairs], allow_unused=True)
    n = len(r.leaves)
    for p, g in zip(params, grads[n:], strict=True):
        if g is not None:
            i = index[id(p)]
            prev = param_grads[i]
            param_grads[i] = g if prev is None else prev + g
    grad_x = [g if g is not None else torch.zeros_like(x)
              for g, x in zip(grads[:n], r.leaves, strict=True)]
    with torch.no_grad():
        return r.join(*grad_x), r.join(*r.leaves).detach()
