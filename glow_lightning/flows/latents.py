"""Latent-space maths on a multi-scale flow (Glow, Kingma & Dhariwal 2018, Sec. 5.3).

Interpolation (Fig. 5): encode two images, move linearly between their latents, each split's
and the top, and decode. Attribute manipulation (Fig. 6): the mean-latent difference
``d = mean z(with attribute) − mean z(without)`` in every latent, then ``z + s·d`` decoded for
several strengths ``s``. Groups come from integer labels: ``target`` is the attribute (a digit
class; 1 in a 0/1 CelebA attribute column); the negatives are the images of class ``source``
when one is given, otherwise every image without the attribute.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from glow_lightning.flows.multiscale import MultiScaleFlow


def interpolate_latents(start: list[Tensor], end: list[Tensor], steps: int) -> list[Tensor]:
    """Per latent, (P, ...) endpoints → (P·steps, ...) with ``steps`` points of ``t`` in [0, 1]
    for each pair; ``t = 0`` and ``t = 1`` give the endpoints exactly."""
    out = []
    for a, b in zip(start, end, strict=True):
        t = torch.linspace(0.0, 1.0, steps, dtype=a.dtype, device=a.device)
        t = t.view(1, steps, *([1] * (a.dim() - 1)))  # (1, S, 1, ..., 1)
        z = torch.lerp(a.unsqueeze(1), b.unsqueeze(1), t)  # (P, S, ...)
        out.append(z.flatten(0, 1))
    return out


@torch.inference_mode()
def interpolate_images(flow: MultiScaleFlow, x: Tensor, steps: int) -> Tensor:
    """Flow-space images (2P, C, H, W), pairs ``(2k, 2k+1)`` → decoded interpolations
    (P·steps, C, H, W) through every latent (each split's and the top)."""
    latents = flow.encode(x)
    path: list[Tensor | None] = list(interpolate_latents(
        [z[0::2] for z in latents], [z[1::2] for z in latents], steps))
    return flow.decode(path)


def group_masks(labels: Tensor, target: int, source: int | None = None) -> tuple[Tensor, Tensor]:
    """(positive, negative) boolean masks over ``labels`` (N,).

    >>> [m.tolist() for m in group_masks(torch.tensor([0, 1, 2, 1]), 1)]
    [[False, True, False, True], [True, False, True, False]]
    >>> [m.tolist() for m in group_masks(torch.tensor([0, 1, 2, 1]), 1, source=2)]
    [[False, True, False, True], [False, False, True, False]]
    """
    positive = labels == target
    negative = labels == source if source is not None else ~positive
    return positive, negative


def group_means(latents: Sequence[Tensor], mask: Tensor) -> list[Tensor]:
    """Per latent (N, ...), the mean over the rows where ``mask`` (N,) holds → (...)."""
    if not bool(mask.any()):
        raise ValueError("an attribute group is empty: no labelled image falls in it")
    return [z[mask.to(z.device)].mean(dim=0) for z in latents]


def attribute_direction(latents: Sequence[Tensor], positive: Tensor,
                        negative: Tensor) -> list[Tensor]:
    """``mean(z | positive) − mean(z | negative)`` per latent; each (C_l, H_l, W_l).

    >>> z, pos = [torch.tensor([[1.0], [3.0], [10.0]])], torch.tensor([True, True, False])
    >>> attribute_direction(z, pos, ~pos)
    [tensor([-8.])]
    """
    pos, neg = group_means(latents, positive), group_means(latents, negative)
    return [p - n for p, n in zip(pos, neg, strict=True)]


def apply_direction(latents: Sequence[Tensor], direction: Sequence[Tensor],
                    strengths: Sequence[float]) -> list[Tensor]:
    """Per latent, (B, ...) → (B·S, ...) with row ``i·S + j`` = ``z_i + strengths[j] · d``:
    one grid row per image, one column per strength; strength 0 leaves ``z`` unchanged.

    >>> apply_direction([torch.tensor([[0.0], [10.0]])], [torch.tensor([1.0])], [0, 2])
    [tensor([[ 0.],
            [ 2.],
            [10.],
            [12.]])]
    """
    out = []
    for z, d in zip(latents, direction, strict=True):
        s = torch.as_tensor(list(strengths), dtype=z.dtype, device=z.device)
        s = s.view(1, -1, *([1] * (z.dim() - 1)))  # (1, S, 1, ..., 1)
        out.append((z.unsqueeze(1) + s * d.to(z)).flatten(0, 1))
    return out


@torch.inference_mode()
def encode_all(flow: MultiScaleFlow, x: Tensor, batch_size: int = 256) -> list[Tensor]:
    """``flow.encode`` in batches, latents concatenated per level."""
    parts = [flow.encode(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)]
    return [torch.cat(level) for level in zip(*parts, strict=True)]


@torch.inference_mode()
def manipulate(flow: MultiScaleFlow, reference: Tensor, labels: Tensor, x: Tensor, target: int,
               source: int | None, strengths: Sequence[float]) -> Tensor:
    """Direction from the labelled ``reference`` images (N, C, H, W), applied to ``x``
    (B, C, H, W), all in flow space → decoded images (B·S, C, H, W), image-major."""
    direction = attribute_direction(encode_all(flow, reference), *group_masks(labels, target,
                                                                              source))
    moved: list[Tensor | None] = list(apply_direction(flow.encode(x), direction, strengths))
    return flow.decode(moved)


def pick_images(bins: Tensor, labels: Tensor, n: int, target: int,
                source: int | None) -> Tensor:
    """The first ``n`` images to move: of class ``source`` if given, else without ``target``."""
    keep = labels == source if source is not None else labels != target
    return bins[keep.to(bins.device)][:n]
