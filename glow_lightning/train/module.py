"""``GlowModule``: the LightningModule around a Glow or RealNVP flow.

It takes plain values, calls ``save_hyperparameters()`` and builds the flow itself, so
``GlowModule.load_from_checkpoint(path)`` needs nothing else. One shared step computes per-sample
bits/dim (:func:`glow_lightning.ops.bits_per_dim`) into torchmetrics ``MeanMetric``s, so partial
batches and DDP are weighted correctly.

Reliability: a step with a non-finite loss or gradient is skipped, never applied
(:mod:`.guard`); training noise depends only on (seed, batch counter, rank) (:mod:`.rng`), and
the counter, the guard's counts and every rank's global RNG state travel in the checkpoint, so
a resumed run repeats an uninterrupted one step for step. The optimiser and schedule are
:mod:`.optim`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torchmetrics import MaxMetric, MeanMetric

from glow_lightning.config import OptimConfig
from glow_lightning.flows import (
    FlowConfig,
    FlowOutput,
    MultiScaleFlow,
    build_flow,
    compile_flow,
    data_init,
    is_initialised,
)
from glow_lightning.flows.spec import from_fields, to_fields
from glow_lightning.ops import bins_to_float, bits_per_dim, dequantize, level_bits
from glow_lightning.train.ema import EMA
from glow_lightning.train.evaluation import eval_noise, iw_bpd, validate_both_weights
from glow_lightning.train.guard import NonFiniteGuard
from glow_lightning.train.metrics import MeanAndError, metric_names
from glow_lightning.train.optim import Schedule, apply_allowed, lr_scale, make_optimizer
from glow_lightning.train.rng import gather_rng_states, set_local_rng_state, step_noise

STATE_KEY = "glow_lightning"  # checkpoint entry: batch counter, guard counts, per-rank RNG


class GlowModule(L.LightningModule):
    """Train and evaluate a flow for images of ``image_shape`` (C, H, W). ``model`` is a
    :class:`~glow_lightning.flows.spec.FlowConfig` (or its fields as plain values, as a
    checkpoint stores them; the rest keep their defaults), ``optim`` an
    :class:`~glow_lightning.config.OptimConfig` (or its fields); ``num_classes > 0`` makes
    the flow class-conditional; ``seed`` draws its fixed permutations and the training noise.
    ``compile`` compiles the flow in place (:func:`~glow_lightning.flows.compile_flow`) once
    ActNorm is initialised. ``experiment`` (optional) is the resolved experiment config, kept
    in the checkpoint so that ``glow-lightning test/sample/interpolate ckpt=...`` can rebuild
    the data module."""

    def __init__(self, image_shape: Sequence[int],
                 model: FlowConfig | Mapping[str, Any] | None = None, num_classes: int = 0,
                 n_bits: int = 8, optim: OptimConfig | Mapping[str, Any] | None = None,
                 compile: bool = False, seed: int = 0,
                 experiment: dict[str, Any] | None = None) -> None:
        super().__init__()
        # the dataclasses travel whole; plain values (a checkpoint's) become one once, here
        self.flow_cfg = model if isinstance(model, FlowConfig) else from_fields(model)
        self.optim_cfg = optim if isinstance(optim, OptimConfig) else OptimConfig(**(optim or {}))
        self.save_hyperparameters(logger=False)  # the run's config is logged once, by run.py
        # checkpoints hold plain values only (weights-only loadable)
        self.hparams.update(model=to_fields(self.flow_cfg),
                            optim=dataclasses.asdict(self.optim_cfg))
        self.flow: MultiScaleFlow = build_flow(image_shape, self.flow_cfg,
                                               num_classes=num_classes, seed=seed)
        self.n_bits = n_bits
        decay = self.optim_cfg.ema_decay
        self.ema = EMA(self.flow, decay, self.optim_cfg.ema_follow_lr) if decay > 0 else None
        self.ema_won = False  # optim.ema_eval=auto: the EMA scored lower at the last validation
        self.metrics = torch.nn.ModuleDict(metric_names(len(self.flow.levels), num_classes,
                                                        self.ema is not None))
        self.guard = NonFiniteGuard(self.optim_cfg.max_skipped_in_row)
        self.noise_seed = seed
        self.train_batches = 0  # training batches seen, skipped ones included; seeds the noise
        self._pending_rng: Tensor | None = None
        self._pending_bpd: tuple[Tensor, Tensor] | None = None  # (values, weights) of the batch
        # Set by whoever runs the test, not saved: K noise draws per test image for the
        # importance-weighted bound (0: off), log names per stage (validation on the test split
        # logs as test_monitor/*), and entries for the run summary (test/checkpoint, ...).
        self.iw_samples = 0
        self.log_names: dict[str, str] = {}
        self.test_info: dict[str, Any] = {}
        self._eval_log_prob: Tensor | None = None
        object.__setattr__(self, "_init_done", False)
        if compile:
            compile_flow(self.flow)  # in place: checkpoints keep one copy of the weights

    # ----------------------------------------------------------------- helpers
    @property
    def float_dtype(self) -> torch.dtype:
        """The module's floating-point dtype (Lightning types ``dtype`` loosely)."""
        return cast(torch.dtype, self.dtype)

    @property
    def num_classes(self) -> int:
        return self.flow.num_classes

    def eval_flow(self) -> MultiScaleFlow:
        """The weights used for evaluation and sampling: the EMA copy when enabled and
        ``optim.ema_eval`` is ``ema``, or ``auto`` once it scored lower than the raw weights on
        a validation (:meth:`on_validation_end`); else the raw weights."""
        if self.ema is not None and self.ema_in_use:
            return self.ema.shadow  # type: ignore[return-value]
        return self.flow

    @property
    def ema_in_use(self) -> bool:
        mode = self.optim_cfg.ema_eval
        return self.ema is not None and (mode == "ema" or (mode == "auto" and self.ema_won))

    def on_validation_end(self) -> None:
        """``optim.ema_eval=auto``: the weights that scored lower on this validation (same images,
        same noise) evaluate, test and sample from now on. Checkpoint callbacks have saved
        before this hook, so ``best.ckpt`` holds the choice its ``val/bpd`` was measured with."""
        if self.ema is None or self.optim_cfg.ema_eval != "auto":
            return
        scores = self.trainer.callback_metrics
        raw, ema = scores.get("val/bpd_raw"), scores.get("val/bpd_ema")
        if raw is not None and ema is not None and torch.isfinite(ema):
            self.ema_won = bool(ema < raw)

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
        x = bins_to_float(bins, self.n_bits, dtype=self.float_dtype)
        if noise is not None:
            return x + noise / 2**self.n_bits
        return dequantize(x, self.n_bits)

    def _train_noise(self, bins: Tensor) -> Tensor:
        """Dequantisation noise for this training batch, from (seed, batch counter, rank) only."""
        return step_noise(bins.shape, self.noise_seed, self.train_batches, self.global_rank,
                          bins.device, self.float_dtype)

    def _eval_noise(self, bins: Tensor, draw: int = 0) -> Tensor:
        """The fixed per-image evaluation noise (:func:`~.evaluation.eval_noise`)."""
        return eval_noise(bins, draw).to(device=bins.device, dtype=self.float_dtype)

    def needs_data_init(self) -> bool:
        if self._init_done:  # the buffers stay the source of truth; this only skips the scan
            return False
        object.__setattr__(self, "_init_done", is_initialised(self.flow))
        return not self._init_done

    @torch.no_grad()
    def data_init(self, bins: Tensor) -> None:
        """ActNorm data-dependent init with statistics summed over all ranks (identical weights)."""
        def reduce(stats: Tensor) -> Tensor:
            return self.trainer.strategy.reduce(stats, reduce_op="sum") if self._trainer else stats

        with data_init(reduce):
            self.flow(self.to_flow_input(bins))

    # ----------------------------------------------------------------- steps
    def _unpack(self, batch: Any) -> tuple[Tensor, Tensor | None]:
        bins, labels = batch[0], batch[1]
        y = labels if self.num_classes and bool((labels >= 0).all()) else None
        return bins, y

    def _shared_step(self, batch: Any, stage: str) -> Tensor:
        bins, y = self._unpack(batch)
        if self.needs_data_init():  # every rank reaches this in the same stage: reduce is matched
            self.data_init(bins)
        flow: torch.nn.Module = self.flow if stage == "train" else self.eval_flow()
        noise = self._train_noise(bins) if stage == "train" else self._eval_noise(bins)
        out = flow(self.to_flow_input(bins, noise), y)
        bpd = bits_per_dim(out.log_prob, self.flow.num_dims, self.n_bits)
        self._update_bpd(stage, bpd.detach())
        if stage != "train":
            self._update_levels(stage, out)
            self._eval_log_prob = out.log_prob.detach()
        loss = bpd.mean()
        if out.logits is not None and y is not None:
            ce = F.cross_entropy(out.logits, y, reduction="none")
            self._update_classes(stage, ce.detach(), (out.logits.argmax(1) == y).float())
            loss = loss + self.optim_cfg.class_loss_weight * ce.mean()
        return loss

    def _log_mean(self, stage: str, name: str, values: Tensor, **kwargs: Any) -> None:
        """``values`` (B,) into the stage's ``MeanMetric`` ``name``, logged as ``stage/name``
        (torchmetrics reduces it over ranks at epoch end)."""
        metric = cast(MeanMetric, self.metrics[f"{stage}_{name}"])
        metric.update(values)
        self.log(self._key(stage, name), metric, on_epoch=True, batch_size=values.shape[0],
                 **kwargs)

    def _update_levels(self, stage: str, out: FlowOutput) -> None:
        """Where the bits go (see :func:`glow_lightning.ops.level_bits`): per level, the prior
        term and the log-det in bits/dim; with ``bits_quantisation`` they sum to the bpd."""
        terms = level_bits(out.logdets, out.priors, self.flow.num_dims, self.n_bits)
        for name, values in terms.items():
            self._log_mean(stage, name, values.detach(), on_step=False)

    def _update_classes(self, stage: str, ce: Tensor, correct: Tensor) -> None:
        self._log_mean(stage, "class_loss", ce, on_step=stage == "train")
        self._log_mean(stage, "accuracy", correct, on_step=stage == "train")

    def _update_bpd(self, stage: str, bpd: Tensor) -> None:
        """Per-sample bpd into the stage's mean; evaluation keeps every sample, so a broken model
        reads as NaN (training: :meth:`_log_train_bpd`)."""
        metric = cast(MeanMetric, self.metrics[f"{stage}_bpd"])
        if stage == "train":
            self._log_train_bpd(metric, bpd)
            return
        metric.update(bpd)
        worst = cast(MaxMetric, self.metrics[f"{stage}_bpd_worst"])
        worst.update(bpd)
        self.log(self._key(stage, "bpd_worst"), worst, on_epoch=True, batch_size=bpd.shape[0])
        self.log(self._key(stage, "bpd"), metric, on_epoch=True, prog_bar=True,
                 batch_size=bpd.shape[0])

    def _key(self, stage: str, name: str) -> str:
        """``stage/name``; validation on the test split logs as ``test_monitor/name``."""
        return f"{self.log_names.get(stage, stage)}/{name}"

    def _log_train_bpd(self, metric: MeanMetric, bpd: Tensor) -> None:
        """The batch's mean over its finite samples as ``train/bpd_step``; the batch enters the
        epoch mean ``train/bpd_epoch`` only once its step is applied (:meth:`optimizer_step`):
        a huge but finite loss whose gradients overflow would otherwise carry the epoch mean."""
        finite = torch.isfinite(bpd)
        values = torch.where(finite, bpd, torch.zeros_like(bpd))
        self._pending_bpd = (values, finite.to(bpd.dtype))
        size = bpd.shape[0]
        self.log("train/bpd_step", values.sum() / finite.sum(), prog_bar=True, batch_size=size)
        self.log("train/bpd_epoch", metric, on_step=False, on_epoch=True, batch_size=size)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        loss = self._shared_step(batch, "train")
        self.train_batches += 1
        self.guard.note_loss(loss)
        if self.num_classes:  # else the loss is train/bpd_step
            self.log("train/loss", loss, batch_size=batch[0].shape[0])
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.log("train/skipped_steps", float(self.guard.skipped), on_step=True, on_epoch=False,
                 batch_size=batch[0].shape[0])

    # ----------------------------------------------------------------- non-finite guard
    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any,
                       optimizer_closure: Any = None) -> None:
        """Forward and backward, then the step only if loss and gradients are finite on every
        rank; the EMA follows applied steps only."""
        loss = optimizer_closure() if optimizer_closure is not None else None
        skip = self.guard.should_skip(self.flow.parameters(), self._reduce_sum,
                                      self._check_grads())
        if self._pending_bpd is not None:  # a skipped step's batch has weight 0 in the mean
            values, weights = self._pending_bpd
            cast(MeanMetric, self.metrics["train_bpd"]).update(values, weights * (not skip))
            self._pending_bpd = None
        if skip:
            optimizer.zero_grad(set_to_none=True)
            self._on_skip()
            return
        optimizer.step(closure=lambda: loss)  # the closure already ran; clipping happens inside
        if self.ema is not None:
            self.ema.update(self.flow, lr_scale(optimizer))

    def _reduce_sum(self, flag: Tensor) -> Tensor:
        if self._trainer is None:
            return flag
        return self.trainer.strategy.reduce(flag.to(self.device), reduce_op="sum")

    def _check_grads(self) -> bool:
        """With a GradScaler (16-bit AMP) inf gradients are the scaler's business: it skips the
        step and lowers its scale itself."""
        if self._trainer is None:
            return True
        return getattr(self.trainer.precision_plugin, "scaler", None) is None

    def _on_skip(self) -> None:
        g = self.guard
        rank_zero_warn(f"skipped optimiser step {self.global_step}: non-finite loss or gradient "
                       f"({g.in_row} in a row, {g.skipped} in total)")
        if g.tripped and self._trainer is not None:
            self.trainer.should_stop = True

    # ----------------------------------------------------------------- checkpoint state
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Plain ints and uint8 tensors only, so the checkpoint stays weights-only loadable."""
        checkpoint[STATE_KEY] = {"train_batches": self.train_batches,
                                 "ema_won": self.ema_won,
                                 "guard": self.guard.state_dict(),
                                 "rng": gather_rng_states(self._trainer, self.device)}
        if self.ema is not None and int(self.ema.num_updates) == 0:  # before the first update
            self.ema.store_as_copy(checkpoint["state_dict"], self.flow, prefix="ema.")

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get(STATE_KEY) or {}
        self.train_batches = int(state.get("train_batches", 0))
        self.ema_won = bool(state.get("ema_won", False))
        self.guard.load_state_dict(state.get("guard", {}))
        rng = state.get("rng") or []
        self._pending_rng = rng[self.global_rank] if self.global_rank < len(rng) else None

    def on_train_start(self) -> None:
        """Restore this rank's global RNG once the loaders are set up (they draw from it); put
        back the optimiser settings a resume was allowed to change (``resume_allow``)."""
        allowed = str((self.hparams.get("experiment") or {}).get("resume_allow") or "")
        if allowed and self._pending_rng is not None:  # only on a resume
            apply_allowed(self.trainer, self.optim_cfg, set(allowed.split(",")))
        if self._pending_rng is not None:
            set_local_rng_state(self._pending_rng)
            self._pending_rng = None

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._shared_step(batch, "val")
        if self.ema is not None:
            validate_both_weights(self, batch)
            self.log("val/ema_in_use", float(self.ema_in_use), on_step=False, on_epoch=True,
                     batch_size=batch[0].shape[0])

    def test_step(self, batch: Any, batch_idx: int) -> dict[str, Tensor]:
        """The test metrics; returns per-image ``bpd`` (B,) (and ``bpd_iw``) for callbacks."""
        self._shared_step(batch, "test")
        assert self._eval_log_prob is not None
        bins, y = self._unpack(batch)
        out = {"bpd": bits_per_dim(self._eval_log_prob, self.flow.num_dims, self.n_bits)}
        if self.iw_samples:
            out["bpd_iw"] = iw_bpd(self, bins, y, first=self._eval_log_prob)
            self._iw_metric().update(out["bpd_iw"])
        return out

    def on_test_epoch_end(self) -> None:
        """``test/bpd_iw{K}`` and its standard error over images (synced sums: exact in DDP)."""
        if self.iw_samples:
            metric = self._iw_metric()
            mean, sem = metric.compute()
            self.log(f"test/bpd_iw{self.iw_samples}", mean.float())
            self.log(f"test/bpd_iw{self.iw_samples}_sem", sem.float())
            metric.reset()

    def _iw_metric(self) -> MeanAndError:
        return cast(MeanAndError, self.metrics["test_bpd_iw"])

    # ----------------------------------------------------------------- optimisation
    def configure_optimizers(self) -> Any:
        cfg = self.optim_cfg
        opt = make_optimizer(cfg, self.flow)
        schedule = Schedule(cfg.warmup_steps, cfg.decay_steps, cfg.decay_fraction)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step",
                                                   "name": "train/lr"}}
