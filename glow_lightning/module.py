"""``GlowModule``: the LightningModule around a Glow or RealNVP flow.

It takes plain values, calls ``save_hyperparameters()`` and builds the flow itself, so
``GlowModule.load_from_checkpoint(path)`` needs nothing else. One shared step computes per-sample
bits/dim (:func:`glow_lightning.ops.bits_per_dim`) into torchmetrics ``MeanMetric``s, so partial
batches and DDP are weighted correctly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MeanMetric

from glow_lightning.ema import EMA
from glow_lightning.flows import ActNorm, MultiScaleFlow, build_flow, data_init
from glow_lightning.ops import bins_to_float, bits_per_dim, dequantize

DEFAULT_OPTIM: dict[str, Any] = dict(optimizer="adamax", lr=1e-3, betas=(0.9, 0.999),
                                     weight_decay=0.0, warmup_steps=200, ema_decay=0.0,
                                     class_loss_weight=0.01, eval_noise_seed=0)
STAGES = ("train", "val", "test")


class GlowModule(L.LightningModule):
    """Train and evaluate a flow. ``model`` holds :func:`build_flow` keyword arguments
    (``image_shape`` included), ``optim`` the optimiser settings (see ``DEFAULT_OPTIM``);
    ``experiment`` (optional) is the resolved experiment config, kept in the checkpoint so that
    ``glow-lightning test/sample/interpolate ckpt=...`` can rebuild the data module."""

    def __init__(self, model: dict[str, Any], n_bits: int = 8, optim: dict[str, Any] | None = None,
                 compile: bool = False, experiment: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.flow: MultiScaleFlow = build_flow(**model)
        self.optim_cfg = {**DEFAULT_OPTIM, **(optim or {})}
        self.n_bits = n_bits
        decay = float(self.optim_cfg["ema_decay"])
        self.ema = EMA(self.flow, decay) if decay > 0 else None
        self.metrics = torch.nn.ModuleDict({f"{s}_bpd": MeanMetric() for s in STAGES})
        object.__setattr__(self, "_init_done", False)
        # Kept out of the module tree so checkpoints hold one copy of the weights.
        object.__setattr__(self, "_compiled", torch.compile(self.flow) if compile else None)

    # ----------------------------------------------------------------- helpers
    @property
    def num_classes(self) -> int:
        return self.flow.num_classes

    def eval_flow(self) -> MultiScaleFlow:
        """The weights used for evaluation and sampling: the EMA copy when enabled."""
        return self.ema.shadow if self.ema is not None else self.flow  # type: ignore[return-value]

    @contextlib.contextmanager
    def sampling(self) -> Iterator[MultiScaleFlow]:
        """Context yielding the evaluation flow in eval mode, restoring the mode afterwards."""
        flow = self.eval_flow()
        was_training = flow.training
        flow.eval()
        try:
            yield flow
        finally:
            flow.train(was_training)

    def to_flow_input(self, bins: Tensor, noise: Tensor | None = None) -> Tensor:
        """n-bit bins (B, C, H, W) → dequantised flow input in [-0.5, 0.5)."""
        x = bins_to_float(bins, self.n_bits, dtype=self.dtype)
        if noise is not None:
            return x + noise / 2**self.n_bits
        return dequantize(x, self.n_bits)

    def _eval_noise(self, bins: Tensor, index: Tensor | None) -> Tensor | None:
        """Fixed dequantisation noise per image index, so eval bpd is independent of batching and
        of the number of processes."""
        if index is None:
            return None
        seed = int(self.optim_cfg["eval_noise_seed"])
        gens = [torch.Generator().manual_seed(seed * 1_000_003 + int(i)) for i in index]
        noise = torch.stack([torch.rand(bins.shape[1:], generator=g) for g in gens])
        return noise.to(device=bins.device, dtype=self.dtype)

    def needs_data_init(self) -> bool:
        if self._init_done:  # the buffers stay the source of truth; this only skips the scan
            return False
        pending = any(not bool(m.initialized) for m in self.flow.modules() if isinstance(m, ActNorm))
        object.__setattr__(self, "_init_done", not pending)
        return pending

    @torch.no_grad()
    def data_init(self, bins: Tensor) -> None:
        """ActNorm data-dependent init with statistics summed over all ranks (identical weights)."""
        def reduce(stats: Tensor) -> Tensor:
            return self.trainer.strategy.reduce(stats, reduce_op="sum") if self._trainer else stats

        with data_init(reduce):
            self.flow(self.to_flow_input(bins))

    # ----------------------------------------------------------------- steps
    def _unpack(self, batch: Any) -> tuple[Tensor, Tensor | None, Tensor | None]:
        bins, labels = batch[0], batch[1]
        index = batch[2] if len(batch) > 2 else None
        y = labels if self.num_classes and bool((labels >= 0).all()) else None
        return bins, y, index

    def _shared_step(self, batch: Any, stage: str) -> Tensor:
        bins, y, index = self._unpack(batch)
        if self.needs_data_init():  # every rank reaches this in the same stage: reduce is matched
            self.data_init(bins)
        flow = self.flow if stage == "train" else self.eval_flow()
        if stage == "train" and self._compiled is not None:
            flow = self._compiled
        noise = None if stage == "train" else self._eval_noise(bins, index)
        out = flow(self.to_flow_input(bins, noise), y)
        bpd = bits_per_dim(out.log_prob, self.flow.num_dims, self.n_bits)
        metric = self.metrics[f"{stage}_bpd"]
        metric.update(bpd.detach())
        self.log(f"{stage}/bpd", metric, on_step=stage == "train", on_epoch=True,
                 prog_bar=True, batch_size=bins.shape[0])
        loss = bpd.mean()
        if out.logits is not None and y is not None:
            ce = F.cross_entropy(out.logits, y)
            acc = (out.logits.argmax(1) == y).float().mean()
            self.log_dict({f"{stage}/class_loss": ce, f"{stage}/accuracy": acc},
                          batch_size=bins.shape[0])
            loss = loss + float(self.optim_cfg["class_loss_weight"]) * ce
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        loss = self._shared_step(batch, "train")
        self.log("train/loss", loss, batch_size=batch[0].shape[0])
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.ema is not None:
            self.ema.update(self.flow)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._shared_step(batch, "test")

    # ----------------------------------------------------------------- optimisation
    def configure_optimizers(self) -> Any:
        cfg = self.optim_cfg
        cls = {"adamax": torch.optim.Adamax, "adam": torch.optim.Adam}[cfg["optimizer"]]
        opt = cls(self.flow.parameters(), lr=cfg["lr"], betas=tuple(cfg["betas"]),
                  weight_decay=cfg["weight_decay"])
        warmup = max(1, int(cfg["warmup_steps"]))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warmup))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
