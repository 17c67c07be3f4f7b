"""Linear interpolations between fixed pairs of real test images through every latent
(Glow, Kingma & Dhariwal 2018, Sec. 5.3 and Fig. 5)."""

from __future__ import annotations

import lightning as L
from torch import Tensor

from glow_lightning.flows.latents import interpolate_images
from glow_lightning.grids import make_grid
from glow_lightning.ops import displayable

from .inputs import FlowModule, example_inputs, flow_ready
from .media import publish_image
from .schedule import MediaSchedule


class Interpolations(MediaSchedule):
    """Interpolate between pairs ``(2k, 2k+1)`` of the first ``2·pairs`` test images.

    Every latent (each split's and the top) is encoded and interpolated; one grid row per pair
    whose end columns are the reconstructions of the real images. Rank zero, on the schedule of
    :class:`~glow_lightning.callbacks.schedule.MediaSchedule`;
    ``media/interpolations/step{S:07d}.png``, W&B key
    ``interpolations``. Needs a datamodule with ``example_images(n, split="test")``.
    """

    def __init__(self, pairs: int = 4, steps: int = 8, every_n_validations: int = 1,
                 every_n_steps: int = 0) -> None:
        super().__init__(every_n_validations, every_n_steps)
        if pairs < 1 or steps < 2:
            raise ValueError("Interpolations needs pairs >= 1 and steps >= 2")
        self.pairs = pairs
        self.steps = steps

    def interpolate(self, pl_module: FlowModule, x: Tensor) -> Tensor:
        """Flow-space images (2P, C, H, W) → decoded interpolations (P·steps, C, H, W)."""
        with pl_module.sampling() as flow:
            return interpolate_images(flow, x, self.steps)

    def draw(self, trainer: L.Trainer, pl_module: FlowModule) -> None:
        self.log_grid(trainer, pl_module)

    def log_grid(self, trainer: L.Trainer, pl_module: FlowModule) -> None:
        """Encode, interpolate, decode, save and log; rank zero only."""
        flow = pl_module.eval_flow()
        if not trainer.is_global_zero or not flow_ready(flow):
            return
        x = example_inputs(trainer, flow, pl_module.n_bits, 2 * self.pairs)
        if x is None or x.shape[0] < 2:
            return
        x = x[: x.shape[0] // 2 * 2]
        images, _ = displayable(self.interpolate(pl_module, x), pl_module.n_bits)
        caption = (f"{x.shape[0] // 2} pairs × {self.steps} steps; epoch {trainer.current_epoch} "
                   f"step {trainer.global_step}")
        publish_image(trainer, "interpolations", f"step{trainer.global_step:07d}.png",
                      "interpolations", make_grid(images, self.steps), caption)
