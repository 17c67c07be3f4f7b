"""The contract of every invertible layer: :class:`InvertibleLayer`.

A layer is a bijection ``f`` with a tractable Jacobian (Dinh et al. 2017, Sec. 3.1). Direction
is data → noise; both directions return the log-determinant of their own Jacobian, per sample::

    forward:  y = f(x),       log|det ∂f/∂x|       (B,)
    inverse:  x = f⁻¹(y),     log|det ∂f⁻¹/∂y| = −log|det ∂f/∂x|   (B,)

so a chain's log-det is the sum of its layers' (change of variables). Memory-saving backprop
(:mod:`glow_lightning.flows.sequential`) re-runs a layer from its output through :meth:`rebuild`
and :meth:`parts`, which every layer inherits and may specialise.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn


class Rebuilt(NamedTuple):
    """A layer's input leaves given its output, and its forward recomputed from them under
    autograd; ``join`` assembles the input (and its gradient) from the leaves."""

    leaves: tuple[Tensor, ...]
    join: Callable[..., Tensor]
    z: Tensor
    logdet: Tensor


def _only(leaf: Tensor) -> Tensor:
    return leaf


class InvertibleLayer(nn.Module, ABC):
    """A bijection on (B, ...) tensors: ``forward(x) -> (y, logdet)``, ``inverse(y) -> (x,
    logdet)``, each ``logdet`` of shape (B,) and of its own direction (the inverse's is minus the
    forward's at the same point).

    >>> import math
    >>> class Double(InvertibleLayer):
    ...     def forward(self, x):
    ...         return 2 * x, torch.full((x.shape[0],), x[0].numel() * math.log(2))
    ...     def inverse(self, y):
    ...         return y / 2, torch.full((y.shape[0],), -y[0].numel() * math.log(2))
    >>> rebuilt = Double().rebuild(torch.ones(1, 3))  # the input, recomputed from the output
    >>> rebuilt.leaves[0].tolist(), round(float(rebuilt.logdet[0]), 4)
    ([[0.5, 0.5, 0.5]], 2.0794)
    """

    @abstractmethod
    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(f(x), log|det ∂f/∂x|)``; the log-det has shape (B,)."""

    @abstractmethod
    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """``(f⁻¹(y), log|det ∂f⁻¹/∂y|)``; the log-det has shape (B,)."""

    def rebuild(self, y: Tensor) -> Rebuilt:
        """For memory-saving backprop: the input ``x`` of output ``y`` (by inversion, without
        gradient) and the forward re-run from it under autograd. Layers that can do it with
        less work (couplings: one net evaluation) override it."""
        with torch.no_grad():
            x = self.inverse(y)[0]
        x = x.detach().requires_grad_(True)
        y_again, logdet = self(x)
        return Rebuilt((x,), _only, y_again, logdet)

    def parts(self) -> list[InvertibleLayer]:
        """The units memory-saving backprop re-runs one at a time, first to last: the layer
        itself, or for a composite (a Glow step) its pieces."""
        return [self]


def zero_logdet(x: Tensor) -> Tensor:
    """The log-det of a volume-preserving map on ``x`` (B, ...): zeros (B,)."""
    return x.new_zeros(x.shape[0])
