"""Attribute manipulation through mean-latent differences (Glow, Kingma & Dhariwal 2018,
Sec. 5.3 and Fig. 6): ``d = mean z(with attribute) − mean z(without)`` in every latent (each split's
and the top), then ``z + s·d`` decoded for several strengths ``s``.

Groups come from integer labels: ``target`` is the attribute (a digit class; 1 in a 0/1 CelebA
attribute column); the negatives are the images of class ``source`` when one is given (a class-A →
class-B direction), otherwise every image without the attribute.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from glow_lightning.flows import MultiScaleFlow
from glow_lightning.module import GlowModule
from glow_lightning.ops import bin_centres, displayable

from .grid import make_grid
from .inputs import flow_ready
from .media import publish_image
from .schedule import MediaSchedule


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


class AttributeManipulation(MediaSchedule):
    """Move ``num_images`` fixed test images along the ``target`` direction (estimated from the
    first ``num_reference`` labelled training images) at ``strengths``; rows = images, columns =
    strengths. Rank zero, on the schedule of
    :class:`~glow_lightning.callbacks.schedule.MediaSchedule`;
    ``media/manipulation/step{S:07d}.png``, W&B key ``manipulation``. Needs a datamodule with
    ``example_images`` and labels (skipped with a warning otherwise)."""

    def __init__(self, target: int, source: int | None = None,
                 strengths: Sequence[float] = (-1.0, 0.0, 1.0, 2.0), num_images: int = 8,
                 num_reference: int = 1000, every_n_validations: int = 1,
                 every_n_steps: int = 0) -> None:
        super().__init__(every_n_validations, every_n_steps)
        if not strengths or num_images < 1 or num_reference < 2:
            raise ValueError("AttributeManipulation needs strengths, num_images >= 1 and "
                             "num_reference >= 2")
        self.target, self.source = target, source
        self.strengths = tuple(float(s) for s in strengths)
        self.num_images, self.num_reference = num_images, num_reference

    def draw(self, trainer: L.Trainer, pl_module: GlowModule) -> None:
        self.log_grid(trainer, pl_module)

    def images(self, datamodule: Any, pl_module: GlowModule) -> Tensor | None:
        """Decoded grid images (B·S, C, H, W) in [0, 1], or None without labelled data."""
        reference, labels = datamodule.example_images(self.num_reference, split="train")
        test, test_labels = datamodule.example_images(20 * self.num_images, split="test")
        chosen = pick_images(test, test_labels, self.num_images, self.target, self.source)
        positive, negative = group_masks(labels, self.target, self.source)
        if chosen.shape[0] == 0 or not positive.any() or not negative.any():
            rank_zero_warn("AttributeManipulation: no labelled images for the attribute groups; "
                           "skipped")
            return None
        with pl_module.sampling() as flow:
            ref = next(flow.parameters())
            out = manipulate(flow, bin_centres(reference, pl_module.n_bits, ref), labels,
                             bin_centres(chosen, pl_module.n_bits, ref), self.target, self.source,
                             self.strengths)
        images, bad = displayable(out, pl_module.n_bits)
        if bad:  # latents pushed far from the data can overflow the inverse couplings
            rank_zero_warn(f"AttributeManipulation: {bad} non-finite values in {out.shape[0]} "
                           "images (shown as 0, mid-grey)")
        return images

    def log_grid(self, trainer: L.Trainer, pl_module: GlowModule) -> None:
        datamodule = getattr(trainer, "datamodule", None)
        if (not trainer.is_global_zero or not flow_ready(pl_module.eval_flow())
                or not hasattr(datamodule, "example_images")):
            return
        images = self.images(datamodule, pl_module)
        if images is None:
            return
        towards = f"{self.source} → {self.target}" if self.source is not None else f"{self.target}"
        caption = (f"attribute {towards}; columns: strengths {list(self.strengths)}; "
                   f"epoch {trainer.current_epoch} step {trainer.global_step}")
        publish_image(trainer, "manipulation", f"step{trainer.global_step:07d}.png",
                      "manipulation", make_grid(images, len(self.strengths)), caption)
