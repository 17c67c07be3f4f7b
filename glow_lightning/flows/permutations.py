"""Channel permutations between couplings (Glow, Sec. 3.2 and Figure 3 ablation).

``Reverse`` and ``Shuffle`` are fixed permutations (log-det 0); ``InvConv1x1`` is the learned
invertible 1×1 convolution with a dense weight (log-det ``H·W·log|det W|``) and ``InvConv1x1LU``
its LU parameterisation ``W = P·L·(U + diag(sign(s)·exp(log|s|)))`` whose log-det costs O(C).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def random_rotation(num_channels: int, generator: torch.Generator | None = None) -> Tensor:
    """A random orthogonal (C, C) matrix, the paper's initialisation of the 1×1 conv."""
    q, _ = torch.linalg.qr(torch.randn(num_channels, num_channels, generator=generator))
    return q


class _FixedPermutation(nn.Module):
    perm: Tensor
    inv_perm: Tensor

    def __init__(self, perm: Tensor) -> None:
        super().__init__()
        self.register_buffer("perm", perm)
        self.register_buffer("inv_perm", torch.argsort(perm))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x[:, self.perm], x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor) -> Tensor:
        return z[:, self.inv_perm]


class Reverse(_FixedPermutation):
    """Reverse the channel order (RealNVP's alternation)."""

    def __init__(self, num_channels: int) -> None:
        super().__init__(torch.arange(num_channels - 1, -1, -1))


class Shuffle(_FixedPermutation):
    """A fixed random channel permutation, drawn once at construction."""

    def __init__(self, num_channels: int, generator: torch.Generator | None = None) -> None:
        super().__init__(torch.randperm(num_channels, generator=generator))


class InvConv(nn.Module):
    """A learned invertible 1×1 convolution (the base of the dense and LU forms): subclasses
    give ``weight_and_logdet()``; the inverse weight is cached outside training.

    The cache is keyed by the weight itself (a (C, C) comparison, far cheaper than the inverse),
    not by parameter version counters: fused optimisers (``Adam(fused=True)``) update parameters
    in place without bumping ``_version``, and a version-keyed cache would then hand out the
    inverse of an old weight.
    """

    def __init__(self) -> None:
        super().__init__()
        self._cache: tuple[Tensor, Tensor] | None = None  # (weight, its inverse)

    def weight_and_logdet(self) -> tuple[Tensor, Tensor]:  # (C, C), scalar
        raise NotImplementedError

    def inverse_weight(self) -> Tensor:
        """``W⁻¹`` (C, C); cached by the weight's value when no gradient is needed."""
        weight = self.weight_and_logdet()[0]
        if self.training or torch.is_grad_enabled():
            return torch.linalg.inv(weight)
        cached = self._cache
        if cached is None or not torch.equal(cached[0], weight):
            cached = self._cache = (weight.clone(), torch.linalg.inv(weight))
        return cached[1]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        weight, logdet = self.weight_and_logdet()  # computed once per call
        z = F.conv2d(x, weight[:, :, None, None])
        return z, (logdet * x.shape[2] * x.shape[3]).expand(x.shape[0])

    def inverse(self, z: Tensor) -> Tensor:
        w_inv = self.inverse_weight()
        return F.conv2d(z, w_inv.unsqueeze(-1).unsqueeze(-1))


class InvConv1x1(InvConv):
    """Dense invertible 1×1 convolution, initialised to a random rotation."""

    def __init__(self, num_channels: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(random_rotation(num_channels, generator))

    def weight_and_logdet(self) -> tuple[Tensor, Tensor]:
        return self.weight, torch.linalg.slogdet(self.weight)[1]


class InvConv1x1LU(InvConv):
    """LU-decomposed 1×1 convolution: P and sign(s) fixed buffers, L, U, log|s| learned."""

    p: Tensor
    sign_s: Tensor
    lower_mask: Tensor
    eye: Tensor

    def __init__(self, num_channels: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        p, lower, upper = torch.linalg.lu(random_rotation(num_channels, generator))
        s = torch.diagonal(upper)
        self.register_buffer("p", p)
        self.register_buffer("sign_s", torch.sign(s))
        self.register_buffer("lower_mask", torch.tril(torch.ones(num_channels, num_channels), -1))
        self.register_buffer("eye", torch.eye(num_channels))
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(torch.log(torch.abs(s)))

    def weight_and_logdet(self) -> tuple[Tensor, Tensor]:
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.p @ lower @ upper, self.log_s.sum()
