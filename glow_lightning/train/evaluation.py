"""Evaluation beyond the mean bits/dim of one noise draw: the fixed per-image noise (any draw),
the importance-weighted bound over several draws (Flow++, Ho et al. 2019), and the raw and EMA
weights side by side on one validation. Functions of a :class:`~.module.GlowModule` (typed
``Any``: the module imports them)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from glow_lightning.evaluate import iw_bits_per_dim
from glow_lightning.ops import bits_per_dim
from glow_lightning.train.rng import image_seed

EVAL_NOISE_SEED = 0  # seeds the fixed per-image dequantisation noise of val and test


def eval_noise(bins: Tensor, draw: int = 0) -> Tensor:
    """U(0, 1) noise (B, C, H, W) per image, seeded by the image's own pixels, so eval bpd does
    not depend on batching, order, the number of processes or a streamed read. ``draw`` k > 0
    gives the importance-weighted bound's further draws (k = 0: the one ``test/bpd`` uses)."""
    pixels = bins.to("cpu", torch.uint8).numpy()
    seeds = [EVAL_NOISE_SEED * 2**32 + image_seed(image.tobytes(), draw) for image in pixels]
    gens = [torch.Generator().manual_seed(seed) for seed in seeds]
    return torch.stack([torch.rand(bins.shape[1:], generator=g) for g in gens])


@torch.no_grad()
def eval_log_prob(module: Any, bins: Tensor, y: Tensor | None = None,
                  draw: int = 0) -> Tensor:
    """``log p(x + u_draw)`` (B,) in nats of n-bit ``bins`` (B, C, H, W) under the
    evaluation weights, with draw ``draw`` of the fixed per-image eval noise."""
    with module.sampling() as flow:
        return flow(module.to_flow_input(bins, module._eval_noise(bins, draw)), y).log_prob


def iw_bpd(module: Any, bins: Tensor, y: Tensor | None = None,
           first: Tensor | None = None) -> Tensor:
    """Importance-weighted bits/dim (B,) over ``module.iw_samples`` draws
    (:func:`~glow_lightning.evaluate.iw_bits_per_dim`); ``first``: draw 0's log p if known."""
    draws = [first if first is not None else eval_log_prob(module, bins, y)]
    draws += [eval_log_prob(module, bins, y, k) for k in range(1, max(1, module.iw_samples))]
    return iw_bits_per_dim(torch.stack(draws), module.flow.num_dims, module.n_bits)


def validate_both_weights(module: Any, batch: Any) -> None:
    """``val/bpd_raw`` and ``val/bpd_ema`` (EMA on) on the same images and noise as
    ``val/bpd``, which is one of them (``optim.ema_eval``): whether the average helps reads off
    one validation. Two more forwards, validation only."""
    assert module.ema is not None
    bins, y = module._unpack(batch)
    x = module.to_flow_input(bins, module._eval_noise(bins))
    for name, flow in (("bpd_raw", module.flow), ("bpd_ema", module.ema.shadow)):
        bpd = bits_per_dim(flow(x, y).log_prob, module.flow.num_dims, module.n_bits)
        module._log_mean("val", name, bpd, on_step=False)
