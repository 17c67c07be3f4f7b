"""Pure pixel-space operations: n-bit reduction, dequantisation and bits per dimension.

Conventions follow the openai/glow code (Kingma & Dhariwal 2018, Sec. 3 and Appendix): pixels are
integers in [0, 2^n); the flow sees ``x = bins / 2^n - 0.5 + u`` with ``u ~ U(0, 1/2^n)``, so a
density ``p(x)`` assigns each bin the probability ``p(x) / 2^(n·D)`` and

    nll = -log p(x) + D·log(2^n)  nats,        bpd = nll / (D·ln 2).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

N_BITS = range(1, 9)  # the bit depths a pixel may be reduced to: the one rule for ``n_bits``


def check_n_bits(n_bits: int) -> int:
    """Return ``n_bits`` if it is in :data:`N_BITS`, else raise a ValueError naming the fix."""
    if not isinstance(n_bits, int) or isinstance(n_bits, bool) or n_bits not in N_BITS:
        raise ValueError(f"n_bits must be an integer in 1..8, got {n_bits!r}")
    return n_bits


def reduce_bits(x_uint8: Tensor, n_bits: int = 8) -> Tensor:
    """Map 8-bit pixels (any integer dtype, values 0..255) to integer bins in [0, 2^n_bits)
    (uint8 stays uint8, other dtypes become int64).

    >>> reduce_bits(torch.tensor([0, 7, 8, 255]), n_bits=5).tolist()
    [0, 0, 1, 31]
    >>> reduce_bits(torch.tensor([0, 7, 8, 255], dtype=torch.uint8), n_bits=5).tolist()
    [0, 0, 1, 31]
    """
    check_n_bits(n_bits)
    if x_uint8.dtype == torch.uint8:  # a shift in place of a division, no int64 copy
        return x_uint8 >> (8 - n_bits) if n_bits < 8 else x_uint8
    return torch.div(x_uint8.long(), 2 ** (8 - n_bits), rounding_mode="floor")


def bins_to_float(bins: Tensor, n_bits: int = 8, dtype: torch.dtype | None = None) -> Tensor:
    """Integer bins in [0, 2^n) → float in [-0.5, 0.5) (the lower edge of each bin).

    >>> bins_to_float(torch.tensor([0, 16, 31]), n_bits=5).tolist()
    [-0.5, 0.0, 0.46875]
    """
    check_n_bits(n_bits)
    return bins.to(dtype or torch.get_default_dtype()) / 2**n_bits - 0.5


def bin_centres(bins: Tensor, n_bits: int = 8, like: Tensor | None = None) -> Tensor:
    """Integer bins → flow space at the bin centres (deterministic dequantisation), on the
    device and dtype of ``like`` when given.

    >>> bin_centres(torch.tensor([0, 255])).tolist()
    [-0.498046875, 0.498046875]
    """
    dtype = like.dtype if like is not None else None
    x = bins_to_float(bins, n_bits, dtype=dtype) + 0.5 / 2**n_bits
    return x.to(like.device) if like is not None else x


def dequantize(x: Tensor, n_bits: int = 8, generator: torch.Generator | None = None) -> Tensor:
    """Add uniform noise ``u ~ U(0, 1/2^n)`` to preprocessed pixels; returns a new tensor."""
    check_n_bits(n_bits)
    noise = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return x + noise / 2**n_bits


def postprocess(x: Tensor, n_bits: int = 8) -> Tensor:
    """Flow space → float image in [0, 1], rounded to the n-bit grid (for display)."""
    bins = torch.floor((x + 0.5) * 2**n_bits).clamp(0, 2**n_bits - 1)
    return bins / (2**n_bits - 1)


def displayable(x: Tensor, n_bits: int = 8) -> tuple[Tensor, int]:
    """Flow-space samples → (images in [0, 1] as :func:`postprocess` makes them, the number of
    non-finite values, which are drawn as 0, mid-grey).

    >>> images, bad = displayable(torch.tensor([0.0, float("nan")]), n_bits=1)
    >>> images.tolist(), bad
    ([1.0, 1.0], 1)
    """
    x = x.float()
    finite = torch.isfinite(x)
    return postprocess(torch.where(finite, x, torch.zeros_like(x)), n_bits), int((~finite).sum())


def bits_per_dim(log_prob: Tensor, num_dims: int, n_bits: int = 8) -> Tensor:
    """Per-sample bits/dim from the flow's continuous ``log p(x)`` in nats (shape (B,)).

    >>> round(bits_per_dim(torch.tensor([0.0]), num_dims=1, n_bits=8).item(), 6)
    8.0
    """
    check_n_bits(n_bits)
    nll = -log_prob + num_dims * math.log(2**n_bits)
    return nll / (num_dims * math.log(2.0))


def level_bit_names(levels: int) -> list[str]:
    """The keys of :func:`level_bits` for a flow of ``levels`` levels.

    >>> level_bit_names(2)  # doctest: +NORMALIZE_WHITESPACE
    ['bits_level0', 'bits_level0_prior', 'bits_level0_logdet', 'bits_level1', 'bits_level1_prior',
     'bits_level1_logdet', 'bits_quantisation']
    """
    names = [f"bits_level{i}{part}" for i in range(levels) for part in ("", "_prior", "_logdet")]
    return [*names, "bits_quantisation"]


def level_bits(logdets: list[Tensor], priors: list[Tensor], num_dims: int, n_bits: int = 8
               ) -> dict[str, Tensor]:
    """Per-sample bits/dim of each level's prior term (``bits_level{i}_prior``: ``−log p`` of
    the latent it factors out, the top prior at the last level) and log-det
    (``bits_level{i}_logdet``: ``−log|det J|`` of its flow), their sum ``bits_level{i}``, and
    ``bits_quantisation`` (``log2 2^n = n`` per dimension); every value (B,). The
    ``bits_level{i}`` and ``bits_quantisation`` sum to :func:`bits_per_dim` exactly.

    >>> terms = level_bits([torch.tensor([0.0])], [torch.tensor([-math.log(2.0)])], 1, 8)
    >>> {k: round(float(v), 6) for k, v in terms.items()}  # doctest: +NORMALIZE_WHITESPACE
    {'bits_level0': 1.0, 'bits_level0_prior': 1.0, 'bits_level0_logdet': -0.0,
     'bits_quantisation': 8.0}
    """
    scale = 1.0 / (num_dims * math.log(2.0))
    out: dict[str, Tensor] = {}
    for i, (logdet, prior) in enumerate(zip(logdets, priors, strict=True)):
        out[f"bits_level{i}_prior"] = -prior * scale
        out[f"bits_level{i}_logdet"] = -logdet * scale
        out[f"bits_level{i}"] = out[f"bits_level{i}_prior"] + out[f"bits_level{i}_logdet"]
    out["bits_quantisation"] = torch.full_like(priors[0], float(check_n_bits(n_bits)))
    return {name: out[name] for name in level_bit_names(len(priors))}
