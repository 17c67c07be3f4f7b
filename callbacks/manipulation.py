"""An attribute-manipulation grid during training (Glow, Kingma & Dhariwal 2018, Sec. 5.3 and
Fig. 6); the maths is :mod:`glow_lightning.flows.latents`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from glow_lightning.flows.latents import group_masks, manipulate, pick_images
from glow_lightning.grids import make_grid
from glow_lightning.ops import bin_centres, displayable

from .inputs import FlowModule, flow_ready
from .media import publish_image
from .schedule import MediaSchedule


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

    def draw(self, trainer: L.Trainer, pl_module: FlowModule) -> None:
        self.log_grid(trainer, pl_module)

    def images(self, datamodule: Any, pl_module: FlowModule) -> Tensor | None:
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

    def log_grid(self, trainer: L.Trainer, pl_module: FlowModule) -> None:
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
