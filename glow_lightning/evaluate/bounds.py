"""The importance-weighted test bound and its standard error over images.

Flow++ (Ho et al. 2019, Sec. 3.1) tightens the dequantisation bound of a discrete image ``x``
with ``K`` uniform noise draws ``u_k``:

    log P(x) >= log (1/K) sum_k p(x + u_k) / q(u_k),   q = U(0, 1/2^n)^D,

which is ``>=`` the single-draw bound averaged over draws (Jensen) and tends to ``log P(x)`` as
``K`` grows. In bits/dim (:func:`glow_lightning.ops.bits_per_dim` adds the ``log q`` term
``D·log 2^n``) the bound is ``-logmeanexp_k log p(x + u_k) / (D ln 2) + n``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from glow_lightning.ops import bits_per_dim


def logmeanexp(values: Tensor, dim: int = 0) -> Tensor:
    """``log mean exp`` of ``values`` along ``dim``, stable for large magnitudes.

    >>> round(float(logmeanexp(torch.tensor([0.0, math.log(3.0)]))), 6)  # log((1 + 3) / 2)
    0.693147
    >>> float(logmeanexp(torch.tensor([[-1000.0], [-1000.0]])))  # no underflow
    -1000.0
    """
    return torch.logsumexp(values, dim=dim) - math.log(values.shape[dim])


def iw_bits_per_dim(log_probs: Tensor, num_dims: int, n_bits: int = 8) -> Tensor:
    """Per-image importance-weighted bits/dim from ``log_probs`` (K, B): ``log p(x + u_k)`` in
    nats of K noise draws per image; returns (B,). With K = 1 it is exactly
    :func:`~glow_lightning.ops.bits_per_dim` of the one draw.

    >>> lp = torch.tensor([[-2.0], [-4.0]])  # two draws of one image, D = 1
    >>> single = bits_per_dim(lp, 1, 8).mean()  # the draws' average single-sample value
    >>> bound = iw_bits_per_dim(lp, 1, 8)
    >>> bool(bound[0] <= single), round(float(bound[0]), 4)
    (True, 11.7023)
    """
    if log_probs.dim() != 2:
        raise ValueError(f"log_probs must be (K, B), got shape {tuple(log_probs.shape)}")
    return bits_per_dim(logmeanexp(log_probs, dim=0), num_dims, n_bits)


def mean_and_sem(total: Tensor, total_sq: Tensor, count: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and standard error of the mean over ``count`` values from their sum ``total`` and
    sum of squares ``total_sq`` (sums reduce exactly over processes); the error uses the
    unbiased variance, NaN for fewer than two values.

    >>> values = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    >>> mean, sem = mean_and_sem(values.sum(), (values**2).sum(), torch.tensor(3.0))
    >>> round(float(mean), 6), round(float(sem), 6), round(float(values.std() / 3**0.5), 6)
    (2.333333, 0.881917, 0.881917)
    """
    mean = total / count
    variance = (total_sq - count * mean**2).clamp(min=0) / (count - 1)
    sem = (variance / count).sqrt() if float(count) > 1 else torch.full_like(mean, math.nan)
    return mean, sem
