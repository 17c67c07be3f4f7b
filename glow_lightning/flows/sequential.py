"""Composition of flow layers, with optional memory-saving backprop.

Memory saving (Gomez et al. 2017's reversible-residual trick applied to flows; also used by the
Glow reference code's ``memory_saving_gradients``): the forward pass keeps only the sequence's
output; backward walks the layers in reverse, recomputing each layer's input with its exact
inverse and re-running that single layer under autograd. Activation memory is then constant in the
number of layers instead of linear, at the cost of one extra forward and inverse per layer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, cast

import torch
from torch import Tensor, nn

from glow_lightning.flows.coupling import Rebuilt
from glow_lightning.flows.normalization import frozen_statistics


class FlowLayer(Protocol):
    """What every flow layer provides: ``layer(x) -> (z, logdet)`` and its inverse.

    Optional, for memory-saving backprop: ``rebuild(z) -> Rebuilt`` (recompute the forward from
    the output with fewer evaluations than inverse + forward, as couplings do) and
    ``parts() -> list`` (a composite layer, e.g. a Glow step, re-run one part at a time).
    """

    def __call__(self, x: Tensor) -> tuple[Tensor, Tensor]: ...

    def inverse(self, z: Tensor) -> Tensor: ...


class FlowSequence(nn.Module):
    """Layers applied in order: ``forward`` sums log-dets, ``inverse`` runs them backwards."""

    def __init__(self, layers: Sequence[nn.Module], memory_saving: bool = False) -> None:
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

    def inverse(self, z: Tensor) -> Tensor:
        for layer in reversed(self.layers):
            z = cast(FlowLayer, layer).inverse(z)
        return z

    def units(self) -> Iterator[Any]:
        """The layers as memory-saving backprop re-runs them, last first."""
        for layer in reversed(self.layers):
            parts = getattr(layer, "parts", None)
            yield from reversed(parts()) if parts is not None else (layer,)


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


def _rebuild(unit: Any, z: Tensor) -> Rebuilt:
    """Input leaves of ``unit`` given its output ``z``, and its forward from them."""
    rebuild = getattr(unit, "rebuild", None)
    if rebuild is not None:  # couplings: one net evaluation instead of two
        return cast(Rebuilt, rebuild(z))
    with torch.no_grad():
        x = unit.inverse(z)
    x = x.detach().requires_grad_(True)
    z_again, logdet = unit(x)
    return Rebuilt((x,), lambda leaf: leaf, z_again, logdet)


def _unit_backward(unit: Any, z: Tensor, grad_z: Tensor, grad_logdet: Tensor,
                   index: dict[int, int],
                   param_grads: list[Tensor | None]) -> tuple[Tensor, Tensor]:
    """Reconstruct one unit's input from its output, re-run it under autograd, backprop it alone.
    Returns the gradient w.r.t. the unit's input and the (detached) input itself."""
    params = [p for p in unit.parameters() if id(p) in index]
    with torch.enable_grad():
        r = _rebuild(unit, z)
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
