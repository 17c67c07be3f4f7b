"""Exactness check of the trained flow: max |decode(encode(x)) − x| on fixed real test images."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor

from .inputs import FlowModule, as_glow, example_inputs, flow_ready


class ReconstructionCheck(Callback):
    """Log ``val/recon_error`` = max |decode(encode(x)) − x| in flow space over the first
    ``num_images`` test images, at every validation epoch end (not during the sanity check).

    Computed on every rank from the same images and the same weights, then logged with
    ``sync_dist=True`` and ``reduce_fx="max"``: every rank logs the key, so the all-reduce that
    Lightning performs at epoch end is matched on all ranks and the metric can be monitored.
    """

    def __init__(self, num_images: int = 16, key: str = "val/recon_error") -> None:
        if num_images < 1:
            raise ValueError("ReconstructionCheck needs num_images >= 1")
        self.num_images = num_images
        self.key = key

    @staticmethod
    @torch.inference_mode()
    def error(pl_module: FlowModule, x: Tensor) -> float:
        """max |decode(encode(x)) − x| for flow-space images x (B, C, H, W)."""
        with pl_module.sampling() as flow:
            latents: list[Tensor | None] = list(flow.encode(x))
            return float((flow.decode(latents) - x).abs().max())

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        module = as_glow(pl_module)
        flow = module.eval_flow()
        if trainer.sanity_checking or not flow_ready(flow):
            return
        x = example_inputs(trainer, flow, module.n_bits, self.num_images)
        if x is None:
            return
        pl_module.log(self.key, self.error(module, x), on_epoch=True, sync_dist=True,
                   reduce_fx="max", batch_size=x.shape[0])
