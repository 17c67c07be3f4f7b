"""Linear interpolations between fixed pairs of real test images through every latent
(Glow, Kingma & Dhariwal 2018, Sec. 5.3 and Fig. 5)."""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor

from glow_lightning.flows import MultiScaleFlow
from glow_lightning.module import GlowModule
from glow_lightning.ops import displayable

from .grid import make_grid
from .inputs import example_inputs, flow_ready
from .media import publish_image
from .schedule import MediaSchedule


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

    def interpolate(self, pl_module: GlowModule, x: Tensor) -> Tensor:
        """Flow-space images (2P, C, H, W) → decoded interpolations (P·steps, C, H, W)."""
        with pl_module.sampling() as flow:
            return interpolate_images(flow, x, self.steps)

    def draw(self, trainer: L.Trainer, pl_module: GlowModule) -> None:
        self.log_grid(trainer, pl_module)

    def log_grid(self, trainer: L.Trainer, pl_module: GlowModule) -> None:
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
