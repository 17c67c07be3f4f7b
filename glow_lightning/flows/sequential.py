"""Composition of flow layers, with optional memory-saving backprop.

Memory saving (Gomez et al. 2017's reversible-residual trick applied to flows; also used by the
Glow reference code's ``memory_saving_gradients``): the forward pass keeps only the sequence's
output; backward walks the layers in reverse, recomputing each layer's input with its exact
inverse and re-running that single layer under autograd. Activation memory is then constant in the
number of layers instead of linear, at the cost of one extra forward and inverse per layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, cast

import torch
from torch import Tensor, nn

from glow_lightning.flows import fused
from glow_lightning.flows.actnorm import ActNorm
from glow_lightning.flows.permutations import _InvConvBase


class FlowLayer(Protocol):
    """What every flow layer provides: ``layer(x, cond) -> (z, logdet)`` and its inverse."""

    def __call__(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]: ...

    def inverse(self, z: Tensor, cond: Tensor | None = None) -> Tensor: ...


Group = FlowLayer | tuple[ActNorm, _InvConvBase]


class FlowSequence(nn.Module):
    """Layers applied in order: ``forward`` sums log-dets, ``inverse`` runs them backwards.

    An initialised ActNorm directly followed by a 1×1 convolution runs as one folded affine map
    (:mod:`glow_lightning.flows.fused`): the same function and log-det with fewer passes over the
    activations. The layers and their parameters stay as they are.
    """

    def __init__(self, layers: Sequence[nn.Module], memory_saving: bool = False) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.memory_saving = memory_saving

    def _groups(self, reverse: bool = False) -> list[Group]:
        """The layers in order, with each fusable (ActNorm, 1×1 conv) pair as one group."""
        layers, groups, i = list(self.layers), list[Group](), 0
        while i < len(layers):
            a, b = layers[i], layers[i + 1] if i + 1 < len(layers) else None
            if isinstance(a, ActNorm) and isinstance(b, _InvConvBase) and a.is_initialized:
                groups.append((a, b))
                i += 2
            else:
                groups.append(cast(FlowLayer, a))
                i += 1
        return groups[::-1] if reverse else groups

    def forward_plain(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        logdets = []
        for group in self._groups():
            x, ld = fused.forward(*group, x) if isinstance(group, tuple) else group(x, cond)
            logdets.append(ld)
        return x, torch.stack(logdets).sum(0)  # one sum, not one add per layer (both passes)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.memory_saving and torch.is_grad_enabled() and self.training:
            params = [p for p in self.parameters() if p.requires_grad]
            z, logdet = _InvertibleBackprop.apply(self, x, *params)
            return z, logdet
        return self.forward_plain(x, cond)

    def inverse(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        for group in self._groups(reverse=True):
            z = fused.inverse(*group, z) if isinstance(group, tuple) else group.inverse(z, cond)
        return z


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
        for layer in reversed(ctx.seq.layers):
            grad_z, z = _layer_backward(layer, z, grad_z, grad_logdet, index, param_grads)
        return (None, grad_z, *param_grads)


def _rebuild(layer: nn.Module, z: Tensor) -> tuple[tuple[Tensor, ...], tuple[Tensor, Tensor]]:
    """Input leaves of ``layer`` given its output ``z``, and ``layer``'s forward from them."""
    rebuild = getattr(layer, "rebuild", None)
    if rebuild is not None:  # couplings: one net evaluation instead of two
        return rebuild(z)
    with torch.no_grad():
        x = cast(FlowLayer, layer).inverse(z)
    x = x.detach().requires_grad_(True)
    return (x,), layer(x)


def _layer_backward(layer: nn.Module, z: Tensor, grad_z: Tensor, grad_logdet: Tensor,
                    index: dict[int, int],
                    param_grads: list[Tensor | None]) -> tuple[Tensor, Tensor]:
    """Reconstruct one layer's input from its output, re-run it under autograd, backprop it alone.
    Returns the gradient w.r.t. the layer's input and the (detached) input itself."""
    params = [p for p in layer.parameters() if id(p) in index]
    with torch.enable_grad():
        leaves, (z, logdet) = _rebuild(layer, z)
        pairs = [(t, g) for t, g in ((z, grad_z), (logdet, grad_logdet)) if t.requires_grad]
        grads = torch.autograd.grad([t for t, _ in pairs], (*leaves, *params),
                                    [g for _, g in pairs], allow_unused=True)
    n = len(leaves)
    for p, g in zip(params, grads[n:], strict=True):
        if g is not None:
            i = index[id(p)]
            prev = param_grads[i]
            param_grads[i] = g if prev is None else prev + g
    grad_x = [g if g is not None else torch.zeros_like(x)
              for g, x in zip(grads[:n], leaves, strict=True)]
    x = leaves[0] if n == 1 else torch.cat(leaves, dim=1)
    return (grad_x[0] if n == 1 else torch.cat(grad_x, dim=1)), x.detach()
