"""Channel permutations between couplings (Glow, Sec. 3.2 and Figure 3 ablation).

``Reverse`` and ``Shuffle`` are fixed permutations (log-det 0); ``InvConv1x1`` is the learned
invertible 1×1 convolution with a dense weight (log-det ``H·W·log|det W|``) and ``InvConv1x1LU``
its LU parameterisation ``W = P·L·(U + diag(sign(s)·exp(log|s|)))`` whose log-det costs O(C).
Per pixel ``y = W x``; log-det ``H·W·log|det W|``, and the inverse ``x = W⁻¹ y`` has its negative.
``PERMUTATIONS`` names each of them for the config (``model.permutation``).

>>> conv = InvConv1x1(3, generator=torch.Generator().manual_seed(0))
>>> x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(1))
>>> (y, logdet), (back, inv_logdet) = conv(x), conv.inverse(conv(x)[0])
>>> torch.allclose(back, x, atol=1e-5), torch.allclose(inv_logdet, -logdet)
(True, True)
>>> sorted(PERMUTATIONS)
['invconv', 'invconv_lu', 'reverse', 'shuffle']
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from glow_lightning.flows.base import InvertibleLayer, zero_logdet


def random_rotation(num_channels: int, generator: torch.Generator | None = None) -> Tensor:
    """A random orthogonal (C, C) matrix, the paper's initialisation of the 1×1 conv."""
    q, _ = torch.linalg.qr(torch.randn(num_channels, num_channels, generator=generator))
    return q


class _FixedPermutation(InvertibleLayer):
    perm: Tensor
    inv_perm: Tensor

    def __init__(self, perm: Tensor) -> None:
        super().__init__()
        self.register_buffer("perm", perm)
        self.register_buffer("inv_perm", torch.argsort(perm))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x[:, self.perm], zero_logdet(x)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return y[:, self.inv_perm], zero_logdet(y)


class Reverse(_FixedPermutation):
    """Reverse the channel order (RealNVP's alternation); ``generator`` is unused (no draw)."""

    def __init__(self, num_channels: int, generator: torch.Generator | None = None) -> None:
        super().__init__(torch.arange(num_channels - 1, -1, -1))


class Shuffle(_FixedPermutation):
    """A fixed random channel permutation, drawn once at construction."""

    def __init__(self, num_channels: int, generator: torch.Generator | None = None) -> None:
        super().__init__(torch.randperm(num_channels, generator=generator))


class InvConv(InvertibleLayer):
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

    def inverse_weight(self, weight: Tensor | None = None) -> Tensor:
        """``W⁻¹`` (C, C) of ``weight`` (default: this layer's); cached by the weight's value
        when no gradient is needed."""
        weight = self.weight_and_logdet()[0] if weight is None else weight
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

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        weight, logdet = self.weight_and_logdet()
        x = F.conv2d(y, self.inverse_weight(weight).unsqueeze(-1).unsqueeze(-1))
        return x, (-logdet * y.shape[2] * y.shape[3]).expand(y.shape[0])


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


# model.permutation → the layer, built as ``PERMUTATIONS[name](channels, generator)``
PERMUTATIONS: dict[str, Callable[[int, torch.Generator | None], InvertibleLayer]] = {
    "reverse": Reverse, "shuffle": Shuffle, "invconv": InvConv1x1, "invconv_lu": InvConv1x1LU}
